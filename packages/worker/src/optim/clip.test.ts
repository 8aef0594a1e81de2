import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clipByGlobalNorm, globalNorm } from './clip.js';

test('globalNorm is the L2 norm over all gradients together', () => {
  assert.equal(globalNorm([Float32Array.of(3), Float32Array.of(0, 4)]), 5);
  assert.equal(globalNorm([]), 0);
  assert.equal(globalNorm([Float32Array.of(-2, 2, -2, 2)]), 4);
});

test('globalNorm accumulates in float64: small squares next to a large one are not lost', () => {
  // 1 + 1e6 * (1e-4)^2 = 1.01; a float32 sum stays at 1 because 1e-8 < eps32 / 2.
  const g = new Float32Array(1_000_001).fill(1e-4);
  g[0] = 1;
  const expected = Math.sqrt(1 + 1e6 * Math.fround(1e-4) ** 2);
  assert.ok(Math.abs(globalNorm([g]) - expected) < 1e-9, `got ${globalNorm([g])}`);
});

test('clipByGlobalNorm scales by maxNorm / (norm + 1e-6) above the limit and preserves direction', () => {
  const a = Float32Array.of(6, -8);
  const b = Float32Array.of(0, 0, 0);
  const original = [a.slice(), b.slice()];
  const norm = clipByGlobalNorm([a, b], 2);
  assert.equal(norm, 10);
  const scale = 2 / (10 + 1e-6);
  assert.deepEqual(a, Float32Array.of(6 * scale, -8 * scale));
  assert.deepEqual(b, original[1]);
  // Direction preserved: every component scaled by the same factor, new norm just under the limit.
  assert.ok(Math.abs(a[0]! / original[0]![0]! - a[1]! / original[0]![1]!) < 1e-7);
  const after = globalNorm([a, b]);
  assert.ok(after < 2 && after > 2 - 1e-5, `norm after clipping ${after}`);
});

test('clipByGlobalNorm leaves gradients at or under the limit untouched', () => {
  for (const maxNorm of [5, 5.5, 100]) {
    const a = Float32Array.of(3, 4);
    assert.equal(clipByGlobalNorm([a], maxNorm), 5);
    assert.deepEqual(a, Float32Array.of(3, 4));
  }
});

test('clipByGlobalNorm reports a non-finite norm and leaves the gradients untouched', () => {
  for (const bad of [Number.NaN, Number.POSITIVE_INFINITY]) {
    const a = Float32Array.of(3, 4);
    const b = Float32Array.of(bad, 1);
    const norm = clipByGlobalNorm([a, b], 1);
    assert.ok(!Number.isFinite(norm), `norm ${norm}`);
    assert.deepEqual(a, Float32Array.of(3, 4));
    assert.equal(b[1], 1);
  }
  assert.throws(() => clipByGlobalNorm([Float32Array.of(1)], 0), /maxNorm/);
});
