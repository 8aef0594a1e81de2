import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rng, randomValues } from '../testing/model-builder.js';
import { GradientAccumulator } from './accumulate.js';

/**
 * Gradient of the mean squared error of a linear model y = w.x + c over rows [from, to):
 * dL/dw = 2/N sum r x, dL/dc = 2/N sum r with r = w.x + c - y.
 */
function mseGrad(w: Float32Array, c: number, xs: Float32Array[], ys: number[], from: number, to: number): Float32Array[] {
  const gw = new Float64Array(w.length);
  let gc = 0;
  for (let n = from; n < to; n++) {
    let r = c - ys[n]!;
    for (let j = 0; j < w.length; j++) r += w[j]! * xs[n]![j]!;
    for (let j = 0; j < w.length; j++) gw[j] += (2 * r * xs[n]![j]!) / (to - from);
    gc += (2 * r) / (to - from);
  }
  return [Float32Array.from(gw), Float32Array.of(gc)];
}

function data(rows: number) {
  const r = rng(21);
  const w = randomValues(r, 5);
  const xs = Array.from({ length: rows }, () => randomValues(r, 5));
  const ys = Array.from(randomValues(r, rows, -3, 3));
  return { w, xs, ys };
}

function assertClose(a: Float32Array, e: Float32Array, what: string) {
  for (let i = 0; i < e.length; i++) assert.ok(Math.abs(a[i]! - e[i]!) <= 1e-6 * Math.abs(e[i]!) + 1e-7, `${what}[${i}]: ${a[i]} vs ${e[i]}`);
}

test('averaging k micro-batches of size b equals one batch of k*b for a mean loss', () => {
  const { w, xs, ys } = data(12);
  const acc = new GradientAccumulator([5, 1]);
  for (let k = 0; k < 4; k++) acc.add(mseGrad(w, 0.3, xs, ys, 3 * k, 3 * k + 3));
  assert.equal(acc.count, 4);
  const full = mseGrad(w, 0.3, xs, ys, 0, 12);
  const avg = acc.average();
  assertClose(avg[0]!, full[0]!, 'w');
  assertClose(avg[1]!, full[1]!, 'c');
  assert.equal(acc.count, 0);
});

test('weights by micro-batch size give the full-batch gradient for unequal micro-batches', () => {
  const { w, xs, ys } = data(8);
  const acc = new GradientAccumulator([5, 1]);
  acc.add(mseGrad(w, -0.2, xs, ys, 0, 5), 5);
  acc.add(mseGrad(w, -0.2, xs, ys, 5, 8), 3);
  const full = mseGrad(w, -0.2, xs, ys, 0, 8);
  const avg = acc.average();
  assertClose(avg[0]!, full[0]!, 'w');
  assertClose(avg[1]!, full[1]!, 'c');
});

test('a new accumulation after average() starts from the next micro-batch, reusing the same buffers', () => {
  const acc = new GradientAccumulator([2]);
  acc.add([Float32Array.of(1, 2)]);
  acc.add([Float32Array.of(3, 4)]);
  const first = acc.average();
  assert.deepEqual(first[0], Float32Array.of(2, 3));
  acc.add([Float32Array.of(10, 20)]);
  acc.add([Float32Array.of(0, 0)]);
  acc.add([Float32Array.of(-1, 1)]);
  const second = acc.average();
  assert.deepEqual(second[0], Float32Array.of(3, 7));
  assert.equal(second[0], first[0]);
});

test('add() copies its input; reset() drops a partial accumulation', () => {
  const acc = new GradientAccumulator([2]);
  const g = Float32Array.of(1, 1);
  acc.add([g]);
  g.fill(100);
  acc.reset();
  assert.equal(acc.count, 0);
  acc.add([Float32Array.of(4, 6)]);
  assert.deepEqual(acc.average()[0], Float32Array.of(4, 6));
  acc.add([Float32Array.of(1, 1)]);
  g.fill(7);
  assert.deepEqual(acc.average()[0], Float32Array.of(1, 1));
});

test('GradientAccumulator rejects misuse', () => {
  const acc = new GradientAccumulator([2, 1]);
  assert.throws(() => acc.average(), /before any add/);
  assert.throws(() => acc.add([Float32Array.of(1, 2)]), /expected 2 gradients/);
  assert.throws(() => acc.add([Float32Array.of(1, 2), Float32Array.of(1, 2)]), /gradient 1/);
  assert.throws(() => acc.add([Float32Array.of(1, 2), Float32Array.of(1)], 0), /weight/);
});

test('addWritten() counts gradients written straight into sums exactly as add() would', () => {
  const grads = [Float32Array.of(0.1, -2.5, 3), Float32Array.of(7)];
  for (const weight of [1, 0.6]) {
    const copied = new GradientAccumulator([3, 1]);
    copied.add(grads, weight);
    copied.add([Float32Array.of(1, 1, 1), Float32Array.of(-1)], 0.4);
    const written = new GradientAccumulator([3, 1]);
    written.sums.forEach((s, i) => s.set(grads[i]!));
    written.addWritten(weight);
    written.add([Float32Array.of(1, 1, 1), Float32Array.of(-1)], 0.4);
    assert.deepEqual(written.average(), copied.average(), `weight ${weight}`);
  }
  const acc = new GradientAccumulator([1]);
  acc.add([Float32Array.of(1)]);
  assert.throws(() => acc.addWritten(), /only for the first micro-batch/);
});

test('average(out) writes the mean into other arrays (the same values), leaving a fresh accumulation', () => {
  const acc = new GradientAccumulator([2, 1]);
  acc.add([Float32Array.of(1, 2), Float32Array.of(3)], 1);
  acc.add([Float32Array.of(3, 5), Float32Array.of(4)], 3);
  const out = [new Float32Array(2), new Float32Array(1)];
  const result = acc.average(out);
  assert.deepEqual(result, out);
  assert.deepEqual(out, [Float32Array.of(2.5, 4.25), Float32Array.of(3.75)]);
  assert.equal(acc.count, 0);
  // A single unit-weight micro-batch is copied as is.
  acc.add([Float32Array.of(0.3, 0.7), Float32Array.of(0.1)]);
  acc.average(out);
  assert.deepEqual(out, [Float32Array.of(0.3, 0.7), Float32Array.of(0.1)]);
  acc.add([Float32Array.of(1, 1), Float32Array.of(1)]);
  assert.throws(() => acc.average([new Float32Array(2)]), /do not match sizes/);
});
