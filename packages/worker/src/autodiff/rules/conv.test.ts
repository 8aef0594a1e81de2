import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { ModelBuilder, rng, randomValues, type AttrInput } from '../../testing/model-builder.js';
import { gradCheck, nonStandardOps } from '../../testing/gradcheck.js';
import { buildTrainingArtifacts, gradName, LABELS_INPUT } from '../training-graph.js';
import { modelToBytes } from '../../onnx/load.js';

const count = (dims: number[]) => dims.reduce((p, q) => p * q, 1);

/** Distinct values, a random permutation of a grid 0.1 apart, so no FD step (eps 1e-2) crosses a tie in max. */
function separated(random: () => number, n: number): Float32Array {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return Float32Array.from(order, (k) => (k - n / 2) * 0.1);
}

function tensor(values: Float32Array, dims: number[]): ort.Tensor {
  return new ort.Tensor('float32', values, dims);
}

// --- Conv ----------------------------------------------------------------------------------------

interface ConvCase {
  label: string;
  x: number[];
  /** Weight shape [M, C/group, k...]. */
  w: number[];
  attrs?: Record<string, AttrInput>;
  bias?: boolean;
  opset?: number;
}

const convCases: ConvCase[] = [
  { label: '3x3, stride 1, pad 1, bias, non-square, batch 2', x: [2, 3, 5, 6], w: [4, 3, 3, 3], attrs: { pads: [1, 1, 1, 1] }, bias: true },
  { label: '3x3, stride 2, no pad, sizes leaving a remainder', x: [2, 2, 7, 6], w: [3, 2, 3, 3], attrs: { strides: [2, 2] }, bias: true },
  { label: '3x3, stride 2, asymmetric pads', x: [1, 2, 6, 7], w: [2, 2, 3, 3], attrs: { strides: [2, 2], pads: [1, 0, 0, 2] } },
  { label: '3x3, dilation 2, pad 2', x: [2, 2, 7, 8], w: [3, 2, 3, 3], attrs: { dilations: [2, 2], pads: [2, 2, 2, 2] }, bias: true },
  { label: 'dilation 2 and stride 2 with mixed kernel 2x3', x: [1, 2, 9, 8], w: [2, 2, 2, 3], attrs: { dilations: [2, 1], strides: [2, 3], pads: [1, 0, 1, 1] } },
  { label: 'group 2, stride 2, pad 1', x: [2, 4, 6, 5], w: [6, 2, 3, 3], attrs: { group: 2, strides: [2, 2], pads: [1, 1, 1, 1] }, bias: true },
  { label: 'depthwise (group == C)', x: [2, 3, 5, 6], w: [3, 1, 3, 3], attrs: { group: 3, pads: [1, 1, 1, 1] }, bias: true },
  { label: 'depthwise with channel multiplier 2, stride 2', x: [1, 3, 7, 6], w: [6, 1, 3, 3], attrs: { group: 3, strides: [2, 2] } },
  { label: 'grouped 1 < group < C (3 groups of 2 channels), dilation 2', x: [2, 6, 7, 7], w: [3, 2, 3, 3], attrs: { group: 3, dilations: [2, 2], pads: [1, 2, 1, 0] } },
  { label: '1x1 kernel, stride 2', x: [2, 3, 5, 4], w: [4, 3, 1, 1], attrs: { strides: [2, 2] }, bias: true },
  { label: '1-D, kernel 3, stride 2, dilation 2, pad 1', x: [2, 3, 11], w: [4, 3, 3], attrs: { strides: [2], dilations: [2], pads: [1, 2] }, bias: true },
  { label: '1-D, group 2, kernel_shape given', x: [1, 4, 9], w: [2, 2, 4], attrs: { group: 2, kernel_shape: [4], pads: [0, 1] } },
  { label: '3-D, stride 2, pad 1', x: [1, 2, 4, 5, 3], w: [2, 2, 2, 3, 2], attrs: { strides: [2, 1, 2], pads: [1, 0, 1, 0, 1, 0] }, bias: true },
  { label: 'auto_pad SAME_UPPER, stride 2', x: [1, 2, 7, 6], w: [2, 2, 3, 3], attrs: { auto_pad: 'SAME_UPPER', strides: [2, 2] } },
  { label: 'auto_pad SAME_LOWER, stride 2, 4x4 kernel', x: [1, 2, 7, 6], w: [2, 2, 4, 4], attrs: { auto_pad: 'SAME_LOWER', strides: [2, 2] } },
  { label: 'auto_pad VALID, stride 2', x: [1, 2, 7, 6], w: [3, 2, 3, 2], attrs: { auto_pad: 'VALID', strides: [2, 2] }, bias: true },
];

