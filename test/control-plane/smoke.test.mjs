// Smoke test of the control-plane harness against a real etcd + kube-apiserver:
//   node --test test/control-plane/
// Needs kubectl, openssl, curl, and Go (only the first time, to build the binaries).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { startControlPlane, runKubectl } from './harness.mjs';

const STEP_TIMEOUT_MS = 60_000;
// The first run builds kube-apiserver from source: allow for it in the startup hook.
const START_TIMEOUT_MS = (Number(process.env.FT_BUILD_TIMEOUT_S ?? 5400) + 300) * 1000;

let cp;

/** kubectl with the admin kubeconfig unless another one is given. Resolves {code, stdout, stderr}. */
function kubectl(args, { kubeconfig = cp.kubeconfigPath, input, timeoutMs = STEP_TIMEOUT_MS } = {}) {
  return runKubectl(cp, args, { kubeconfig, input, timeoutMs });
}
async function kubectlOk(args, opts) {
  const r = await kubectl(args, opts);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}

before(async () => {
  cp = await startControlPlane();
}, { timeout: START_TIMEOUT_MS });

after(async () => {
  await cp?.stop();
}, { timeout: 90_000 });

test('kubectl get ns lists the built-in namespaces', { timeout: STEP_TIMEOUT_MS }, async () => {
  assert.match(cp.server, /^https:\/\/127\.0\.0\.1:\d+$/);
  const out = await kubectlOk(['get', 'ns', '-o', 'name']);
  for (const ns of ['default', 'kube-system', 'kube-public']) assert.match(out, new RegExp(`namespace/${ns}\\b`));
  const readyz = await kubectlOk(['get', '--raw', '/readyz']);
  assert.equal(readyz.trim(), 'ok');
});

const CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.smoke.finetune.test
spec:
  group: smoke.finetune.test
  names: { kind: Widget, plural: widgets, singular: widget, listKind: WidgetList }
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: { status: {} }
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: { type: integer, minimum: 1 }
              color: { type: string }
          status:
            type: object
            properties:
              phase: { type: string }
`;

test('CRD + custom resource round-trip through kubectl', { timeout: 2 * STEP_TIMEOUT_MS }, async () => {
  await kubectlOk(['apply', '-f', '-'], { input: CRD });
  await kubectlOk(['wait', '--for=condition=Established', 'crd/widgets.smoke.finetune.test', '--timeout=60s']);
  const cr = `
