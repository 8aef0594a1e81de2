import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { ModelBuilder, rng, randomValues } from '../../testing/model-builder.js';
import { gradCheck, nonStandardOps } from '../../testing/gradcheck.js';
import { buildTrainingArtifacts } from '../training-graph.js';
import { attr } from '../builder.js';
import { DataType } from '../../onnx/types.js';

const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

const count = (dims: number[]) => dims.reduce((p, q) => p * q, 1);

/** A trainable float parameter with reproducible random values. */
function param(m: ModelBuilder, name: string, dims: number[], seed: number): string {
  return m.param(name, dims, randomValues(rng(seed), count(dims)));
}

function floats(dims: number[], seed: number): ort.Tensor {
  return new ort.Tensor('float32', randomValues(rng(seed), count(dims)), dims);
}

function int64s(dims: number[], values: number[]): ort.Tensor {
  return new ort.Tensor('int64', BigInt64Array.from(values.map(BigInt)), dims);
}

/** An int64 Constant node, for values (INT64_MAX, INT64_MIN) that a JS number cannot hold. */
function int64Const(m: ModelBuilder, values: bigint[]): string {
  return m.node('Constant', [], { value: attr.tensor({ name: 'c', dataType: DataType.INT64, dims: [values.length], values: BigInt64Array.from(values) }) });
}

/** x + w with x a graph input shaped [batch, ...rest] and w a parameter: a dynamic value that trains w. */
function batched(m: ModelBuilder, rest: number[], seed: number): string {
  const x = m.input('x', ['batch', ...rest]);
  return m.node('Add', [x, param(m, 'w', rest, seed)]);
}

/** Runs gradCheck with two batch sizes through the same model. */
async function checkBatches(build: () => ReturnType<ModelBuilder['build']>, feeds: (batch: number) => Record<string, ort.Tensor>): Promise<void> {
  for (const batch of [1, 4]) {
    const { artifacts } = await gradCheck(build(), { feeds: feeds(batch) });
    assert.deepEqual(nonStandardOps(artifacts.training), []);
  }
}

// --- Reshape-like ------------------------------------------------------------------------------

test('Reshape, Flatten, Squeeze and Unsqueeze gradients match finite differences', async () => {
  const cases: [string, number[], (m: ModelBuilder, x: string) => string][] = [
    ['Reshape [2,6] -> [3,4]', [2, 6], (m, x) => m.node('Reshape', [x, m.int64('s', [2], [3, 4])])],
    ['Reshape [2,3,4] -> [0,-1]', [2, 3, 4], (m, x) => m.node('Reshape', [x, m.int64('s', [2], [0, -1])])],
    ['Flatten axis 0', [2, 3, 4], (m, x) => m.node('Flatten', [x], { axis: 0 })],
    ['Flatten axis 2', [2, 3, 4], (m, x) => m.node('Flatten', [x], { axis: 2 })],
    ['Flatten axis -1', [2, 3, 4], (m, x) => m.node('Flatten', [x], { axis: -1 })],
    ['Squeeze axes [1,3]', [2, 1, 3, 1], (m, x) => m.node('Squeeze', [x, m.int64('a', [2], [1, 3])])],
    ['Squeeze axes [-1]', [2, 1, 3, 1], (m, x) => m.node('Squeeze', [x, m.int64('a', [1], [-1])])],
    ['Squeeze without axes', [1, 3, 1], (m, x) => m.node('Squeeze', [x])],
    ['Unsqueeze axes [0,-1]', [2, 3], (m, x) => m.node('Unsqueeze', [x, m.int64('a', [2], [0, -1])])],
  ];
  for (const [label, dims, make] of cases) {
    const m = new ModelBuilder();
    m.output(make(m, param(m, 'x', dims, dims.length)));
    await gradCheck(m.build()).catch((err: Error) => assert.fail(`${label}: ${err.message}`));
  }
});

test('Reshape with a symbolic batch: one graph for every batch size', async () => {
  const build = () => {
    const m = new ModelBuilder();
    const h = batched(m, [6], 3);
    m.output(m.node('Reshape', [h, m.int64('s', [3], [-1, 2, 3])]));
    return m.build();
  };
  await checkBatches(build, (batch) => ({ x: floats([batch, 6], batch) }));
});

// --- Transpose, Expand -------------------------------------------------------------------------

