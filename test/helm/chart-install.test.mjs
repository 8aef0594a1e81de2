// `helm install` of the chart into a real kube-apiserver (test/control-plane), then the chart's
// ServiceAccount, with a token of its own, is allowed what the controller does and refused
// what it does not; `helm upgrade` after a server-side CRD apply; `helm uninstall` keeps the CRD.
// Without kube-controller-manager and a kubelet the Deployment itself runs no pods, so the
// controller process is started here with the Deployment's arguments and only the ServiceAccount's
// token, and the node agent runs the worker pods: the job succeeding proves the RBAC is enough.
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { runKubectl, startControlPlane } from '../control-plane/harness.mjs';
import { startNodeAgent } from '../node-agent/agent.mjs';
import { digitsJob } from '../operator/jobs.mjs';
import { CHART, ROOT, ensureHelm, helm } from './helm.mjs';

const START_TIMEOUT_MS = (Number(process.env.FT_BUILD_TIMEOUT_S ?? 5400) + 300) * 1000;
const T = { timeout: 90_000 };
const RELEASE = 'ft';
const NS = 'finetune-system';
const JOBS_NS = 'team-a';
const NAME = 'ft-finetune-operator';
const FTJOB = fileURLToPath(new URL('../../packages/cli/bin/ftjob.js', import.meta.url));

let cp;
let asController; // kubectl options with a kubeconfig that holds only the ServiceAccount's token

function kubectl(args, opts = {}) {
  return runKubectl(cp, args, opts);
}
async function kubectlOk(args, opts) {
  const r = await kubectl(args, opts);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}
const helmOnCluster = (args) => helm([...args, '--kubeconfig', cp.kubeconfigPath]);

before(async () => {
  [cp] = await Promise.all([startControlPlane({ scheduler: true }), ensureHelm()]);
}, { timeout: START_TIMEOUT_MS });

after(async () => {
  await cp?.stop();
}, { timeout: 90_000 });

test('helm install creates the CRD, controller Deployment, ServiceAccount, RBAC and metrics Service', T, async () => {
  const installed = await helmOnCluster(['install', RELEASE, CHART, '--namespace', NS, '--create-namespace']);
  assert.equal(installed.code, 0, installed.stderr);
  assert.match(installed.stdout, /STATUS: deployed/);
  assert.match(installed.stdout, /kubectl apply --server-side -f crds\//, 'NOTES.txt explains the CRD upgrade path');

  await kubectlOk(['wait', '--for=condition=Established', '--timeout=60s', 'crd/finetunejobs.finetune.dev']);
  const expected = [
    ['deployment', NAME, NS],
    ['serviceaccount', NAME, NS],
    ['service', `${NAME}-metrics`, NS],
    ['clusterrole', NAME],
    ['clusterrolebinding', NAME],
    ['role', `${NAME}-leader-election`, NS],
    ['rolebinding', `${NAME}-leader-election`, NS],
  ];
  const got = await Promise.all(expected.map(([kind, name, ns]) => kubectlOk(['get', kind, name, '-o', 'json', ...(ns ? ['-n', ns] : [])])));
  got.forEach((json, i) => assert.equal(JSON.parse(json).metadata.labels['app.kubernetes.io/managed-by'], 'Helm', expected[i].join('/')));
  const deployment = JSON.parse(await kubectlOk(['get', 'deployment', NAME, '-n', NS, '-o', 'json']));
  assert.equal(deployment.spec.replicas, 2);
  assert.equal(deployment.spec.template.spec.serviceAccountName, NAME);
  const releases = JSON.parse((await helmOnCluster(['list', '--namespace', NS, '--output', 'json'])).stdout);
  assert.deepEqual(releases.map((r) => [r.name, r.status, r.app_version]), [[RELEASE, 'deployed', '0.1.0']]);

  // A kubeconfig that carries only a token of the chart's ServiceAccount (the admin kubeconfig's
  // client certificate would win over --token).
  const token = (await kubectlOk(['create', 'token', NAME, '-n', NS, '--duration=15m'])).trim();
  const kubeconfig = join(cp.dir, 'controller-sa.kubeconfig');
  writeFileSync(kubeconfig, [
    'apiVersion: v1',
    'kind: Config',
    `clusters: [{name: c, cluster: {server: "${cp.server}", certificate-authority: "${cp.caFile}"}}]`,
    `users: [{name: controller, user: {token: "${token}"}}]`,
    `contexts: [{name: c, context: {cluster: c, user: controller, namespace: ${JOBS_NS}}}]`,
    'current-context: c',
    '',
  ].join('\n'), { mode: 0o600 });
  asController = { kubeconfig };
  const who = await kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], asController);
  assert.equal(who.stdout.trim(), `system:serviceaccount:${NS}:${NAME}`, who.stderr);
});

