import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { ModelBuilder, rng, randomValues, type AttrInput } from '../../testing/model-builder.js';
import { gradCheck, nonStandardOps } from '../../testing/gradcheck.js';
import { buildTrainingArtifacts, gradName, LABELS_INPUT } from '../training-graph.js';
import { modelToBytes } from '../../onnx/load.js';
import { attr } from '../builder.js';

const count = (dims: number[]) => dims.reduce((p, q) => p * q, 1);

/** Feeds for a graph input 'x' with the given concrete shape. */
function feedX(random: () => number, dims: number[]): Record<string, ort.Tensor> {
  return { x: new ort.Tensor('float32', randomValues(random, count(dims)), dims) };
}

// --- Softmax / LogSoftmax -------------------------------------------------------------------------

const softmaxCases: [string, number[], number | undefined][] = [
  ['axis 1 of a rank-3 tensor', [2, 3, 4], 1],
  ['axis -1 of a rank-3 tensor', [2, 3, 4], -1],
  ['default axis', [3, 5], undefined],
  ['axis -3 (first axis, negative)', [3, 2, 2], -3],
];

for (const op of ['Softmax', 'LogSoftmax']) {
  for (const [label, dims, axis] of softmaxCases) {
    test(`${op} gradient (${label}, [${dims}]) matches finite differences`, async () => {
      const m = new ModelBuilder();
      const x = m.param('x', dims, randomValues(rng(dims.length * 31 + (axis ?? 9)), count(dims), -2, 2));
      m.output(m.node(op, [x], axis === undefined ? {} : { axis }));
      await gradCheck(m.build());
    });
  }
}

test('Softmax under a symbolic batch dimension: one training graph serves two batch sizes', async () => {
  const r = rng(3);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 3, 4]);
  const w = m.param('w', [3, 1], randomValues(r, 3));
  m.output(m.node('Softmax', [m.node('Mul', [x, w])], { axis: 1 }));
  for (const batch of [1, 3]) {
    const { artifacts } = await gradCheck(m.build(), { feeds: feedX(r, [batch, 3, 4]) });
    assert.deepEqual(nonStandardOps(artifacts.training), []);
  }
});

// --- LayerNormalization ---------------------------------------------------------------------------

const layerNormCases: [string, number[], number, number[], boolean][] = [
  ['axis -1 on [2, 3, 4], Scale and B [4]', [2, 3, 4], -1, [4], true],
  ['axis 1 on [2, 3, 2, 2], Scale and B of the normalized shape', [2, 3, 2, 2], 1, [3, 2, 2], true],
  ['axis -2 on [2, 3, 4], no bias', [2, 3, 4], -2, [3, 4], false],
  ['axis -1 on [3, 5], Scale broadcast from [1]', [3, 5], -1, [1], true],
];

for (const [label, dims, axis, scaleDims, withBias] of layerNormCases) {
  test(`LayerNormalization gradient (${label}) matches finite differences`, async () => {
    const r = rng(dims.length * 7 + axis);
    const m = new ModelBuilder();
    const x = m.param('x', dims, randomValues(r, count(dims), -2, 2));
    const scale = m.param('scale', scaleDims, randomValues(r, count(scaleDims), 0.5, 1.5));
    const inputs = [x, scale];
    if (withBias) inputs.push(m.param('bias', scaleDims, randomValues(r, count(scaleDims))));
    m.output(m.node('LayerNormalization', inputs, { axis, epsilon: attr.float(1e-3) }));
    const { artifacts } = await gradCheck(m.build());
    assert.deepEqual(artifacts.params.map((p) => p.name), withBias ? ['x', 'scale', 'bias'] : ['x', 'scale']);
    assert.deepEqual(nonStandardOps(artifacts.training), []);
  });
}

test('LayerNormalization over a symbolic batch axis counts its elements at run time', async () => {
  const r = rng(41);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 4]);
  const w = m.param('w', [4], randomValues(r, 4, 0.5, 1.5));
  // axis 0: the normalized axes include the dynamic batch dimension.
  const y = m.node('LayerNormalization', [m.node('Mul', [x, w]), m.param('scale', [4], randomValues(r, 4, 0.5, 1.5))], { axis: 0 });
  m.output(y);
  for (const batch of [2, 5]) await gradCheck(m.build(), { feeds: feedX(r, [batch, 4]) });
});