test('Transpose gradient (default, explicit and 4-D permutations) matches finite differences', async () => {
  const cases: [number[], number[] | undefined][] = [
    [[2, 3], undefined],
    [[2, 3, 4], undefined],
    [[2, 3, 4], [1, 2, 0]],
    [[2, 3, 4, 2], [0, 3, 1, 2]],
  ];
  for (const [dims, perm] of cases) {
    const m = new ModelBuilder();
    m.output(m.node('Transpose', [param(m, 'x', dims, dims.length)], perm ? { perm } : {}));
    await gradCheck(m.build());
  }
});

test('Expand gradient sums back over broadcast axes', async () => {
  const cases: [number[], number[]][] = [
    [[3, 1], [2, 3, 4]],
    [[4], [3, 4]],
    [[2, 1, 3], [2, 5, 3]],
    [[2, 3], [1, 1]], // the shape is broadcast to the input, not the other way round
  ];
  for (const [dims, shape] of cases) {
    const m = new ModelBuilder();
    m.output(m.node('Expand', [param(m, 'x', dims, dims.length), m.int64('s', [shape.length], shape)]));
    await gradCheck(m.build());
  }
});

test('Expand to the runtime shape of a batched input', async () => {
  const build = () => {
    const m = new ModelBuilder();
    const x = m.input('x', ['batch', 3]);
    const e = m.node('Expand', [param(m, 'w', [1, 3], 5), m.node('Shape', [x])]);
    m.output(m.node('Mul', [e, x]));
    return m.build();
  };
  await checkBatches(build, (batch) => ({ x: floats([batch, 3], batch) }));
});

// --- Slice -------------------------------------------------------------------------------------

/** Slice of a [4, 7] parameter (or the given dims) with constant starts/ends/axes/steps. */
async function checkSlice(dims: number[], starts: number[], ends: number[], axes?: number[], steps?: number[]): Promise<void> {
  const m = new ModelBuilder();
  const n = starts.length;
  const inputs = [param(m, 'x', dims, 31), m.int64('starts', [n], starts), m.int64('ends', [n], ends)];
  if (axes) inputs.push(m.int64('axes', [n], axes));
  if (steps) inputs.push(m.int64('steps', [n], steps));
  m.output(m.node('Slice', inputs));
  const { artifacts } = await gradCheck(m.build()).catch((err: Error) => assert.fail(`Slice ${JSON.stringify({ dims, starts, ends, axes, steps })}: ${err.message}`));
  assert.deepEqual(nonStandardOps(artifacts.training), []);
}

test('Slice with step 1: default axes, negative starts and axes, clamped ends', async () => {
  await checkSlice([4, 7], [1], [3]);
  await checkSlice([4, 7], [1, 2], [3, 6]);
  await checkSlice([4, 7], [-3], [100], [-1]);
  await checkSlice([4, 7], [-100], [-2], [1]);
  await checkSlice([2, 3, 5], [1], [2], [1]);
});

test('Slice on two axes at once, in either order', async () => {
  await checkSlice([4, 7], [1, 2], [3, 6], [0, 1]);
  await checkSlice([3, 4, 7], [2, 1], [6, 3], [-1, 1]);
});

test('Slice with steps 2 and 3 (the spread-out gradient may run past the end)', async () => {
  await checkSlice([4, 7], [0], [7], [1], [2]); // 0,2,4,6: fits exactly
  await checkSlice([4, 8], [1], [8], [1], [2]); // 1,3,5,7
  await checkSlice([4, 7], [1], [6], [1], [3]); // 1,4
  await checkSlice([5, 7], [1, 0], [5, 7], [0, 1], [3, 2]); // two strided axes
});

test('Slice with negative steps (reversal and strided reversal)', async () => {
  await checkSlice([4, 7], [-1], [-100], [1], [-1]); // full reverse
  await checkSlice([4, 7], [5], [0], [1], [-2]); // 5,3,1
  await checkSlice([4, 7], [100], [-100], [1], [-3]); // 6,3,0
  await checkSlice([4, 7], [2, 6], [0, 1], [0, 1], [-1, -2]);
});

test('Slice with INT64_MAX ends and INT64_MIN starts (as exporters write x[1:] and x[::-1])', async () => {
  const m = new ModelBuilder();
  const x = param(m, 'x', [3, 5], 7);
  const tail = m.node('Slice', [x, int64Const(m, [1n]), int64Const(m, [INT64_MAX]), m.int64('axes', [1], [1])]);
  const start = m.node('Slice', [tail, int64Const(m, [INT64_MIN]), int64Const(m, [2n]), m.int64('axes0', [1], [0])]);
  const rev = m.node('Slice', [start, int64Const(m, [INT64_MAX]), int64Const(m, [INT64_MIN]), m.int64('axes1', [1], [1]), m.int64('steps', [1], [-1])]);
  m.output(rev);
  await gradCheck(m.build());
});