/** `kubectl auth can-i` as the controller; resolves 'yes' or 'no'. */
async function canI(verb, resource, { ns = JOBS_NS, subresource } = {}) {
  const args = ['auth', 'can-i', verb, resource, ...(ns ? ['-n', ns] : []), ...(subresource ? ['--subresource', subresource] : [])];
  const r = await kubectl(args, asController);
  const answer = r.stdout.trim();
  assert.ok(answer === 'yes' || answer === 'no', `kubectl ${args.join(' ')}: ${r.stdout}${r.stderr}`);
  return answer;
}

test('the ServiceAccount may do what the controller does', T, async () => {
  assert.ok(asController, 'the install test ran first');
  const allowed = [
    ['create', 'pods'], ['delete', 'pods'], ['watch', 'pods'],
    ['list', 'finetunejobs.finetune.dev'], ['delete', 'finetunejobs.finetune.dev'],
    ['update', 'finetunejobs.finetune.dev', { subresource: 'status' }],
    ['update', 'finetunejobs.finetune.dev', { subresource: 'finalizers' }],
    ['create', 'services'], ['patch', 'configmaps'], ['create', 'secrets'], ['watch', 'secrets'],
    ['create', 'events'],
    ['watch', 'pods', { ns: 'another-team' }], // a ClusterRole: every namespace
    ['get', 'leases.coordination.k8s.io', { ns: NS }], ['create', 'leases.coordination.k8s.io', { ns: NS }], ['update', 'leases.coordination.k8s.io', { ns: NS }],
  ];
  const answers = await Promise.all(allowed.map(([verb, res, opts]) => canI(verb, res, opts)));
  allowed.forEach(([verb, res, opts], i) => assert.equal(answers[i], 'yes', `can-i ${verb} ${res} ${JSON.stringify(opts ?? {})}`));
});

test('the ServiceAccount is refused what the controller does not do', T, async () => {
  assert.ok(asController, 'the install test ran first');
  const refused = [
    ['create', 'deployments.apps'], ['delete', 'nodes', { ns: '' }], ['get', 'nodes', { ns: '' }],
    ['create', 'clusterroles.rbac.authorization.k8s.io', { ns: '' }], ['create', 'rolebindings.rbac.authorization.k8s.io'],
    ['create', 'finetunejobs.finetune.dev'], ['update', 'finetunejobs.finetune.dev'], ['patch', 'finetunejobs.finetune.dev', { subresource: 'status' }],
    ['patch', 'pods'], ['create', 'pods', { subresource: 'exec' }], ['update', 'secrets'], ['delete', 'secrets'], ['delete', 'services'],
    ['delete', 'events'], ['create', 'serviceaccounts', { subresource: 'token' }],
    ['create', 'leases.coordination.k8s.io'], // leader election only in the release namespace
    ['delete', 'leases.coordination.k8s.io', { ns: NS }],
    ['delete', 'customresourcedefinitions.apiextensions.k8s.io', { ns: '' }],
  ];
  const answers = await Promise.all(refused.map(([verb, res, opts]) => canI(verb, res, opts)));
  refused.forEach(([verb, res, opts], i) => assert.equal(answers[i], 'no', `can-i ${verb} ${res} ${JSON.stringify(opts ?? {})}`));
});

test('real requests with the token: pods, job lists and status updates yes; deployments, status patches, nodes no', T, async () => {
  assert.ok(asController, 'the install test ran first');
  await kubectlOk(['create', 'namespace', JOBS_NS]);
  await kubectlOk(['apply', '-n', JOBS_NS, '-f', join(ROOT, 'examples/digits-5to9.yaml')]);

  await kubectlOk(['run', 'digits-5to9-worker-0', '--image=example.invalid/worker:0', '--restart=Never'], asController);
  const listed = JSON.parse(await kubectlOk(['get', 'finetunejobs', '-o', 'json'], asController));
  assert.deepEqual(listed.items.map((j) => j.metadata.name), ['digits-5to9']);
  // The controller writes status with PUT and the resourceVersion it read.
  const job = listed.items[0];
  await kubectlOk(['replace', '--subresource=status', '-f', '-'], { ...asController, input: JSON.stringify({ ...job, status: { phase: 'Running' } }) });
  assert.equal(await kubectlOk(['get', 'finetunejob', 'digits-5to9', '-n', JOBS_NS, '-o', 'jsonpath={.status.phase}']), 'Running');

  for (const args of [
    ['create', 'deployment', 'd', '--image=example.invalid/x:0'],
    ['patch', 'finetunejob', 'digits-5to9', '--subresource=status', '--type=merge', '-p', '{"status":{"phase":"Failed"}}'],
    ['get', 'nodes'],
    ['get', 'deployment', NAME, '-n', NS],
  ]) {
    const r = await kubectl(args, asController);
    assert.notEqual(r.code, 0, `kubectl ${args.join(' ')} was allowed`);
    assert.match(r.stderr, /forbidden/i, `kubectl ${args.join(' ')}: ${r.stderr}`);
  }
});