test('LayerNormalization whose Mean/InvStdDev outputs already exist reuses them', async () => {
  const r = rng(43);
  const m = new ModelBuilder();
  const x = m.param('x', [2, 6], randomValues(r, 12, -2, 2));
  const [y] = m.nodeN('LayerNormalization', [x, m.param('scale', [6], randomValues(r, 6))], 3, {});
  m.output(y!);
  await gradCheck(m.build());
});

// --- BatchNormalization ---------------------------------------------------------------------------

/** A BatchNormalization model with non-trivial frozen statistics over channel count 3. */
function batchNormModel(dims: number[], seed: number, trainingMode = false): ModelBuilder {
  const r = rng(seed);
  const c = dims[1]!;
  const m = new ModelBuilder();
  const x = m.param('x', dims, randomValues(r, count(dims), -2, 2));
  const scale = m.param('scale', [c], randomValues(r, c, 0.5, 1.5));
  const bias = m.param('bias', [c], randomValues(r, c));
  const mean = m.param('mean', [c], randomValues(r, c, -0.5, 0.5));
  const variance = m.param('var', [c], randomValues(r, c, 0.3, 2));
  // Training mode needs the running-statistics outputs too.
  const attrs: Record<string, AttrInput> = { epsilon: attr.float(1e-3) };
  if (trainingMode) attrs.training_mode = 1;
  const [y] = m.nodeN('BatchNormalization', [x, scale, bias, mean, variance], trainingMode ? 3 : 1, attrs);
  m.output(y!);
  return m;
}

for (const dims of [[2, 3, 2, 2], [4, 3], [2, 3, 5]]) {
  test(`BatchNormalization (inference) gradient on [${dims}] matches finite differences`, async () => {
    const { artifacts } = await gradCheck(batchNormModel(dims, dims.length).build(), { trainable: ['x', 'scale', 'bias'] });
    assert.deepEqual(nonStandardOps(artifacts.training), []);
  });
}

test('BatchNormalization running statistics are frozen: by default they are not trained, and naming them fails', async () => {
  const model = batchNormModel([2, 3, 2], 5).build();
  const { artifacts } = await gradCheck(model);
  assert.deepEqual(artifacts.params.map((p) => p.name), ['x', 'scale', 'bias']);
  assert.deepEqual(artifacts.disconnected.sort(), ['mean', 'var']);
  await assert.rejects(buildTrainingArtifacts(model, { loss: 'mse', trainable: ['scale', 'mean'] }), /--trainable mean: does not influence the loss/);
});

test('BatchNormalization in training mode fails with a clear message', async () => {
  const model = batchNormModel([2, 3], 6, true).build();
  await assert.rejects(buildTrainingArtifacts(model, { loss: 'mse' }), /BatchNormalization in training mode .* is not supported/);
});

// --- Reductions -----------------------------------------------------------------------------------

interface ReduceCase {
  label: string;
  dims: number[];
  axes?: number[];
  keepdims?: number;
  noop?: number;
}

const reduceCases: ReduceCase[] = [
  { label: 'axis 1, keepdims 1', dims: [2, 3, 4], axes: [1] },
  { label: 'axis 1, keepdims 0', dims: [2, 3, 4], axes: [1], keepdims: 0 },
  { label: 'axes [-1, 0], keepdims 0', dims: [2, 3, 4], axes: [-1, 0], keepdims: 0 },
  { label: 'all axes (absent), keepdims 0', dims: [3, 4], keepdims: 0 },
  { label: 'all axes (absent), keepdims 1', dims: [2, 2, 3] },
];

/** Adds a Reduce* node, with its axes as an attribute or an input depending on the op and opset. */
function addReduce(m: ModelBuilder, op: string, x: string, c: ReduceCase, axesAsInput: boolean): string {
  const attrs: Record<string, number | number[]> = {};
  if (c.keepdims !== undefined) attrs.keepdims = c.keepdims;
  if (c.noop !== undefined) attrs.noop_with_empty_axes = c.noop;
  const inputs = [x];
  if (c.axes && axesAsInput) inputs.push(m.int64(`axes_${op}`, [c.axes.length], c.axes));
  else if (c.axes) attrs.axes = c.axes;
  return m.node(op, inputs, attrs);
}

/** Values spread out enough that max/min have no ties and L1 has no zeros. */
function distinctValues(random: () => number, n: number): Float32Array {
  const v = Array.from({ length: n }, (_, i) => (i + 1) * 0.37 * (i % 2 === 0 ? 1 : -1));
  for (let i = v.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [v[i], v[j]] = [v[j]!, v[i]!];
  }
  return Float32Array.from(v);
}

