import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { ModelBuilder, rng, randomValues } from '../../testing/model-builder.js';
import { gradCheck, nonStandardOps } from '../../testing/gradcheck.js';
import { attr } from '../builder.js';

/** Values in [lo, hi] whose magnitude is at least `gap` (keeps FD steps away from kinks at 0). */
function awayFromZero(random: () => number, n: number, gap = 0.1): Float32Array {
  return randomValues(random, n).map((v) => (v >= 0 ? v + gap : v - gap));
}

const unaryCases: [string, (r: () => number, n: number) => Float32Array, Record<string, ReturnType<typeof attr.float>>?][] = [
  ['Neg', (r, n) => randomValues(r, n)],
  ['Identity', (r, n) => randomValues(r, n)],
  ['Sqrt', (r, n) => randomValues(r, n, 0.5, 2)],
  ['Exp', (r, n) => randomValues(r, n)],
  ['Log', (r, n) => randomValues(r, n, 0.5, 2)],
  ['Reciprocal', (r, n) => randomValues(r, n, 0.5, 2)],
  ['Abs', awayFromZero],
  ['Tanh', (r, n) => randomValues(r, n)],
  ['Sigmoid', (r, n) => randomValues(r, n, -3, 3)],
  ['Sin', (r, n) => randomValues(r, n)],
  ['Cos', (r, n) => randomValues(r, n)],
  ['Erf', (r, n) => randomValues(r, n, -2, 2)],
  ['Relu', awayFromZero],
  ['LeakyRelu', awayFromZero, { alpha: attr.float(0.2) }],
  ['Elu', awayFromZero, { alpha: attr.float(0.7) }],
  ['Softplus', (r, n) => randomValues(r, n, -3, 3)],
];

for (const [op, values, attrs] of unaryCases) {
  test(`${op} gradient matches finite differences`, async () => {
    const r = rng(op.length * 97);
    const m = new ModelBuilder();
    const x = m.param('x', [3, 4], values(r, 12));
    m.output(m.node(op, [x], attrs ?? {}));
    await gradCheck(m.build());
  });
}

test('HardSigmoid and HardSwish gradients match finite differences away from their kinks', async () => {
  const r = rng(5);
  // Kinks at x = -3 and 3 (HardSwish) and at -2.5, 2.5 for HardSigmoid(alpha .2, beta .5).
  const xs = randomValues(r, 12, -5, 5).map((v) => (Math.abs(Math.abs(v) - 3) < 0.1 || Math.abs(Math.abs(v) - 2.5) < 0.1 ? v + 0.3 : v));
  for (const op of ['HardSigmoid', 'HardSwish']) {
    const m = new ModelBuilder();
    m.output(m.node(op, [m.param('x', [12], xs)]));
    await gradCheck(m.build());
  }
});

test('Gelu (opset 20, exact and tanh) gradients match finite differences', async () => {
  for (const approximate of ['none', 'tanh']) {
    const m = new ModelBuilder(20);
    m.output(m.node('Gelu', [m.param('x', [2, 5], randomValues(rng(7), 10, -3, 3))], { approximate }));
    await gradCheck(m.build());
  }
});

const binaryShapes: [string, number[], number[]][] = [
  ['same shape', [2, 3], [2, 3]],
  ['row broadcast', [2, 3], [3]],
  ['column broadcast', [2, 3], [2, 1]],
  ['both broadcast', [4, 1, 3], [1, 5, 1]],
  ['scalar', [2, 3], []],
  ['lower rank on the left', [3], [2, 4, 3]],
];

for (const op of ['Add', 'Sub', 'Mul', 'Div']) {
  for (const [label, da, db] of binaryShapes) {
    test(`${op} gradient (${label}: [${da}] and [${db}]) matches finite differences`, async () => {
      const r = rng(op.length + da.length * 10 + db.length);
      const m = new ModelBuilder();
      const count = (d: number[]) => d.reduce((p, q) => p * q, 1);
      const a = m.param('a', da, randomValues(r, count(da)));
      // Divisors stay away from zero.
      const b = m.param('b', db, op === 'Div' ? randomValues(r, count(db), 0.5, 2) : randomValues(r, count(db)));
      m.output(m.node(op, [a, b]));
      const { artifacts } = await gradCheck(m.build());
      assert.deepEqual(nonStandardOps(artifacts.training), []);
    });
  }
}

test('Pow gradient for base and exponent matches finite differences', async () => {
  const r = rng(11);
  const m = new ModelBuilder();
  const x = m.param('x', [2, 3], randomValues(r, 6, 0.5, 2));
  const p = m.param('p', [3], randomValues(r, 3, 1, 3));
  m.output(m.node('Pow', [x, p]));
  await gradCheck(m.build());
});

test('Pow with a constant exponent trains only the base', async () => {
  const m = new ModelBuilder();
  const x = m.param('x', [4], [0.5, 1, 1.5, 2]);
  const two = m.node('Constant', [], { value: attr.tensor({ name: 'two', dataType: 1, dims: [], values: new Float32Array([2]) }) });
  m.output(m.node('Pow', [x, two]));
  const { artifacts } = await gradCheck(m.build());
  assert.deepEqual(artifacts.params.map((p) => p.name), ['x']);
});

test('Where gradient goes to the selected branch, with broadcasting', async () => {
  const r = rng(13);
  const m = new ModelBuilder();
  const cond = m.bool('cond', [2, 3], [1, 0, 1, 0, 0, 1]);
  const a = m.param('a', [2, 3], randomValues(r, 6));
  const b = m.param('b', [3], randomValues(r, 3));
  m.output(m.node('Where', [cond, a, b]));
  await gradCheck(m.build());
});

test('Clip with min/max inputs passes the gradient only inside the bounds', async () => {
  const m = new ModelBuilder();
  const x = m.param('x', [6], [-2, -0.7, -0.2, 0.3, 0.8, 2]);
  m.output(m.node('Clip', [x, m.param('lo', [], [-0.5]), m.param('hi', [], [0.5])]));
  const { artifacts } = await gradCheck(m.build(), { trainable: ['x'] });
  assert.equal(artifacts.params.length, 1);
});

test('Sum of three inputs with broadcasting, and a value used twice, accumulate gradients', async () => {
  const r = rng(17);
  const m = new ModelBuilder();
  const a = m.param('a', [2, 3], randomValues(r, 6));
  const b = m.param('b', [3], randomValues(r, 3));
  const s = m.node('Sum', [a, b, a]);
  m.output(m.node('Mul', [s, s]));
  await gradCheck(m.build());
});

test('Cast, Dropout (eval) and Identity pass gradients through', async () => {
  const r = rng(19);
  const m = new ModelBuilder();
  const x = m.param('x', [5], randomValues(r, 5));
  const c = m.node('Cast', [m.node('Cast', [x], { to: 11 })], { to: 1 });
  const [d] = m.nodeN('Dropout', [c], 1);
  m.output(m.node('Identity', [d!]));
  await gradCheck(m.build());
});

test('a symbolic batch dimension stays symbolic: one training graph serves every batch size', async () => {
  const r = rng(23);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 3]);
  const w = m.param('w', [3], randomValues(r, 3));
  m.output(m.node('Mul', [x, w]));
  for (const batch of [1, 4]) {
    const feeds = { x: new ort.Tensor('float32', randomValues(r, batch * 3), [batch, 3]) };
    await gradCheck(m.build(), { feeds });
  }
});