test('the real controller, with only that token and the Deployment\'s arguments, runs a job to Succeeded and deletes it after its TTL', { timeout: 240_000 }, async () => {
  assert.ok(asController, 'the install test ran first');
  const deployment = JSON.parse(await kubectlOk(['get', 'deployment', NAME, '-n', NS, '-o', 'json']));
  const container = deployment.spec.template.spec.containers[0];
  // The chart's arguments as the kubelet would expand them; ports 0 (no fixed ports on a shared machine).
  const args = container.args.map((a) => a.replace('$(POD_NAMESPACE)', NS).replace(/^--(metrics|health)-port=\d+$/, '--$1-port=0'));
  const agent = await startNodeAgent({ kubeconfigPath: cp.kubeconfigPath, workdir: join(cp.dir, 'agent'), nodes: [{ name: 'gpu-node', gpus: 2 }] });
  let log = '';
  const controller = spawn(process.execPath, [FTJOB, ...(container.command?.slice(1) ?? []), ...args, '--kubeconfig', asController.kubeconfig], {
    env: { ...process.env, POD_NAMESPACE: NS, POD_NAME: 'controller-0' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  controller.stderr.on('data', (d) => (log += d));
  try {
    await kubectlOk(['create', 'namespace', 'team-b']);
    const job = JSON.parse(digitsJob('rbac-proof', { outDir: join(cp.dir, 'out'), namespace: 'team-b', replicas: 2, epochs: 2 }));
    job.spec.runPolicy = { ttlSecondsAfterFinished: 3 };
    await kubectlOk(['apply', '-f', '-'], { input: JSON.stringify(job) });
    const deadline = Date.now() + 180_000;
    let phase = '';
    while (phase !== 'Succeeded') {
      assert.ok(Date.now() < deadline, `the job did not succeed (phase '${phase}'); controller log:\n${log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 500));
      phase = (await kubectl(['get', 'ftj', 'rbac-proof', '-n', 'team-b', '-o', 'jsonpath={.status.phase}'])).stdout;
    }
    // ttlSecondsAfterFinished: the controller deletes the job with the token's `delete` right.
    while ((await kubectl(['get', 'ftj', 'rbac-proof', '-n', 'team-b'])).code === 0) {
      assert.ok(Date.now() < deadline, `the job was not deleted after its TTL; controller log:\n${log.slice(-3000)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    assert.doesNotMatch(log, /forbidden/i, 'the controller was refused something it needs');
    assert.match(log, /became the leader/, 'it ran with leader election, as the Deployment does');
  } finally {
    controller.kill('SIGTERM');
    await agent.stop();
  }
});

test('upgrade: server-side apply of crds/, then helm upgrade', T, async () => {
  await kubectlOk(['apply', '--server-side', '-f', join(CHART, 'crds')]);
  const upgraded = await helmOnCluster(['upgrade', RELEASE, CHART, '--namespace', NS, '--reuse-values', '--set', 'controller.replicas=3']);
  assert.equal(upgraded.code, 0, upgraded.stderr);
  assert.match(upgraded.stdout, /REVISION: 2/);
  const replicas = await kubectlOk(['get', 'deployment', NAME, '-n', NS, '-o', 'jsonpath={.spec.replicas}']);
  assert.equal(replicas, '3');
});

test('helm uninstall removes the controller and its RBAC but keeps the CRD and the jobs', T, async () => {
  const removed = await helmOnCluster(['uninstall', RELEASE, '--namespace', NS, '--wait', '--timeout', '60s']);
  assert.equal(removed.code, 0, removed.stderr);
  for (const [kind, name, ns] of [['deployment', NAME, NS], ['clusterrole', NAME], ['serviceaccount', NAME, NS]]) {
    const r = await kubectl(['get', kind, name, ...(ns ? ['-n', ns] : [])]);
    assert.notEqual(r.code, 0, `${kind}/${name} is gone`);
    assert.match(r.stderr, /NotFound/);
  }
  await kubectlOk(['get', 'crd', 'finetunejobs.finetune.dev']);
  const jobs = await kubectlOk(['get', 'finetunejobs', '-n', JOBS_NS, '-o', 'name']);
  assert.match(jobs, /finetunejob\.finetune\.dev\/digits-5to9/);
});