const reduceOps = ['ReduceSum', 'ReduceMean', 'ReduceSumSquare', 'ReduceL1', 'ReduceL2', 'ReduceLogSumExp', 'ReduceMax', 'ReduceMin'];

for (const op of reduceOps) {
  test(`${op} gradient matches finite differences (opset 17: ${reduceCases.map((c) => c.label).join('; ')})`, async () => {
    for (const c of reduceCases) {
      const m = new ModelBuilder();
      const x = m.param('x', c.dims, distinctValues(rng(c.dims.length + op.length), count(c.dims)).map((v) => v / count(c.dims)));
      m.output(addReduce(m, op, x, c, op === 'ReduceSum'));
      await gradCheck(m.build()).catch((e: Error) => assert.fail(`${c.label}: ${e.message}`));
    }
  });
}

test('ReduceMean (opset 18, axes as an input) and ReduceMax (opset 18) match finite differences', async () => {
  for (const op of ['ReduceMean', 'ReduceMax']) {
    for (const c of reduceCases) {
      const m = new ModelBuilder(18);
      const x = m.param('x', c.dims, distinctValues(rng(c.dims.length), count(c.dims)));
      m.output(addReduce(m, op, x, c, true));
      const { artifacts } = await gradCheck(m.build()).catch((e: Error) => assert.fail(`${op} ${c.label}: ${e.message}`));
      assert.deepEqual(nonStandardOps(artifacts.training), []);
    }
  }
});

test('ReduceSum with empty axes: noop_with_empty_axes 1 is the identity, 0 reduces everything', async () => {
  for (const noop of [0, 1]) {
    const m = new ModelBuilder();
    const x = m.param('x', [2, 3], randomValues(rng(noop + 50), 6));
    const y = m.node('ReduceSum', [x, m.int64('empty', [0], [])], { noop_with_empty_axes: noop, keepdims: 0 });
    m.output(m.node('Mul', [y, y]));
    await gradCheck(m.build());
  }
});

test('ReduceSum and ReduceMean over a symbolic batch, keepdims 0 and 1: one graph serves two batch sizes', async () => {
  const r = rng(61);
  for (const op of ['ReduceSum', 'ReduceMean']) {
    for (const [axes, keepdims] of [[[0], 0], [[0, -1], 1], [[1], 0]] as [number[], number][]) {
      const m = new ModelBuilder();
      const x = m.input('x', ['batch', 3, 2]);
      const w = m.param('w', [3, 2], randomValues(r, 6));
      const c: ReduceCase = { label: '', dims: [], axes, keepdims };
      m.output(addReduce(m, op, m.node('Mul', [x, w]), c, op === 'ReduceSum'));
      for (const batch of [2, 5]) {
        await gradCheck(m.build(), { feeds: feedX(r, [batch, 3, 2]) }).catch((e: Error) => assert.fail(`${op} axes [${axes}] keepdims ${keepdims} batch ${batch}: ${e.message}`));
      }
    }
  }
});

test('ReduceMean opset 18 over a symbolic batch axis', async () => {
  const r = rng(67);
  const m = new ModelBuilder(18);
  const x = m.input('x', ['batch', 4]);
  const w = m.param('w', [4], randomValues(r, 4));
  m.output(m.node('ReduceMean', [m.node('Mul', [x, w]), m.int64('axes', [1], [0])], { keepdims: 0 }));
  for (const batch of [1, 6]) await gradCheck(m.build(), { feeds: feedX(r, [batch, 4]) });
});

test('ReduceMax shares the gradient equally between tied maxima', async () => {
  const m = new ModelBuilder();
  const x = m.param('x', [4], [1, 3, 3, 2]);
  m.output(m.node('ReduceMax', [x], { keepdims: 0 }));
  const model = m.build();
  const artifacts = await buildTrainingArtifacts(model, { loss: 'mse' });
  const session = await ort.InferenceSession.create(modelToBytes(artifacts.training));
  try {
    const target = 1;
    const out = await session.run({
      x: new ort.Tensor('float32', Float32Array.from([1, 3, 3, 2]), [4]),
      [LABELS_INPUT]: new ort.Tensor('float32', Float32Array.from([target]), []),
    });
    // loss = (y - t)^2 with y = 3: dL/dy = 4, split between the two maxima.
    assert.deepEqual(Array.from(out[gradName('x')]!.data as Float32Array), [0, 2, 2, 0]);
  } finally {
    await session.release();
  }
});