test('Slice whose ends come from the runtime shape of another input (x[:, :seq] and x[:, -seq:])', async () => {
  const build = (fromEnd: boolean) => () => {
    const m = new ModelBuilder();
    const h = batched(m, [6, 2], 11);
    const mask = m.input('mask', ['batch', 'seq']);
    const seq = m.node('Slice', [m.node('Shape', [mask]), m.int64('one', [1], [1]), m.int64('two', [1], [2])]);
    const zero = m.int64('zero', [1], [0]);
    const axes = m.int64('axes', [1], [1]);
    const sliced = fromEnd
      ? m.node('Slice', [h, m.node('Neg', [seq]), int64Const(m, [INT64_MAX]), axes])
      : m.node('Slice', [h, zero, seq, axes]);
    m.output(sliced);
    return m.build();
  };
  for (const fromEnd of [false, true]) {
    for (const [batch, seq] of [[1, 2], [3, 5]] as const) {
      const feeds = { x: floats([batch, 6, 2], seq), mask: floats([batch, seq], 1) };
      const { artifacts } = await gradCheck(build(fromEnd)(), { feeds });
      assert.deepEqual(nonStandardOps(artifacts.training), []);
    }
  }
});

test('Slice with a symbolic batch and a strided dynamic axis', async () => {
  const build = () => {
    const m = new ModelBuilder();
    const h = m.node('Transpose', [batched(m, [5], 13)], { perm: [1, 0] }); // [5, batch]
    const s = m.node('Slice', [h, m.int64('st', [2], [1, 0]), m.int64('en', [2], [5, 1000]), m.int64('ax', [2], [0, 1]), m.int64('sp', [2], [1, 2])]);
    m.output(s);
    return m.build();
  };
  await checkBatches(build, (batch) => ({ x: floats([batch, 5], batch + 1) }));
  // Five rows: the last kept column is the last one.
  await gradCheck(build(), { feeds: { x: floats([5, 5], 9) } });
});

// --- Concat and Split --------------------------------------------------------------------------

test('Concat gradient splits dY back to every input (negative axis, three inputs)', async () => {
  const m = new ModelBuilder();
  const a = param(m, 'a', [2, 3], 1);
  const b = param(m, 'b', [2, 1], 2);
  const c = param(m, 'c', [2, 4], 3);
  m.output(m.node('Concat', [a, b, c], { axis: -1 }));
  const { artifacts } = await gradCheck(m.build());
  assert.deepEqual(nonStandardOps(artifacts.training), []);
  assert.equal(artifacts.params.length, 3);
});

test('Concat along a symbolic batch axis with a frozen input', async () => {
  const build = () => {
    const m = new ModelBuilder();
    const h = batched(m, [3], 4);
    const frozen = m.node('Constant', [], { value: attr.tensor({ name: 'k', dataType: DataType.FLOAT, dims: [2, 3], values: new Float32Array([1, 2, 3, 4, 5, 6]) }) });
    const p = param(m, 'p', [1, 3], 6);
    m.output(m.node('Concat', [frozen, h, p], { axis: 0 }));
    return m.build();
  };
  await checkBatches(build, (batch) => ({ x: floats([batch, 3], batch) }));
});

test('Concat of a graph input (no shape facts) and a parameter-derived value', async () => {
  const build = () => {
    const m = new ModelBuilder();
    const h = batched(m, [3], 8);
    const other = m.input('y', ['batch', 'width']);
    m.output(m.node('Concat', [other, h], { axis: 1 }));
    return m.build();
  };
  for (const [batch, width] of [[1, 2], [3, 4]] as const) {
    await gradCheck(build(), { feeds: { x: floats([batch, 3], batch), y: floats([batch, width], width) } });
  }
});

test('Split into unequal parts where only some outputs are used', async () => {
  // Only the last output reaches the loss.
  {
    const m = new ModelBuilder();
    const [, , last] = m.nodeN('Split', [param(m, 'x', [2, 9], 1), m.int64('split', [3], [2, 3, 4])], 3, { axis: 1 });
    m.output(last!);
    await gradCheck(m.build());
  }
  // The first and last outputs are used, the middle one is not (negative axis).
  {
    const m = new ModelBuilder();
    const [first, , last] = m.nodeN('Split', [param(m, 'x', [9, 2], 2), m.int64('split', [3], [4, 1, 4])], 3, { axis: -2 });
    // (Identity: the engine's topological sort mishandles a node reading two outputs of one node.)
    m.output(m.node('Mul', [first!, m.node('Identity', [last!])]));
    const { artifacts } = await gradCheck(m.build());
    assert.deepEqual(nonStandardOps(artifacts.training), []);
  }
});

