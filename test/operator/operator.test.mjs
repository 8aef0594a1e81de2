// The operator end to end on real components: etcd + kube-apiserver + kube-scheduler +
// kube-controller-manager (garbage collection) built from their Go modules, the node agent
// running worker pods as local processes, `ftjob controller` as its own process, and kubectl.
//   node --test test/operator/
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { startControlPlane, runKubectl, waitFor as waitUntil } from '../control-plane/harness.mjs';
import { startNodeAgent } from '../node-agent/agent.mjs';
import { renderForDevCluster } from '../../tools/local-example.mjs';
import { freePort, startPrometheus, SCRAPE_INTERVAL_S } from '../metrics/prometheus.mjs';
import { checkDashboardPanels } from '../metrics/grafana.mjs';
import { startPodDiscovery } from './pod-discovery.mjs';
import { digitsJob as digitsJobIn } from './jobs.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CRD = join(ROOT, 'deploy/helm/finetune-operator/crds/finetunejobs.finetune.dev.yaml');
const FTJOB = join(ROOT, 'packages/cli/bin/ftjob.js');
const START_TIMEOUT_MS = (Number(process.env.FT_BUILD_TIMEOUT_S ?? 5400) + 300) * 1000;
const NS = 'default';

let cp;
let agent;
let work;
let controller;
let prom;
let discovery;
let startedAt;
/** Metrics ports: the main controller (kept across its restart), then two leader-election replicas. */
let metricsPorts;