for (const c of convCases) {
  test(`Conv gradients (${c.label}) match finite differences`, async () => {
    const r = rng(c.label.length * 31 + c.x.length);
    const m = new ModelBuilder(c.opset ?? 17);
    const x = m.param('x', c.x, randomValues(r, count(c.x)));
    const w = m.param('w', c.w, randomValues(r, count(c.w)));
    const inputs = c.bias ? [x, w, m.param('b', [c.w[0]!], randomValues(r, c.w[0]!))] : [x, w];
    m.output(m.node('Conv', inputs, c.attrs ?? {}));
    const { artifacts } = await gradCheck(m.build());
    assert.deepEqual(nonStandardOps(artifacts.training), []);
    assert.deepEqual(artifacts.params.map((p) => p.name), c.bias ? ['x', 'w', 'b'] : ['x', 'w']);
  });
}

/**
 * A symbolic batch: x + p feeds the Conv, so p's gradient is dX summed over the batch, and one
 * training graph must serve both batch sizes.
 */
for (const [label, channels, wShape, attrs] of [
  ['group 1, stride 2, pad 1', 3, [4, 3, 3, 3], { strides: [2, 2], pads: [1, 1, 1, 1] }],
  ['group 2, stride 2', 4, [6, 2, 3, 3], { group: 2, strides: [2, 2], pads: [0, 1, 1, 0] }],
  ['depthwise', 3, [3, 1, 3, 3], { group: 3, pads: [1, 1, 1, 1] }],
] as [string, number, number[], Record<string, AttrInput>][]) {
  test(`Conv with a symbolic batch (${label}) serves two batch sizes`, async () => {
    const r = rng(label.length);
    const m = new ModelBuilder();
    const x = m.input('x', ['batch', channels, 6, 5]);
    const p = m.param('p', [channels, 6, 5], randomValues(r, channels * 30));
    const w = m.param('w', wShape, randomValues(r, count(wShape)));
    const bias = m.param('b', [wShape[0]!], randomValues(r, wShape[0]!));
    m.output(m.node('Conv', [m.node('Add', [x, p]), w, bias], attrs));
    for (const batch of [1, 3]) {
      const feeds = { x: tensor(randomValues(r, batch * channels * 30), [batch, channels, 6, 5]) };
      await gradCheck(m.build(), { feeds });
    }
  });
}

/*
 * Symbolic spatial sizes: the probe runs h = 3, 4 and w = 4, 5; the pads are chosen so both output
 * axes differ between those runs too (else the probe would take them as fixed and size the labels).
 */
test('Conv with symbolic spatial sizes and stride 2 (dynamic input gradient path) serves two image sizes', async () => {
  const r = rng(41);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 2, 'h', 'w']);
  const s = m.param('s', [1, 2, 1, 1], randomValues(r, 2, 0.5, 1.5));
  const w = m.param('w', [4, 1, 3, 3], randomValues(r, 36));
  m.output(m.node('Conv', [m.node('Mul', [x, s]), w], { group: 2, strides: [2, 2], pads: [1, 1, 0, 1] }));
  for (const [batch, h, wd] of [[2, 7, 6], [1, 8, 9]] as const) {
    const feeds = { x: tensor(randomValues(r, batch * 2 * h * wd), [batch, 2, h, wd]) };
    const { artifacts } = await gradCheck(m.build(), { feeds });
    assert.deepEqual(nonStandardOps(artifacts.training), []);
  }
});