apiVersion: smoke.finetune.test/v1
kind: Widget
metadata: { name: w1, namespace: default }
spec: { size: 3, color: blue }
`;
  // Discovery of the new group can lag a moment behind Established: retry briefly.
  let r;
  for (let i = 0; i < 20; i++) {
    r = await kubectl(['apply', '-f', '-'], { input: cr });
    if (r.code === 0) break;
    await new Promise((res) => setTimeout(res, 500));
  }
  assert.equal(r.code, 0, r.stderr);
  const got = JSON.parse(await kubectlOk(['get', 'widgets.smoke.finetune.test', 'w1', '-n', 'default', '-o', 'json']));
  assert.equal(got.kind, 'Widget');
  assert.deepEqual(got.spec, { size: 3, color: 'blue' });
  // Schema validation is enforced by the real apiserver.
  const bad = await kubectl(['apply', '-f', '-'], { input: cr.replace('size: 3', 'size: 0') });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /size/);
});

test('pods can be created (no ServiceAccount admission) and stay Pending without a kubelet', { timeout: STEP_TIMEOUT_MS }, async () => {
  const ns = 'smoke-pods';
  await kubectlOk(['create', 'namespace', ns]);
  await kubectlOk(['run', 'p1', '-n', ns, '--image=example.invalid/none:1', '--restart=Never']);
  const pod = JSON.parse(await kubectlOk(['get', 'pod', 'p1', '-n', ns, '-o', 'json']));
  assert.equal(pod.status.phase, 'Pending');
  assert.equal(pod.spec.nodeName, undefined);
});

test('RBAC: a restricted ServiceAccount token is allowed and denied the right verbs', { timeout: 2 * STEP_TIMEOUT_MS }, async () => {
  const ns = 'smoke-rbac';
  await kubectlOk(['create', 'namespace', ns]);
  await kubectlOk(['create', 'serviceaccount', 'restricted', '-n', ns]);
  await kubectlOk(['create', 'role', 'cm-reader', '-n', ns, '--verb=get,list,watch', '--resource=configmaps']);
  await kubectlOk(['create', 'rolebinding', 'restricted-cm-reader', '-n', ns, '--role=cm-reader', `--serviceaccount=${ns}:restricted`]);
  await kubectlOk(['create', 'configmap', 'c1', '-n', ns, '--from-literal=k=v']);

  // TokenRequest API: needs only the apiserver's --service-account-* flags.
  const token = (await kubectlOk(['create', 'token', 'restricted', '-n', ns, '--duration=10m'])).trim();
  assert.match(token, /^ey[\w-]+\.[\w-]+\.[\w-]+$/);

  // A kubeconfig with only the token (the admin one carries a client cert that would win).
  const tokenKubeconfig = join(cp.dir, 'restricted.kubeconfig');
  writeFileSync(
    tokenKubeconfig,
    [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{name: c, cluster: {server: "${cp.server}", certificate-authority: "${cp.caFile}"}}]`,
      `users: [{name: restricted, user: {token: "${token}"}}]`,
      `contexts: [{name: c, context: {cluster: c, user: restricted, namespace: ${ns}}}]`,
      'current-context: c',
      '',
    ].join('\n'),
    { mode: 0o600 },
  );
  const asSA = { kubeconfig: tokenKubeconfig };

  const who = await kubectl(['auth', 'whoami', '-o', 'jsonpath={.status.userInfo.username}'], asSA);
  if (who.code === 0) assert.equal(who.stdout.trim(), `system:serviceaccount:${ns}:restricted`);

  for (const verb of ['get', 'list', 'watch']) {
    const r = await kubectl(['auth', 'can-i', verb, 'configmaps', '-n', ns], asSA);
    assert.equal(r.stdout.trim(), 'yes', `can-i ${verb} configmaps: ${r.stdout}${r.stderr}`);
    assert.equal(r.code, 0);
  }
  for (const [verb, res, where] of [
    ['delete', 'configmaps', ns],
    ['create', 'configmaps', ns],
    ['get', 'secrets', ns],
    ['get', 'configmaps', 'default'],
    ['create', 'widgets.smoke.finetune.test', ns],
  ]) {
    const r = await kubectl(['auth', 'can-i', verb, res, '-n', where], asSA);
    assert.equal(r.stdout.trim(), 'no', `can-i ${verb} ${res} -n ${where}: ${r.stdout}${r.stderr}`);
    assert.equal(r.code, 1);
  }
  // The same answers from the admin's point of view, via impersonation.
  const imp = await kubectl(['auth', 'can-i', 'list', 'configmaps', '-n', ns, `--as=system:serviceaccount:${ns}:restricted`]);
  assert.equal(imp.stdout.trim(), 'yes');
  const admin = await kubectl(['auth', 'can-i', '*', '*']);
  assert.equal(admin.stdout.trim(), 'yes');

  // And real requests are authorized the same way.
  const cm = JSON.parse(await kubectlOk(['get', 'configmap', 'c1', '-o', 'json'], asSA));
  assert.equal(cm.data.k, 'v');
  const denied = await kubectl(['get', 'secrets'], asSA);
  assert.notEqual(denied.code, 0);
  assert.match(denied.stderr, /forbidden/i);
});

test('kube-scheduler binds a pod once a schedulable Node object exists', { timeout: 2 * STEP_TIMEOUT_MS }, async () => {
  assert.ok(cp.scheduler, 'the harness starts kube-scheduler by default');
  const ns = 'smoke-sched';
  await kubectlOk(['create', 'namespace', ns]);
  // A Node object as a node agent would register it. The apiserver's TaintNodesByCondition
  // admission adds node.kubernetes.io/not-ready; without kube-controller-manager nobody
  // removes it, so the agent (here: the test) has to.
  await kubectlOk(['apply', '-f', '-'], {
    input: `
apiVersion: v1
kind: Node
metadata: { name: smoke-node-1, labels: { kubernetes.io/hostname: smoke-node-1 } }
status:
  capacity: { cpu: "4", memory: 8Gi, pods: "110" }
  allocatable: { cpu: "4", memory: 8Gi, pods: "110" }
`,
  });
  await kubectlOk(['taint', 'nodes', 'smoke-node-1', 'node.kubernetes.io/not-ready:NoSchedule-']);
  await kubectlOk(['run', 'p2', '-n', ns, '--image=example.invalid/none:1', '--restart=Never']);
  let nodeName = '';
  for (let i = 0; i < 60 && !nodeName; i++) {
    nodeName = (await kubectlOk(['get', 'pod', 'p2', '-n', ns, '-o', 'jsonpath={.spec.nodeName}'])).trim();
    if (!nodeName) await new Promise((res) => setTimeout(res, 500));
  }
  assert.equal(nodeName, 'smoke-node-1');
  const phase = (await kubectlOk(['get', 'pod', 'p2', '-n', ns, '-o', 'jsonpath={.status.phase}'])).trim();
  assert.equal(phase, 'Pending', 'no kubelet runs it');
});
