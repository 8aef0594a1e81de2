// The node agent against a real etcd + kube-apiserver + kube-scheduler:
//   node --test test/node-agent/
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { startControlPlane, waitFor as waitUntil } from '../control-plane/harness.mjs';
import { startNodeAgent } from './agent.mjs';

const STEP_TIMEOUT_MS = 60_000;
const START_TIMEOUT_MS = (Number(process.env.FT_BUILD_TIMEOUT_S ?? 5400) + 300) * 1000;
const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const NS = 'agent-test';
const GPU_TAINT = { key: 'nvidia.com/gpu', value: 'present', effect: 'NoSchedule' };

let cp;
let agent;
let workdir;

function kubectl(args, { input, timeoutMs = 30_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'kubectl',
      ['--kubeconfig', cp.kubeconfigPath, '--cache-dir', join(cp.dir, 'kubectl-cache'), '--request-timeout=20s', ...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err) return reject(new Error(`kubectl ${args.join(' ')}: ${stderr || err.message}`));
        resolve(stdout);
      },
    );
    if (input !== undefined) child.stdin.end(input);
  });
}
const getPod = async (name) => JSON.parse(await kubectl(['get', 'pod', name, '-n', NS, '-o', 'json']));

/** Polls fn() (see harness.mjs), adding the agent's last API errors to a timeout. */
const waitFor = (what, fn, timeoutMs = 30_000) =>
  waitUntil(what, fn, { timeoutMs, intervalMs: 200, context: () => `agent errors: ${agent?.errors.join('\n')}` });
const waitPhase = (name, phase, timeoutMs) =>
  waitFor(`pod ${name} phase ${phase}`, async () => {
    const p = await getPod(name);
    return p.status?.phase === phase ? p : false;
  }, timeoutMs);

const nodeCmd = (script) => ['node', '-e', script];
const pod = (name, spec) => JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace: NS }, spec: { restartPolicy: 'Never', terminationGracePeriodSeconds: 5, ...spec } });

before(async () => {
  cp = await startControlPlane();
  workdir = mkdtempSync(join(tmpdir(), 'ft-node-agent-'));
  agent = await startNodeAgent({
    kubeconfigPath: cp.kubeconfigPath,
    workdir,
    nodes: [
      { name: 'cpu-node', labels: { 'finetune.test/pool': 'cpu' } },
      { name: 'gpu-node', gpus: 2, labels: { 'finetune.test/pool': 'gpu' }, taints: [GPU_TAINT] },
    ],
  });
  await kubectl(['create', 'namespace', NS]);
}, { timeout: START_TIMEOUT_MS });

after(async () => {
  await agent?.stop().catch((e) => console.error('agent.stop:', e));
  await cp?.stop();
  if (workdir) rmSync(workdir, { recursive: true, force: true });
}, { timeout: 90_000 });

test('nodes are registered Ready, schedulable, with GPUs, labels and taints', { timeout: STEP_TIMEOUT_MS }, async () => {
  const gpu = JSON.parse(await kubectl(['get', 'node', 'gpu-node', '-o', 'json']));
  assert.equal(gpu.status.capacity['nvidia.com/gpu'], '2');
  assert.equal(gpu.status.allocatable['nvidia.com/gpu'], '2');
  assert.equal(gpu.metadata.labels['finetune.test/pool'], 'gpu');
  assert.deepEqual(gpu.spec.taints.map((t) => `${t.key}=${t.value}:${t.effect}`), ['nvidia.com/gpu=present:NoSchedule']);
  assert.equal(gpu.status.conditions.find((c) => c.type === 'Ready').status, 'True');
  const cpu = JSON.parse(await kubectl(['get', 'node', 'cpu-node', '-o', 'json']));
  assert.equal(cpu.status.capacity['nvidia.com/gpu'], undefined);
  assert.equal(cpu.spec.taints, undefined);
});