test('Conv with auto_pad SAME and dynamic spatial sizes fails with a clear message', async () => {
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 2, 'h', 'w']);
  const s = m.param('s', [1, 2, 1, 1], [1, 1]);
  const w = m.param('w', [2, 2, 3, 3], randomValues(rng(3), 36));
  m.output(m.node('Conv', [m.node('Mul', [x, s]), w], { auto_pad: 'SAME_UPPER', strides: [2, 2] }));
  await assert.rejects(buildTrainingArtifacts(m.build(), { loss: 'mse' }), /auto_pad SAME_UPPER needs fixed, known spatial input sizes/);
});

test('Conv reading a graph input directly (weight gradient only, group 2) needs no facts about the input', async () => {
  const r = rng(43);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 4, 5, 5]);
  const w = m.param('w', [6, 2, 3, 3], randomValues(r, 108));
  m.output(m.node('Conv', [x, w], { strides: [2, 2], group: 2, pads: [1, 0, 0, 1] }));
  const feeds = { x: tensor(randomValues(r, 2 * 100), [2, 4, 5, 5]) };
  const { artifacts } = await gradCheck(m.build(), { feeds });
  assert.ok(!artifacts.training.graph.nodes.some((n) => n.opType === 'ConvTranspose'));
});

// --- ConvTranspose -------------------------------------------------------------------------------

const convTransposeCases: ConvCase[] = [
  { label: 'stride 2, pad 1, output_padding 1, bias', x: [2, 3, 4, 5], w: [3, 2, 3, 3], attrs: { strides: [2, 2], pads: [1, 1, 1, 1], output_padding: [1, 1] }, bias: true },
  { label: 'group 2, dilation 2, asymmetric pads', x: [1, 4, 4, 3], w: [4, 3, 3, 2], attrs: { group: 2, dilations: [2, 2], pads: [1, 0, 0, 1] }, bias: true },
  { label: '1-D, stride 3, output_padding 2', x: [2, 2, 5], w: [2, 3, 4], attrs: { strides: [3], pads: [1, 2], output_padding: [2] } },
];

for (const c of convTransposeCases) {
  test(`ConvTranspose gradients (${c.label}) match finite differences`, async () => {
    const r = rng(c.label.length * 7);
    const m = new ModelBuilder();
    const x = m.param('x', c.x, randomValues(r, count(c.x)));
    const w = m.param('w', c.w, randomValues(r, count(c.w)));
    const group = typeof c.attrs?.group === 'number' ? c.attrs.group : 1;
    const inputs = c.bias ? [x, w, m.param('b', [c.w[1]! * group], randomValues(r, c.w[1]! * group))] : [x, w];
    m.output(m.node('ConvTranspose', inputs, c.attrs ?? {}));
    const { artifacts } = await gradCheck(m.build());
    assert.deepEqual(nonStandardOps(artifacts.training), []);
  });
}

test('ConvTranspose with a symbolic batch serves two batch sizes', async () => {
  const r = rng(47);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 4, 3, 4]);
  const p = m.param('p', [4, 3, 4], randomValues(r, 48));
  const w = m.param('w', [4, 1, 3, 3], randomValues(r, 36));
  m.output(m.node('ConvTranspose', [m.node('Add', [x, p]), w], { group: 2, strides: [2, 2], pads: [1, 1, 0, 0] }));
  for (const batch of [2, 3]) {
    await gradCheck(m.build(), { feeds: { x: tensor(randomValues(r, batch * 48), [batch, 4, 3, 4]) } });
  }
});