const kubectl = async (args, input) => {
  const r = await runKubectl(cp, args, { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
};
const getJson = async (...args) => JSON.parse(await kubectl(['get', ...args, '-n', NS, '-o', 'json']));
const job = (name) => getJson('ftj', name);
const workerPods = async (name) => (await getJson('pods', '-l', `finetune.dev/job-name=${name}`)).items;

/** Polls fn() (see harness.mjs), adding the controller's log to a timeout. */
const waitFor = (what, fn, timeoutMs = 60_000) =>
  waitUntil(what, fn, { timeoutMs, intervalMs: 250, context: () => `controller log:\n${controller?.output().slice(-3000)}` });
const waitPhase = (name, phase, timeoutMs) => waitFor(`${name} to be ${phase}`, async () => ((await job(name)).status?.phase === phase ? job(name) : false), timeoutMs);

/** `ftjob controller` as a child process, with its log kept for failure messages. */
function startController(extraArgs = [], metricsPort = metricsPorts[0]) {
  let out = '';
  const child = spawn(process.execPath, [FTJOB, 'controller', '--kubeconfig', cp.kubeconfigPath, '--worker-image', 'local/ftjob:dev', '--metrics-port', String(metricsPort), '--health-port', '0', ...extraArgs], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return {
    child,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}

const digitsJob = (name, options) => digitsJobIn(name, { ...options, outDir: join(work, 'out'), namespace: NS });
const reasons = async (name) => (await getJson('events', '--field-selector', `involvedObject.name=${name},involvedObject.kind=FineTuneJob`)).items.map((e) => e.reason);

before(async () => {
  cp = await startControlPlane({ scheduler: true, controllers: true });
  work = mkdtempSync(join(tmpdir(), 'ft-operator-'));
  await kubectl(['apply', '--server-side', '-f', CRD]);
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/finetunejobs.finetune.dev']);
  agent = await startNodeAgent({
    kubeconfigPath: cp.kubeconfigPath,
    workdir: join(work, 'agent'),
    nodes: [{ name: 'node-a', gpus: 2 }, { name: 'node-b', gpus: 2 }],
  });
  metricsPorts = await Promise.all([freePort(), freePort(), freePort()]);
  discovery = await startPodDiscovery(cp);
  // A real Prometheus scrapes every controller of these tests; the last test checks the dashboards.
  prom = await startPrometheus([
    { name: 'finetune-controller', targets: metricsPorts.map((p) => `127.0.0.1:${p}`) },
    // Worker pods found as the chart's PodMonitor finds them (see pod-discovery.mjs).
    { name: 'finetune-workers', discovery: { http_sd_configs: [{ url: discovery.url, refresh_interval: '1s' }] } },
  ]);
  startedAt = Date.now() / 1000;
  controller = startController();
}, { timeout: START_TIMEOUT_MS });

after(async () => {
  await controller?.stop();
  await prom?.stop();
  await discovery?.stop();
  await agent?.stop();
  await cp?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
}, { timeout: 90_000 });

test('kubectl apply of the cluster example → two worker pods train → Succeeded, with the fine-tuned model written and the status filled in', { timeout: 300_000 }, async () => {
  const example = renderForDevCluster(readFileSync(join(ROOT, 'examples/cluster/digits-5to9.yaml'), 'utf8'), join(work, 'results'));
  await kubectl(['apply', '-f', '-'], example);
  await waitFor('digits-5to9 to report training progress', async () => (await job('digits-5to9')).status?.training?.step > 0, 120_000);
  const done = await waitPhase('digits-5to9', 'Succeeded', 240_000);
  const out = join(work, 'results', 'finetune-results', 'digits-5to9');
  assert.ok(existsSync(join(out, 'model.onnx')), 'rank 0 wrote the model');
  const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8'));
  assert.ok(metrics.best.accuracy > 0.9, `fine-tuned to ${metrics.best.accuracy}`);
  assert.equal(done.status.progress, '100%');
  assert.equal(done.status.training.validationMetricName, 'val_accuracy');

  const s = done.status;
  assert.equal(s.observedGeneration, done.metadata.generation);
  assert.equal(s.replicas, 2);
  assert.ok(Date.parse(s.startTime) <= Date.parse(s.completionTime));
  const cond = Object.fromEntries(s.conditions.map((c) => [c.type, c.status]));
  assert.deepEqual(cond, { Created: 'True', Running: 'False', Succeeded: 'True' });
  assert.equal(s.restarts ?? 0, 0);
  assert.deepEqual(await reasons('digits-5to9'), ['Created', 'Running', 'Succeeded'], 'one event per transition');

  // The objects it made: a headless Service, pods with stable per-rank hostnames, the spec and token.
  const svc = await getJson('service', 'digits-5to9-workers');
  assert.equal(svc.spec.clusterIP, 'None');
  const pods = await workerPods('digits-5to9');
  assert.deepEqual(pods.map((p) => p.spec.hostname).sort(), ['digits-5to9-worker-0', 'digits-5to9-worker-1']);
  assert.ok(pods.every((p) => p.spec.containers[0].resources.limits['nvidia.com/gpu'] === '1'));
  assert.ok(pods.every((p) => p.spec.tolerations.some((t) => t.key === 'nvidia.com/gpu')));
  assert.ok(pods.every((p) => p.status.phase === 'Succeeded'));
  const env = Object.fromEntries(pods.find((p) => p.metadata.name === 'digits-5to9-worker-1').spec.containers[0].env.map((e) => [e.name, e.value ?? e.valueFrom]));
  assert.equal(env.FT_PEERS, `digits-5to9-worker-0.digits-5to9-workers.${NS}.svc:29500,digits-5to9-worker-1.digits-5to9-workers.${NS}.svc:29500`);
  assert.deepEqual(env.FT_TOKEN, { secretKeyRef: { name: 'digits-5to9-token', key: 'token' } });
});

test('a worker killed mid-training restarts the gang, which resumes from the checkpoint and succeeds', { timeout: 300_000 }, async () => {
  await kubectl(['apply', '-f', '-'], digitsJob('killed', { epochs: 400, perClass: 20, training: { checkpointEvery: 10 } }));
  // Wait until training is under way and a checkpoint exists.
  await waitFor('a checkpoint of killed', async () => (await job('killed')).status?.training?.step >= 12, 120_000);
  const victim = agent.pod(NS, 'killed-worker-1');
  assert.ok(victim?.pid, 'the agent runs worker 1');
  process.kill(victim.pid, 'SIGKILL');
  // Restarting lasts only until the old pods are gone, so look for its trace: the count and condition.
  let seen;
  const restarted = await waitFor('killed to restart', async () => {
    seen = await job('killed');
    return seen.status?.restarts === 1 ? seen : false;
  }, 30_000).catch((err) => {
    throw new Error(`${err.message}\nstatus: ${JSON.stringify(seen?.status)}\nworker 0: ${agent.podLog(NS, 'killed-worker-0').slice(-1500)}\nworker 1: ${agent.podLog(NS, 'killed-worker-1').slice(-800)}`);
  });
  assert.match(restarted.status.conditions.find((c) => c.type === 'Restarting').message, /worker 1 .*exited with code 137.*restarting all 2 workers/);
  const event = (await getJson('events', '--field-selector', 'involvedObject.name=killed,reason=Restarting')).items[0];
  assert.equal(event?.type, 'Warning');
  assert.match(event.message, /worker 1 \(killed-worker-1\) exited with code 137 \(Error: killed by SIGKILL\); restarting all 2 workers from the latest checkpoint \(restart 1 of 3\)/);
  // Shorten nothing: the resumed gang continues where the checkpoint left off.
  await waitPhase('killed', 'Succeeded', 240_000);
  assert.match(agent.podLog(NS, 'killed-worker-0'), /resuming from .*step-\d+/);
  assert.ok((await reasons('killed')).includes('Restarting'));
});

test('an evicted worker (a node drain) restarts the gang without spending a restart; it resumes and succeeds', { timeout: 300_000 }, async () => {
  await kubectl(['apply', '-f', '-'], digitsJob('drained', { epochs: 400, perClass: 20, training: { checkpointEvery: 10 } }));
  await waitFor('drained to train', async () => (await job('drained')).status?.training?.step >= 12, 120_000);
  // What `kubectl drain` does to each pod: the Eviction API.
  const eviction = JSON.stringify({ apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name: 'drained-worker-1', namespace: NS } });
  await kubectl(['create', '--raw', `/api/v1/namespaces/${NS}/pods/drained-worker-1/eviction`, '-f', '-'], eviction);
  const done = await waitPhase('drained', 'Succeeded', 240_000);
  const restarts = (await getJson('events', '--field-selector', 'involvedObject.name=drained,reason=Restarting')).items;
  assert.equal(restarts.length, 1, JSON.stringify(restarts.map((e) => e.message)));
  assert.match(restarts[0].message, /^worker 1 \(drained-worker-1\) was disrupted \(EvictionByEvictionAPI: [^)]*\); restarting all 2 workers from the latest checkpoint \(not counted against runPolicy\.backoffLimit\)$/);
  assert.equal(done.status.restarts ?? 0, 0, 'no restart spent');
  assert.match(agent.podLog(NS, 'drained-worker-0'), /resuming from \S*step-\d+/);
});

test('the controller killed and started again mid-job creates no duplicate pods and the job completes', { timeout: 240_000 }, async () => {
  await kubectl(['apply', '-f', '-'], digitsJob('survivor', { epochs: 15 }));
  await waitPhase('survivor', 'Running', 120_000);
  const before = (await workerPods('survivor')).map((p) => p.metadata.uid).sort();
  await controller.stop('SIGKILL');
  controller = startController();
  await waitPhase('survivor', 'Succeeded', 200_000);
  const afterUids = (await workerPods('survivor')).map((p) => p.metadata.uid).sort();
  assert.deepEqual(afterUids, before, 'the same two pods, none recreated');
  assert.doesNotMatch(controller.output(), /reconcile .* failed/);
});

test('suspend deletes the workers and keeps the status; resume recreates them and the job completes', { timeout: 240_000 }, async () => {
  // 5,000 steps (~30 s here, ~15 s on a fast machine): the suspend lands mid-training.
  await kubectl(['apply', '-f', '-'], digitsJob('pausable', { epochs: 1000, training: { checkpointEvery: 50 } }));
  await waitPhase('pausable', 'Running', 120_000);
  await waitFor('pausable to train', async () => (await job('pausable')).status?.training?.step >= 3, 120_000);
  await kubectl(['patch', 'ftj', 'pausable', '-n', NS, '--type=merge', '-p', '{"spec":{"suspend":true}}']);
  const suspended = await waitPhase('pausable', 'Suspended', 30_000);
  assert.equal(suspended.status.conditions.find((c) => c.type === 'Suspended').status, 'True');
  await waitFor('pausable pods deleted', async () => (await workerPods('pausable')).length === 0, 30_000);
  // The pods got SIGTERM: rank 0 checkpointed the step it had reached before it stopped (after its
  // own SIGTERM, or after rank 1 left first: then as a lost peer).
  const suspendedLog = agent.podLog(NS, 'pausable-worker-0') ?? '';
  const stopped = /(?:stopped by SIGTERM after step (\d+) \(checkpoint|rank 0's checkpoint of step (\d+):) \S*step-0*(\d+)\)/.exec(suspendedLog);
  assert.ok(stopped, `rank 0 said where it stopped:\n${suspendedLog.slice(-1500)}`);
  const stoppedStep = stopped[1] ?? stopped[2];
  assert.equal(stopped[3], stoppedStep, 'the checkpoint is of the step it stopped after');
  await kubectl(['patch', 'ftj', 'pausable', '-n', NS, '--type=merge', '-p', '{"spec":{"suspend":false}}']);
  const done = await waitPhase('pausable', 'Succeeded', 200_000);
  assert.match(agent.podLog(NS, 'pausable-worker-0'), new RegExp(`resuming from \\S*step-0*${stoppedStep} \\(step ${stoppedStep}\\)`), 'resumed exactly there');
  assert.equal(done.status.conditions.find((c) => c.type === 'Suspended').status, 'False');
  assert.deepEqual((await reasons('pausable')).filter((r) => r === 'Suspended' || r === 'Resumed'), ['Suspended', 'Resumed']);
});

test('a job asking for more GPUs than any node has fails with the scheduler\'s reason', { timeout: 90_000 }, async () => {
  await kubectl(['apply', '-f', '-'], digitsJob('greedy', { replicas: 1, workers: { gpusPerWorker: 8 }, extra: { runPolicy: { schedulingTimeoutSeconds: 3 } } }));
  const failed = await waitPhase('greedy', 'Failed', 60_000);
  const cond = failed.status.conditions.find((c) => c.type === 'Failed');
  assert.equal(cond.reason, 'Unschedulable');
  assert.match(cond.message, /Pending for more than 3 s.*Insufficient nvidia\.com\/gpu/);
  assert.equal((await workerPods('greedy')).length, 0, 'cleanPodPolicy Running deleted the pending pod');
});

test('a worker that rejects its input fails the job without restarts, its own message in the condition and event', { timeout: 120_000 }, async () => {
  // The API server cannot know the model's layer names; the worker can, and says so.
  await kubectl(['apply', '-f', '-'], digitsJob('misnamed', { replicas: 1, extra: { trainable: { freezeBelow: 'conv9' } } }));
  const failed = await waitPhase('misnamed', 'Failed', 100_000);
  const cond = failed.status.conditions.find((c) => c.type === 'Failed');
  assert.equal(cond.reason, 'WorkerFailed');
  const said = /worker 0 \(misnamed-worker-0\) exited with code 2 \(Error: spec\.trainable\.freezeBelow 'conv9': no node, parameter or parameter prefix has this name/;
  assert.match(cond.message, said);
  assert.equal(failed.status.restarts ?? 0, 0, 'bad input is not retried');
  const events = (await getJson('events', '--field-selector', 'involvedObject.name=misnamed,involvedObject.kind=FineTuneJob')).items;
  assert.ok(events.some((e) => e.type === 'Warning' && said.test(e.message)), `a Warning event carries it: ${JSON.stringify(events.map((e) => [e.reason, e.message]))}`);
});

test('deleting a job removes everything it created', { timeout: 90_000 }, async () => {
  await kubectl(['apply', '-f', '-'], digitsJob('doomed', { epochs: 500 }));
  await waitPhase('doomed', 'Running', 120_000);
  await kubectl(['delete', 'ftj', 'doomed', '-n', NS, '--wait=true']);
  await waitFor('the objects of doomed gone', async () => {
    const left = await Promise.all(['pods', 'services', 'configmaps', 'secrets'].map(async (kind) => (await getJson(kind, '-l', 'finetune.dev/job-name=doomed')).items.length));
    return left.every((n) => n === 0);
  }, 60_000);
});

test('two controllers with leader election: one acts; when it dies the other takes over', { timeout: 240_000 }, async () => {
  await controller.stop();
  const elect = ['--leader-elect', '--leader-election-namespace', NS];
  const a = startController(elect, metricsPorts[1]);
  const b = startController(elect, metricsPorts[2]);
  try {
    const leaderLine = /became the leader/;
    const first = await waitFor('a leader', () => [a, b].find((c) => leaderLine.test(c.output())), 30_000);
    const other = first === a ? b : a;
    await kubectl(['apply', '-f', '-'], digitsJob('elected', { replicas: 1, epochs: 2 }));
    await waitPhase('elected', 'Succeeded', 120_000);
    assert.doesNotMatch(other.output(), leaderLine, 'the standby never acted');
    const lease = await getJson('lease', 'finetune-operator-leader');
    assert.match(first.output(), new RegExp(`${lease.spec.holderIdentity} became the leader`));

    await first.stop('SIGKILL'); // no clean hand-over: the standby waits for the lease to expire
    await waitFor('the standby to lead', () => leaderLine.test(other.output()), 40_000);
    await kubectl(['apply', '-f', '-'], digitsJob('failover', { replicas: 1, epochs: 2 }));
    await waitPhase('failover', 'Succeeded', 120_000);
  } finally {
    await a.stop();
    await b.stop();
    controller = undefined;
  }
});

test('every controller metric and every operator-dashboard panel has data in Prometheus', { timeout: 120_000 }, async (t) => {
  const window = { start: startedAt, end: Date.now() / 1000 };
  const names = ['reconcile_duration_seconds_count', 'reconcile_total', 'jobs', 'job_restarts_total', 'time_to_running_seconds_count', 'api_errors_total', 'is_leader'];
  for (const name of names) {
    const { result } = await prom.api('query_range', { query: `finetune_controller_${name}`, start: window.start, end: window.end, step: SCRAPE_INTERVAL_S });
    assert.ok(result.length > 0, `finetune_controller_${name} was never scraped`);
  }
  const restarts = await prom.api('query', { query: 'max_over_time(finetune_controller_job_restarts_total{namespace="default"}[1h])', time: window.end });
  assert.ok(restarts.result.some((r) => Number(r.value[1]) >= 1), 'the gang restart was counted');
  const dashboards = join(ROOT, 'deploy/helm/finetune-operator/dashboards');
  await checkDashboardPanels(t, { file: join(dashboards, 'operator.json'), prom, window, step: SCRAPE_INTERVAL_S, rateInterval: '4s' });
  // The training dashboard, with worker pods discovered in the cluster (GPU panels: test/metrics/,
  // which has a DCGM stand-in; there is no GPU here).
  await checkDashboardPanels(t, {
    file: join(dashboards, 'training.json'),
    prom,
    window,
    step: SCRAPE_INTERVAL_S,
    rateInterval: '4s',
    pending: (expr) => (expr.includes('DCGM_') ? 'GPU panel: no GPU here; checked against the DCGM stand-in in test/metrics/' : false),
  });
});
