import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatTick, niceStep, niceTicks } from './ticks.js';

/** True when x is 1, 2, 2.5 or 5 times a power of ten. */
function isNice(x: number): boolean {
  if (!(x > 0)) return false;
  const mantissa = x / 10 ** Math.floor(Math.log10(x) + 1e-12);
  return [1, 2, 2.5, 5, 10].some((n) => Math.abs(mantissa - n) < 1e-9 * n);
}

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function checkTicks(lo: number, hi: number, integer = false): void {
  const t = niceTicks(lo, hi, { integer });
  const msg = `[${lo}, ${hi}] -> ${t.values.join(', ')}`;
  assert.ok(isNice(t.step), `step ${t.step} not nice: ${msg}`);
  if (integer) assert.ok(t.step >= 1 && Number.isInteger(t.step), msg);
  assert.ok(t.values.length >= 2 && t.values.length <= 8, msg);
  assert.ok(t.max > t.min, msg);
  assert.equal(t.min, t.values[0]);
  assert.equal(t.max, t.values.at(-1));
  assert.ok(t.min <= Math.min(lo, hi) && t.max >= Math.max(lo, hi), `does not cover: ${msg}`);
  for (let i = 0; i < t.values.length; i++) {
    const k = t.values[i]! / t.step;
    assert.ok(Math.abs(k - Math.round(k)) < 1e-6, `tick not a multiple of the step: ${msg}`);
    if (i > 0) assert.ok(Math.abs(t.values[i]! - t.values[i - 1]! - t.step) <= t.step * 1e-6, `uneven: ${msg}`);
  }
  // The outward rounding adds at most one step on each side (a constant range is widened on purpose).
  if (hi - lo > Math.abs(hi) * 1e-9) assert.ok(t.min > Math.min(lo, hi) - t.step * 1.000001 && t.max < Math.max(lo, hi) + t.step * 1.000001, `too wide: ${msg}`);
}

test('niceStep picks the smallest nice step at or above the rough one', () => {
  assert.equal(niceStep(0.3), 0.5);
  assert.equal(niceStep(0.2), 0.2);
  assert.equal(niceStep(2.1), 2.5);
  assert.equal(niceStep(7), 10);
  assert.equal(niceStep(1.3e-5), 2e-5);
  assert.equal(niceStep(4200), 5000);
});

test('niceTicks: nice steps that cover random ranges of every scale', () => {
  const r = rng(7);
  for (let i = 0; i < 2000; i++) {
    const scale = 10 ** Math.floor(r() * 16 - 8);
    const a = (r() - 0.3) * scale;
    const b = a + r() * scale * (r() < 0.5 ? 1 : 0.01);
    checkTicks(a, b);
  }
  for (let i = 0; i < 300; i++) {
    const a = Math.floor(r() * 1000);
    checkTicks(a, a + Math.floor(r() * 100_000), true);
  }
  checkTicks(0.000123, 0.000987);
  checkTicks(-3, 7);
  checkTicks(1, 300, true);
});

test('niceTicks: constant, empty and non-finite ranges never divide by zero', () => {
  for (const [lo, hi] of [
    [2.3, 2.3],
    [0, 0],
    [-5, -5],
    [1e-7, 1e-7],
    [1, 1 + 1e-15],
    [Infinity, -Infinity],
    [NaN, 3],
  ] as const) {
    const t = niceTicks(lo, hi);
    assert.ok(t.max > t.min && t.values.every(Number.isFinite), `[${lo}, ${hi}] -> ${t.values.join(', ')}`);
    if (Number.isFinite(lo) && Number.isFinite(hi)) checkTicks(lo, hi);
  }
  assert.deepEqual(niceTicks(0, 0).values.slice(0, 1), [0]);
  assert.ok(niceTicks(-5, -5).max <= 0, 'a negative constant keeps its sign');
  checkTicks(7, 7, true);
  checkTicks(0, 0, true);
});

test('formatTick: labels parse back to their values, with matching decimals', () => {
  const r = rng(11);
  for (let i = 0; i < 500; i++) {
    const scale = 10 ** Math.floor(r() * 14 - 7);
    const t = niceTicks(r() * scale, r() * scale + scale * 0.1);
    const labels = t.values.map((v) => formatTick(v, t.step));
    for (let j = 0; j < labels.length; j++) {
      const back = Number(labels[j]);
      assert.ok(Math.abs(back - t.values[j]!) <= t.step * 1e-6, `${labels[j]} vs ${t.values[j]}`);
    }
    assert.equal(new Set(labels).size, labels.length, `duplicate labels ${labels.join(' ')}`);
  }
  assert.deepEqual(
    niceTicks(0, 1, { target: 4 }).values.map((v) => formatTick(v, 0.25)),
    ['0', '0.25', '0.50', '0.75', '1.00'],
  );
  assert.deepEqual(
    niceTicks(0, 1e-4).values.map((v) => formatTick(v, 2e-5)),
    ['0', '2e-5', '4e-5', '6e-5', '8e-5', '1e-4'],
  );
  assert.equal(formatTick(2.5e-5, 2.5e-5), '2.5e-5');
  assert.equal(formatTick(3_000_000, 1_000_000), '3e6');
});