test('ConvTranspose with output_shape fails with a clear message', async () => {
  const m = new ModelBuilder();
  const x = m.param('x', [1, 2, 3, 3], randomValues(rng(5), 18));
  const w = m.param('w', [2, 2, 3, 3], randomValues(rng(6), 36));
  m.output(m.node('ConvTranspose', [x, w], { strides: [2, 2], output_shape: [6, 6] }));
  await assert.rejects(buildTrainingArtifacts(m.build(), { loss: 'mse' }), /output_shape attribute is not supported/);
});

// --- MaxPool -------------------------------------------------------------------------------------

test('ONNX Runtime MaxPool Indices are flat over N*C*H*W (batch > 1, C > 1, padding)', async () => {
  const dims = [2, 3, 5, 4];
  const xs = separated(rng(51), count(dims));
  const m = new ModelBuilder();
  m.input('x', dims);
  const [y, idx] = m.nodeN('MaxPool', ['x'], 2, { kernel_shape: [3, 3], strides: [2, 1], pads: [1, 1, 1, 0] });
  m.output(y!).output(idx!, 7);
  const session = await ort.InferenceSession.create(modelToBytes(m.build()));
  try {
    const out = await session.run({ x: tensor(xs, dims) });
    const ys = out[y!]!.data as Float32Array;
    const is = out[idx!]!.data as BigInt64Array;
    const [, , ho, wo] = out[y!]!.dims.map(Number) as [number, number, number, number];
    const perImage = 5 * 4;
    is.forEach((flat, k) => {
      assert.equal(xs[Number(flat)], ys[k], `index ${flat} at output ${k} points at its maximum`);
      // Output k belongs to image (n, c) = floor(k / (ho*wo)); its index lies in that image's block.
      assert.equal(Math.floor(Number(flat) / perImage), Math.floor(k / (ho * wo)));
    });
  } finally {
    await session.release();
  }
});

interface PoolCase {
  label: string;
  x: number[];
  attrs: Record<string, AttrInput>;
  opset?: number;
}

const maxPoolCases: PoolCase[] = [
  { label: 'kernel 3, stride 1 (overlapping), pad 1, batch 2, 3 channels', x: [2, 3, 5, 6], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } },
  { label: 'kernel 3, stride 2 (overlapping), no pad', x: [2, 2, 7, 6], attrs: { kernel_shape: [3, 3], strides: [2, 2] } },
  { label: 'kernel 3, stride 2, pad 1, ceil_mode', x: [1, 2, 6, 8], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 } },
  { label: 'kernel 2x3, stride 2, ceil_mode, no pad', x: [2, 2, 7, 8], attrs: { kernel_shape: [2, 3], strides: [2, 2], ceil_mode: 1 } },
  { label: 'dilation 2', x: [1, 2, 7, 7], attrs: { kernel_shape: [2, 2], dilations: [2, 2], pads: [1, 0, 1, 0] } },
  { label: '1-D, kernel 3, stride 2, pad 1', x: [2, 3, 9], attrs: { kernel_shape: [3], strides: [2], pads: [1, 1] } },
  { label: 'auto_pad SAME_UPPER', x: [1, 2, 5, 6], attrs: { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_UPPER' } },
];

for (const c of maxPoolCases) {
  test(`MaxPool gradient (${c.label}) matches finite differences`, async () => {
    const m = new ModelBuilder(c.opset ?? 17);
    m.output(m.node('MaxPool', [m.param('x', c.x, separated(rng(c.label.length), count(c.x)))], c.attrs));
    const { artifacts } = await gradCheck(m.build(), { maxCoords: 64 });
    assert.deepEqual(nonStandardOps(artifacts.training), []);
  });
}

test('MaxPool with a symbolic batch serves two batch sizes', async () => {
  const r = rng(53);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 2, 5, 6]);
  // Well separated values in p, tiny input values: no window holds a near tie.
  const p = m.param('p', [2, 5, 6], separated(r, 60));
  m.output(m.node('MaxPool', [m.node('Add', [x, p])], { kernel_shape: [3, 3], strides: [2, 1], pads: [1, 1, 1, 1] }));
  for (const batch of [1, 3]) {
    await gradCheck(m.build(), { feeds: { x: tensor(randomValues(r, batch * 60, 0, 0.01), [batch, 2, 5, 6]) } });
  }
});

