import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTrainingArtifacts, type ParameterInfo } from '../autodiff/training-graph.js';
import { ModelBuilder, randomValues, rng } from '../testing/model-builder.js';
import { gradientReadyOrder, planBuckets } from './buckets.js';

/** MLP 8-16-16-4 with parameters declared in forward order. */
async function mlp() {
  const r = rng(3);
  const m = new ModelBuilder();
  let h = m.input('x', ['batch', 8]);
  const dims = [8, 16, 16, 4];
  for (let l = 1; l < dims.length; l++) {
    const [i, o] = [dims[l - 1]!, dims[l]!];
    h = m.node('Gemm', [h, m.param(`fc${l}.weight`, [o, i], randomValues(r, o * i)), m.param(`fc${l}.bias`, [o], randomValues(r, o))], { transB: 1 });
    if (l < dims.length - 1) h = m.node('Relu', [h]);
  }
  m.output(h);
  return buildTrainingArtifacts(m.build(), { loss: 'cross_entropy' });
}

test('gradients become ready from the last layer back to the first', async () => {
  const { training, params } = await mlp();
  const order = gradientReadyOrder(training.graph, params).map((i) => params[i]!.name);
  assert.deepEqual(order, ['fc3.weight', 'fc3.bias', 'fc2.weight', 'fc2.bias', 'fc1.weight', 'fc1.bias']);
});

const p = (name: string, values: number): ParameterInfo => ({ name, dims: [values] });

test('a bucket closes once it holds the cap; a last bucket under 1/16 of it joins the one before', () => {
  const params = [p('a', 1000), p('b', 1000), p('c', 3000), p('d', 10)]; // 4000, 4000, 12000, 40 bytes
  assert.deepEqual(planBuckets([0, 1, 2, 3], params, 8000), [[0, 1], [2, 3]]);
  assert.deepEqual(planBuckets([3, 2, 1, 0], params, 8000), [[3, 2], [1, 0]]);
  // Every parameter alone once the cap is tiny.
  assert.deepEqual(planBuckets([0, 1, 2, 3], params, 1), [[0], [1], [2], [3]]);
  // One bucket when everything fits.
  assert.deepEqual(planBuckets([0, 1, 2, 3], params, 1 << 20), [[0, 1, 2, 3]]);
  assert.throws(() => planBuckets([0], params, 0), /bucket size must be > 0/);
});

test('a last bucket of 1/16 of the cap or more keeps its own all-reduce', () => {
  const params = [p('a', 1 << 20), p('b', 1 << 14), p('c', (1 << 14) - 1)]; // 4 MiB, 64 KiB, 64 KiB - 4
  assert.deepEqual(planBuckets([0, 1], params, 1 << 20), [[0], [1]]);
  assert.deepEqual(planBuckets([0, 2], params, 1 << 20), [[0, 2]]);
});