test('Split into equal parts (opset 13) and with num_outputs (opset 18, uneven)', async () => {
  {
    const m = new ModelBuilder(13);
    const [a, b] = m.nodeN('Split', [param(m, 'x', [4, 3], 3)], 2, { axis: 0 });
    m.output(m.node('Sub', [a!, m.node('Mul', [b!, b!])]));
    await gradCheck(m.build());
  }
  {
    const m = new ModelBuilder(18);
    const [, b, c] = m.nodeN('Split', [param(m, 'x', [2, 8], 4)], 3, { axis: 1, num_outputs: 3 });
    m.output(m.node('Concat', [c!, m.node('Identity', [b!])], { axis: 1 }));
    await gradCheck(m.build());
  }
});

// --- Gather ------------------------------------------------------------------------------------

test('Gather as an embedding lookup: repeated token ids accumulate', async () => {
  const m = new ModelBuilder();
  const table = param(m, 'table', [5, 3], 1);
  m.output(m.node('Gather', [table, m.int64('ids', [2, 4], [1, 3, 1, 1, 4, 0, 3, 1])]));
  const { artifacts } = await gradCheck(m.build());
  assert.deepEqual(nonStandardOps(artifacts.training), []);
});

test('Gather embedding with token ids as a symbolic-batch input (negative ids wrap)', async () => {
  const build = () => {
    const m = new ModelBuilder();
    const ids = m.input('ids', ['batch', 3], DataType.INT64);
    m.output(m.node('Gather', [param(m, 'table', [6, 2], 2), ids]));
    return m.build();
  };
  await checkBatches(build, (batch) => ({ ids: int64s([batch, 3], Array.from({ length: batch * 3 }, (_, i) => [2, -1, 5, 2][i % 4]!)) }));
});

test('Gather on axis 1 with a scalar index takes the CLS token x[:, 0] (and x[:, -1])', async () => {
  for (const index of [0, -1]) {
    const build = () => {
      const m = new ModelBuilder();
      const h = batched(m, [4, 3], 3);
      m.output(m.node('Gather', [h, m.int64('i', [], [index])], { axis: 1 }));
      return m.build();
    };
    await checkBatches(build, (batch) => ({ x: floats([batch, 4, 3], batch) }));
  }
});

test('Gather on inner axes with N-D and negative indices', async () => {
  {
    // Axis -1 of [2, 3, 5] with [2, 2] indices; 4 and -1 are the same column.
    const m = new ModelBuilder();
    m.output(m.node('Gather', [param(m, 'x', [2, 3, 5], 4), m.int64('i', [2, 2], [4, -1, 0, 4])], { axis: -1 }));
    await gradCheck(m.build());
  }
  {
    // Axis 1 of a 4-D tensor: dY is [2, 3, 2, 3, 2], indices in the middle.
    const m = new ModelBuilder();
    m.output(m.node('Gather', [param(m, 'x', [2, 5, 3, 2], 5), m.int64('i', [3, 2], [1, 4, 1, 0, -2, 1])], { axis: 1 }));
    await gradCheck(m.build());
  }
  {
    // int32 indices.
    const m = new ModelBuilder();
    const idx = m.node('Cast', [m.int64('i', [3], [2, 0, 2])], { to: DataType.INT32 });
    m.output(m.node('Gather', [param(m, 'x', [4, 3], 6), idx], { axis: 1 }));
    await gradCheck(m.build());
  }
});

test('GatherElements gradient scatter-adds, with repeated and negative indices', async () => {
  {
    const m = new ModelBuilder();
    m.output(m.node('GatherElements', [param(m, 'x', [3, 4], 1), m.int64('i', [2, 4], [0, 2, 2, -1, 1, 1, 0, 2])], { axis: 0 }));
    await gradCheck(m.build());
  }
  {
    const m = new ModelBuilder();
    m.output(m.node('GatherElements', [param(m, 'x', [2, 3, 4], 2), m.int64('i', [2, 3, 2], [0, 3, 3, 3, -4, 1, 2, 2, 0, 1, 3, -1])], { axis: -1 }));
    await gradCheck(m.build());
  }
});