test('MaxPool whose Indices the model already outputs reuses them', async () => {
  const m = new ModelBuilder();
  const [y, idx] = m.nodeN('MaxPool', [m.param('x', [1, 2, 4, 4], separated(rng(55), 32))], 2, { kernel_shape: [2, 2], strides: [1, 1] });
  m.output(y!).output(idx!, 7);
  const { artifacts } = await gradCheck(m.build());
  assert.equal(artifacts.training.graph.nodes.filter((n) => n.opType === 'MaxPool').length, 1);
});

test('MaxPool with storage_order 1 fails with a clear message', async () => {
  const m = new ModelBuilder();
  m.output(m.node('MaxPool', [m.param('x', [1, 1, 4, 4], separated(rng(57), 16))], { kernel_shape: [2, 2], storage_order: 1 }));
  await assert.rejects(buildTrainingArtifacts(m.build(), { loss: 'mse' }), /storage_order 1/);
});

// --- AveragePool ---------------------------------------------------------------------------------

const averagePoolCases: PoolCase[] = [
  { label: 'kernel 2, stride 2, no pad (uniform count)', x: [2, 3, 6, 4], attrs: { kernel_shape: [2, 2], strides: [2, 2] } },
  { label: 'kernel 3, stride 1, pad 1, count_include_pad 0 (the default)', x: [2, 3, 5, 6], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1] } },
  { label: 'kernel 3, stride 1, pad 1, count_include_pad 1', x: [2, 3, 5, 6], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], count_include_pad: 1 } },
  { label: 'kernel 3, stride 2, asymmetric pads, count_include_pad 0', x: [1, 2, 7, 6], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 0, 2, 1] } },
  { label: 'kernel 3, stride 2, pad 1, ceil_mode, count_include_pad 0', x: [2, 2, 6, 8], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1 } },
  { label: 'kernel 3, stride 2, pad 1, ceil_mode, count_include_pad 1', x: [2, 2, 6, 8], attrs: { kernel_shape: [3, 3], strides: [2, 2], pads: [1, 1, 1, 1], ceil_mode: 1, count_include_pad: 1 } },
  { label: 'kernel 2x3, stride 2, ceil_mode, no pad', x: [1, 3, 7, 8], attrs: { kernel_shape: [2, 3], strides: [2, 2], ceil_mode: 1 } },
  { label: '1-D, kernel 3, stride 2, pad 1', x: [2, 3, 10], attrs: { kernel_shape: [3], strides: [2], pads: [1, 1] } },
  { label: 'auto_pad SAME_LOWER, stride 2', x: [1, 2, 5, 6], attrs: { kernel_shape: [3, 3], strides: [2, 2], auto_pad: 'SAME_LOWER' } },
  { label: 'dilation 2, pad 1 (opset 19)', x: [1, 2, 7, 8], attrs: { kernel_shape: [2, 3], dilations: [2, 2], pads: [1, 1, 1, 1] }, opset: 19 },
];

for (const c of averagePoolCases) {
  test(`AveragePool gradient (${c.label}) matches finite differences`, async () => {
    const m = new ModelBuilder(c.opset ?? 17);
    m.output(m.node('AveragePool', [m.param('x', c.x, randomValues(rng(c.label.length), count(c.x)))], c.attrs));
    const { artifacts } = await gradCheck(m.build(), { maxCoords: 64 });
    assert.deepEqual(nonStandardOps(artifacts.training), []);
  });
}

