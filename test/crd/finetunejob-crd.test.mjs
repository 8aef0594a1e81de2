// The generated FineTuneJob CRD on a real kube-apiserver (built from k8s.io/kubernetes, see
// test/control-plane): it installs, a user's YAML is accepted with the schema's defaults filled
// in, and the CEL rules and immutability hold where the schema alone cannot say it.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { startControlPlane, runKubectl } from '../control-plane/harness.mjs';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CRD = join(ROOT, 'deploy/helm/finetune-operator/crds/finetunejobs.finetune.dev.yaml');
const START_TIMEOUT_MS = (Number(process.env.FT_BUILD_TIMEOUT_S ?? 5400) + 300) * 1000;
let cp;

function kubectl(args, input) {
  return runKubectl(cp, args, { input });
}

const job = (spec) => JSON.stringify({ apiVersion: 'finetune.dev/v1alpha1', kind: 'FineTuneJob', metadata: { name: 'j', namespace: 'default' }, spec });

before(async () => {
  cp = await startControlPlane({ scheduler: false });
  const applied = await kubectl(['apply', '--server-side', '-f', CRD]);
  assert.equal(applied.code, 0, applied.stderr);
  const established = await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/finetunejobs.finetune.dev']);
  assert.equal(established.code, 0, established.stderr);
}, { timeout: START_TIMEOUT_MS });

after(async () => {
  await cp?.stop();
}, { timeout: 90_000 });

test('the example job is accepted and the schema defaults are filled in by the API server', { timeout: 60_000 }, async () => {
  const applied = await kubectl(['apply', '-f', join(ROOT, 'examples/digits-5to9.yaml')]);
  assert.equal(applied.code, 0, applied.stderr);
  const got = JSON.parse((await kubectl(['get', 'ftj', 'digits-5to9', '-o', 'json'])).stdout);
  assert.equal(got.spec.model.head.mode, 'replace');
  assert.equal(got.spec.dataset.validationSplit, 0.1);
  assert.equal(got.spec.workers.replicas, 1);
  assert.equal(got.spec.training.loss, 'cross_entropy');
  assert.deepEqual(got.spec.workers.allReduce, { overlap: 'never', bucketMiB: 4, wirePrecision: 'float32' });
  const table = await kubectl(['get', 'finetunejobs']);
  assert.match(table.stdout, /NAME\s+PHASE\s+WORKERS\s+PROGRESS\s+AGE/);
});

test('bad values and unknown fields are rejected, naming the field', { timeout: 60_000 }, async () => {
  const badLr = await kubectl(['apply', '--validate=strict', '-f', '-'], job({ model: { source: 'm.onnx' }, dataset: { builtin: 'mnist' }, optimizer: { learningRate: -1 } }));
  assert.notEqual(badLr.code, 0);
  assert.match(badLr.stderr, /spec\.optimizer\.learningRate/);
  const unknown = await kubectl(['apply', '--validate=strict', '-f', '-'], job({ model: { source: 'm.onnx' }, dataset: { builtin: 'mnist' }, training: { epoch: 3 } }));
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /unknown field "spec\.training\.epoch"/);
  // kubectl reads YAML 1.1, where `on` is true: why overlap says never/always.
  const yaml = 'apiVersion: finetune.dev/v1alpha1\nkind: FineTuneJob\nmetadata: { name: j, namespace: default }\nspec:\n  model: { source: m.onnx }\n  dataset: { builtin: mnist }\n  workers:\n    allReduce: { overlap: on, wirePrecision: fp8 }\n';
  const choices = await kubectl(['apply', '-f', '-'], yaml);
  assert.notEqual(choices.code, 0);
  assert.match(choices.stderr, /spec\.workers\.allReduce\.overlap: Unsupported value: true: supported values: "never", "auto", "always"/);
  assert.match(choices.stderr, /spec\.workers\.allReduce\.wirePrecision: Unsupported value: "fp8"/);
});

test('CEL rules: one dataset source, batch divisible by replicas', { timeout: 60_000 }, async () => {
  const both = await kubectl(['apply', '-f', '-'], job({ model: { source: 'm.onnx' }, dataset: { builtin: 'mnist', train: { path: 'x.jsonl' } } }));
  assert.notEqual(both.code, 0);
  assert.match(both.stderr, /give either builtin or train, not both/);
  const batch = await kubectl(['apply', '-f', '-'], job({ model: { source: 'm.onnx' }, dataset: { builtin: 'mnist' }, workers: { replicas: 3 }, training: { batchSize: 32 } }));
  assert.notEqual(batch.code, 0);
  assert.match(batch.stderr, /batchSize must be divisible by spec\.workers\.replicas/);
});

test('the model cannot change after creation; workers can', { timeout: 60_000 }, async () => {
  const created = await kubectl(['apply', '-f', '-'], job({ model: { source: 'a.onnx' }, dataset: { builtin: 'mnist' } }).replace('"name":"j"', '"name":"immutable"'));
  assert.equal(created.code, 0, created.stderr);
  const changed = await kubectl(['patch', 'ftj', 'immutable', '--type=merge', '-p', JSON.stringify({ spec: { model: { source: 'b.onnx' } } })]);
  assert.notEqual(changed.code, 0);
  assert.match(changed.stderr, /spec\.model cannot change after the job is created/);
  const scaled = await kubectl(['patch', 'ftj', 'immutable', '--type=merge', '-p', JSON.stringify({ spec: { workers: { replicas: 2 } } })]);
  assert.equal(scaled.code, 0, scaled.stderr);
});