test('a pod with a toleration + nodeSelector runs on the GPU node, sees its env and succeeds', { timeout: STEP_TIMEOUT_MS }, async () => {
  await kubectl(['create', 'secret', 'generic', 's1', '-n', NS, '--from-literal=token=sekret']);
  await kubectl(['create', 'configmap', 'c1', '-n', NS, '--from-literal=mode=fast', '--from-literal=config.json={"lr":0.1}']);
  await kubectl(['create', '-f', '-'], {
    input: pod('envpod', {
      nodeSelector: { 'finetune.test/pool': 'gpu' },
      tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
      volumes: [{ name: 'cfg', configMap: { name: 'c1' } }, { name: 'scratch', emptyDir: {} }],
      containers: [{
        name: 'main', image: 'example.invalid/none:1',
        command: nodeCmd(`const fs=require('fs'); const cfg=process.argv[1]; console.log(JSON.stringify({env: process.env, cfg: fs.readFileSync(cfg+'/config.json','utf8')})); fs.writeFileSync(process.env.OUT+'/x','1')`),
        args: ['/etc/cfg'],
        resources: { limits: { 'nvidia.com/gpu': '1' } },
        volumeMounts: [{ name: 'cfg', mountPath: '/etc/cfg' }, { name: 'scratch', mountPath: '/scratch' }],
        env: [
          { name: 'PLAIN', value: 'hello' },
          { name: 'EXPANDED', value: '$(PLAIN)-world' },
          { name: 'OUT', value: '/scratch' },
          { name: 'TOKEN', valueFrom: { secretKeyRef: { name: 's1', key: 'token' } } },
          { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'c1', key: 'mode' } } },
          { name: 'POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
          { name: 'POD_NS', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
          { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        ],
      }],
    }),
  });
  const done = await waitPhase('envpod', 'Succeeded');
  assert.equal(done.spec.nodeName, 'gpu-node');
  const cs = done.status.containerStatuses[0];
  assert.equal(cs.state.terminated.exitCode, 0);
  assert.equal(cs.state.terminated.reason, 'Completed');
  assert.match(done.status.podIP, /^127\.\d+\.\d+\.\d+$/);
  const out = JSON.parse(agent.podLog(NS, 'envpod').trim().split('\n').pop());
  assert.equal(out.env.PLAIN, 'hello');
  assert.equal(out.env.EXPANDED, 'hello-world');
  assert.equal(out.env.TOKEN, 'sekret');
  assert.equal(out.env.MODE, 'fast');
  assert.equal(out.env.POD_NAME, 'envpod');
  assert.equal(out.env.POD_NS, NS);
  assert.equal(out.env.POD_IP, done.status.podIP);
  assert.equal(out.cfg, '{"lr":0.1}');
  assert.notEqual(out.env.OUT, '/scratch', 'mountPath in env is rewritten to the materialized dir');
});

test('an untolerated pod avoids the tainted node; exit code 3 -> Failed', { timeout: STEP_TIMEOUT_MS }, async () => {
  await kubectl(['create', '-f', '-'], { input: pod('fail3', { containers: [{ name: 'main', image: 'x', command: nodeCmd('process.exit(3)') }] }) });
  const p = await waitPhase('fail3', 'Failed');
  assert.equal(p.spec.nodeName, 'cpu-node');
  const t = p.status.containerStatuses[0].state.terminated;
  assert.equal(t.exitCode, 3);
  assert.equal(t.reason, 'Error');
});

test('deleting a running pod kills its process (SIGKILL after the grace period)', { timeout: STEP_TIMEOUT_MS }, async () => {
  await kubectl(['create', '-f', '-'], {
    input: pod('sleeper', {
      terminationGracePeriodSeconds: 2,
      // Ignores SIGTERM: only the SIGKILL after the grace period stops it.
      containers: [{ name: 'main', image: 'x', command: nodeCmd("process.on('SIGTERM',()=>console.log('TERM'));setInterval(()=>{},1000);console.log('up')") }],
    }),
  });
  const running = await waitPhase('sleeper', 'Running');
  assert.equal(running.status.conditions.find((c) => c.type === 'Ready').status, 'True');
  const { pid } = await waitFor('sleeper pid', () => agent.pod(NS, 'sleeper')?.pid && agent.pod(NS, 'sleeper'));
  await waitFor('sleeper output', () => agent.podLog(NS, 'sleeper')?.includes('up'));
  process.kill(pid, 0); // alive
  const t0 = Date.now();
  await kubectl(['delete', 'pod', 'sleeper', '-n', NS, '--wait=true', '--timeout=30s']);
  const took = Date.now() - t0;
  assert.throws(() => process.kill(pid, 0), { code: 'ESRCH' });
  assert.ok(took >= 1500, `waited for the grace period (${took} ms)`);
  assert.match(agent.podLog(NS, 'sleeper'), /TERM/);
  await assert.rejects(getPod('sleeper'), /NotFound/);
});

test('two pods reach each other by <hostname>.<subdomain>.<ns>.svc over TCP', { timeout: STEP_TIMEOUT_MS }, async () => {
  await kubectl(['create', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'workers', namespace: NS }, spec: { clusterIP: 'None', selector: { app: 'w' }, ports: [{ port: 7070 }] } }),
  });
  const podIpEnv = [{ name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } }];
  const server = `require('net').createServer(c=>{c.on('data',d=>{c.end('pong:'+d)})}).listen(7070, process.env.POD_IP, ()=>console.log('listening', process.env.POD_IP))`;
  const client = `const net=require('net'); const target='server-0.workers.${NS}.svc';
    (function attempt(n){ const s=net.connect(7070, target); s.on('connect',()=>s.write('ping'));
      s.on('data',d=>{console.log('reply',String(d)); process.exit(String(d)==='pong:ping'?0:1)});
      s.on('error',e=>{ if(n>100){console.error(e.message);process.exit(2)} setTimeout(()=>attempt(n+1),200)}); })(0)`;
  const mk = (name, script, extra = {}) =>
    JSON.parse(pod(name, { hostname: name, subdomain: 'workers', containers: [{ name: 'main', image: 'x', command: nodeCmd(script), env: podIpEnv, ...extra }] }));
  const srv = mk('server-0', server, { ports: [{ name: 'p', containerPort: 7070 }], readinessProbe: { tcpSocket: { port: 'p' }, periodSeconds: 1 } });
  srv.metadata.labels = { app: 'w' };
  await kubectl(['create', '-f', '-'], { input: JSON.stringify(srv) });
  await kubectl(['create', '-f', '-'], { input: JSON.stringify(mk('client-0', client)) });
  await waitFor('server-0 Ready', async () => (await getPod('server-0')).status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True');
  const done = await waitPhase('client-0', 'Succeeded');
  assert.equal(done.status.containerStatuses[0].state.terminated.exitCode, 0);
  assert.match(agent.podLog(NS, 'client-0'), /reply pong:ping/);
  const srvPod = await getPod('server-0');
  assert.notEqual(srvPod.status.podIP, done.status.podIP);
  await kubectl(['delete', 'pod', 'server-0', '-n', NS, '--wait=true', '--timeout=30s']);
});

test('command ftjob runs the repo CLI; a missing secret keeps the pod Pending until it exists', { timeout: STEP_TIMEOUT_MS }, async (t) => {
  if (!existsSync(join(REPO, 'packages', 'cli', 'dist', 'main.js'))) return t.skip('packages/cli is not built');
  await kubectl(['create', '-f', '-'], {
    input: pod('ftjob-help', {
      containers: [{ name: 'main', image: 'x', command: ['ftjob'], args: ['--help'], env: [{ name: 'LATE', valueFrom: { secretKeyRef: { name: 'late', key: 'k' } } }] }],
    }),
  });
  const waiting = await waitFor('CreateContainerConfigError', async () => {
    const p = await getPod('ftjob-help');
    return p.status?.containerStatuses?.[0]?.state?.waiting?.reason === 'CreateContainerConfigError' && p;
  });
  assert.equal(waiting.status.phase, 'Pending');
  await kubectl(['create', 'secret', 'generic', 'late', '-n', NS, '--from-literal=k=v']);
  const done = await waitPhase('ftjob-help', 'Succeeded');
  assert.equal(done.status.containerStatuses[0].state.terminated.exitCode, 0);
  assert.match(agent.podLog(NS, 'ftjob-help'), /Usage: ftjob/);
});
