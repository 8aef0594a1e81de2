// Opt-in kube-controller-manager (startControlPlane({ controllers: true })):
// ownerReference garbage collection, namespace deletion, default ServiceAccounts.
//   node --test test/control-plane/
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { startControlPlane, runKubectl } from './harness.mjs';

const STEP_TIMEOUT_MS = 90_000;
const START_TIMEOUT_MS = (Number(process.env.FT_BUILD_TIMEOUT_S ?? 5400) + 300) * 1000;

let cp;

function kubectl(args, { input } = {}) {
  return runKubectl(cp, args, { input });
}
async function kubectlOk(args, opts) {
  const r = await kubectl(args, opts);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
  return r.stdout;
}
/** Polls fn until it returns a truthy value (or throws after timeoutMs). */
async function eventually(what, fn, timeoutMs = 60_000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 500));
  }
}

before(async () => {
  cp = await startControlPlane({ controllers: true, scheduler: false });
}, { timeout: START_TIMEOUT_MS });

after(async () => {
  await cp?.stop();
}, { timeout: 90_000 });

test('namespaces get a default ServiceAccount and kube-root-ca.crt', { timeout: STEP_TIMEOUT_MS }, async () => {
  assert.ok(cp.controllers);
  await kubectlOk(['create', 'namespace', 'ctl-sa']);
  await eventually('default ServiceAccount', async () => (await kubectl(['get', 'sa', 'default', '-n', 'ctl-sa'])).code === 0);
  await eventually('kube-root-ca.crt', async () => (await kubectl(['get', 'cm', 'kube-root-ca.crt', '-n', 'ctl-sa'])).code === 0);
  const token = (await kubectlOk(['create', 'token', 'default', '-n', 'ctl-sa', '--duration=10m'])).trim();
  assert.match(token, /^ey/);
});

test('garbage collector deletes dependents of a deleted owner', { timeout: STEP_TIMEOUT_MS }, async () => {
  await kubectlOk(['create', 'namespace', 'ctl-gc']);
  await kubectlOk(['create', 'configmap', 'owner', '-n', 'ctl-gc']);
  const uid = (await kubectlOk(['get', 'cm', 'owner', '-n', 'ctl-gc', '-o', 'jsonpath={.metadata.uid}'])).trim();
  await kubectlOk(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'child', namespace: 'ctl-gc', ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: 'owner', uid }] },
    }),
  });
  await kubectlOk(['delete', 'cm', 'owner', '-n', 'ctl-gc']);
  await eventually('child deleted', async () => (await kubectl(['get', 'cm', 'child', '-n', 'ctl-gc'])).code !== 0);
});

test('a deleted namespace goes away (namespace controller)', { timeout: STEP_TIMEOUT_MS }, async () => {
  await kubectlOk(['create', 'namespace', 'ctl-ns']);
  await kubectlOk(['create', 'configmap', 'c', '-n', 'ctl-ns']);
  await kubectlOk(['delete', 'namespace', 'ctl-ns', '--wait=false']);
  await eventually('namespace gone', async () => (await kubectl(['get', 'namespace', 'ctl-ns'])).code !== 0);
});