// --- Pad, Tile, Trilu --------------------------------------------------------------------------

test('Pad (constant mode) gradient, including a trainable padding value', async () => {
  {
    const m = new ModelBuilder();
    m.output(m.node('Pad', [param(m, 'x', [2, 3], 1), m.int64('pads', [4], [1, 0, 2, 1])]));
    await gradCheck(m.build());
  }
  {
    const m = new ModelBuilder();
    m.output(m.node('Pad', [param(m, 'x', [2, 3, 2], 2), m.int64('pads', [6], [0, 1, 1, 1, 0, 2]), param(m, 'v', [], 3)], { mode: 'constant' }));
    const { artifacts } = await gradCheck(m.build());
    assert.deepEqual(artifacts.params.map((p) => p.name).sort(), ['v', 'x']);
  }
});

test('Pad with negative pads (cropping) and with the opset-18 axes input', async () => {
  {
    const m = new ModelBuilder();
    m.output(m.node('Pad', [param(m, 'x', [3, 4], 4), m.int64('pads', [4], [-1, 2, 1, -2])]));
    await gradCheck(m.build());
  }
  {
    const m = new ModelBuilder(18);
    m.output(m.node('Pad', [param(m, 'x', [2, 3, 2], 5), m.int64('pads', [2], [2, 1]), m.node('Constant', [], { value: attr.tensor({ name: 'v', dataType: DataType.FLOAT, dims: [], values: new Float32Array([0.5]) }) }), m.int64('axes', [1], [-2])]));
    await gradCheck(m.build());
  }
});

test('Pad with pads from a symbolic batch', async () => {
  const build = () => {
    const m = new ModelBuilder();
    const h = batched(m, [3], 6);
    m.output(m.node('Pad', [h, m.int64('pads', [4], [1, 2, 0, 1])]));
    return m.build();
  };
  await checkBatches(build, (batch) => ({ x: floats([batch, 3], batch) }));
});

test('Tile gradient sums over the repeats', async () => {
  const cases: [number[], number[]][] = [
    [[2, 3], [2, 3]],
    [[1, 2, 2], [3, 1, 2]],
    [[3], [1]],
  ];
  for (const [dims, repeats] of cases) {
    const m = new ModelBuilder();
    m.output(m.node('Tile', [param(m, 'x', dims, dims.length), m.int64('r', [repeats.length], repeats)]));
    await gradCheck(m.build());
  }
  const build = () => {
    const m = new ModelBuilder();
    m.output(m.node('Tile', [batched(m, [3], 7), m.int64('r', [2], [2, 2])]));
    return m.build();
  };
  await checkBatches(build, (batch) => ({ x: floats([batch, 3], batch) }));
});

test('Trilu gradient keeps the same triangle', async () => {
  const cases: [number[], Record<string, number>, number | undefined][] = [
    [[4, 5], {}, undefined],
    [[4, 5], { upper: 0 }, -1],
    [[2, 3, 3], { upper: 1 }, 1],
  ];
  for (const [dims, attrs, k] of cases) {
    const m = new ModelBuilder();
    const inputs = [param(m, 'x', dims, dims.length)];
    if (k !== undefined) inputs.push(m.int64('k', [], [k]));
    m.output(m.node('Trilu', inputs, attrs));
    await gradCheck(m.build());
  }
});

// --- Errors ------------------------------------------------------------------------------------

test('Pad in reflect or edge mode is refused with a clear message', async () => {
  for (const mode of ['reflect', 'edge']) {
    const m = new ModelBuilder();
    m.output(m.node('Pad', [param(m, 'x', [3, 3], 1), m.int64('pads', [4], [1, 1, 1, 1])], { mode }));
    await assert.rejects(buildTrainingArtifacts(m.build(), { loss: 'mse' }), new RegExp(`Pad in '${mode}' mode is not supported`));
  }
});

test('Tile with repeats that change with the batch size is refused', async () => {
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 3]);
  const repeats = m.node('Concat', [m.node('Slice', [m.node('Shape', [x]), m.int64('z', [1], [0]), m.int64('o', [1], [1])]), m.int64('one', [1], [1])], { axis: 0 });
  m.output(m.node('Tile', [param(m, 'w', [1, 3], 1), repeats]));
  await assert.rejects(buildTrainingArtifacts(m.build(), { loss: 'mse' }), /repeats \(input 1\) must be known before training/);
});