for (const includePad of [0, 1]) {
  test(`AveragePool with symbolic batch and spatial sizes (ceil_mode, count_include_pad ${includePad}) serves two input sizes`, async () => {
    const r = rng(59 + includePad);
    const m = new ModelBuilder();
    const x = m.input('x', ['batch', 2, 'h', 'w']);
    const s = m.param('s', [1, 2, 1, 1], randomValues(r, 2, 0.5, 1.5));
    // pads [1, 0, 1, 1]: the probe's sizes (3x4, 4x5) give different output sizes (see the Conv test).
    const pooled = m.node('AveragePool', [m.node('Mul', [x, s])], {
      kernel_shape: [3, 3], strides: [2, 2], pads: [1, 0, 1, 1], ceil_mode: 1, count_include_pad: includePad,
    });
    // A trainable map after the pool checks dX position by position through s and each dY.
    m.output(m.node('Mul', [pooled, pooled]));
    for (const [batch, h, w] of [[2, 6, 8], [1, 7, 5]] as const) {
      await gradCheck(m.build(), { feeds: { x: tensor(randomValues(r, batch * 2 * h * w), [batch, 2, h, w]) } });
    }
  });
}

// --- Global pools --------------------------------------------------------------------------------

test('GlobalAveragePool gradient matches finite differences (2-D and 1-D)', async () => {
  for (const dims of [[2, 3, 4, 5], [2, 3, 7]]) {
    const m = new ModelBuilder();
    m.output(m.node('GlobalAveragePool', [m.param('x', dims, randomValues(rng(dims.length), count(dims)))]));
    const { artifacts } = await gradCheck(m.build());
    assert.deepEqual(nonStandardOps(artifacts.training), []);
  }
});

test('GlobalAveragePool with symbolic batch and spatial sizes serves two input sizes', async () => {
  const r = rng(61);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 3, 'h', 'w']);
  const s = m.param('s', [1, 3, 1, 1], randomValues(r, 3, 0.5, 1.5));
  const g = m.node('GlobalAveragePool', [m.node('Mul', [x, s])]);
  m.output(m.node('Mul', [g, g]));
  for (const [batch, h, w] of [[2, 3, 4], [3, 5, 2]] as const) {
    await gradCheck(m.build(), { feeds: { x: tensor(randomValues(r, batch * 3 * h * w), [batch, 3, h, w]) } });
  }
});

test('GlobalMaxPool gradient matches finite differences (2-D and 1-D)', async () => {
  for (const dims of [[2, 3, 4, 5], [2, 3, 7]]) {
    const m = new ModelBuilder();
    m.output(m.node('GlobalMaxPool', [m.param('x', dims, separated(rng(dims.length + 9), count(dims)))]));
    await gradCheck(m.build());
  }
});

test('GlobalMaxPool splits the gradient evenly among tied maxima', async () => {
  const m = new ModelBuilder();
  // Channel 0 has two tied maxima (3), channel 1 a single one (5).
  m.param('x', [1, 2, 2, 2], [3, 1, 3, 0, 5, 2, 4, 1]);
  m.output(m.node('GlobalMaxPool', ['x']));
  const artifacts = await buildTrainingArtifacts(m.build(), { loss: 'mse' });
  const session = await ort.InferenceSession.create(modelToBytes(artifacts.training));
  try {
    const out = await session.run({
      x: tensor(Float32Array.from([3, 1, 3, 0, 5, 2, 4, 1]), [1, 2, 2, 2]),
      [LABELS_INPUT]: tensor(Float32Array.from([0, 0]), [1, 2, 1, 1]),
    });
    // mse = mean((y - 0)^2) over 2 values: dL/dy = y, so dy = [3, 5].
    assert.deepEqual(Array.from(out[gradName('x')]!.data as Float32Array), [1.5, 0, 1.5, 0, 5, 0, 0, 0]);
  } finally {
    await session.release();
  }
});
