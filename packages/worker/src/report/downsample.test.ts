import { test } from 'node:test';
import assert from 'node:assert/strict';
import { downsampleMinMax, type Point } from './downsample.js';

test('short series come back unchanged', () => {
  const pts: Point[] = [[1, 5], [2, 3], [3, 9]];
  assert.deepEqual(downsampleMinMax(pts, 1000), pts);
  assert.deepEqual(downsampleMinMax([], 1000), []);
});

test('a long noisy series keeps its global min and max, endpoints and order', () => {
  let s = 12345;
  const rand = (): number => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const n = 100_000;
  const pts: Point[] = [];
  for (let i = 0; i < n; i++) pts.push([i, Math.sin(i / 5000) + (rand() - 0.5)]);
  // Isolated spikes that a stride would almost surely miss.
  pts[31_337] = [31_337, 42];
  pts[77_777] = [77_777, -17];
  const out = downsampleMinMax(pts, 1000);
  assert.ok(out.length <= 1000 && out.length > 900, `length ${out.length}`);
  assert.deepEqual(out[0], pts[0]);
  assert.deepEqual(out.at(-1), pts.at(-1));
  const ys = out.map((p) => p[1]);
  assert.equal(Math.max(...ys), 42);
  assert.equal(Math.min(...ys), -17);
  for (let i = 1; i < out.length; i++) assert.ok(out[i]![0] > out[i - 1]![0], 'x strictly increasing (input order kept)');
  for (const p of out) assert.equal(pts[p[0]], p, 'only original points');
  // Every bucket's envelope is kept, not only the global extremes: the max of any 1000-point window
  // shows up among the drawn points near that window (within one bucket of ~200 input points).
  for (let k = 0; k < 100; k++) {
    const windowMax = Math.max(...pts.slice(k * 1000, (k + 1) * 1000).map((p) => p[1]));
    const near = out.filter((p) => p[0] >= k * 1000 - 250 && p[0] < (k + 1) * 1000 + 250).map((p) => p[1]);
    assert.ok(Math.max(...near) >= windowMax, `window ${k}`);
  }
});

test('tiny caps are raised to 4 points', () => {
  const pts: Point[] = Array.from({ length: 50 }, (_, i) => [i, i % 7] as const);
  const out = downsampleMinMax(pts, 1);
  assert.ok(out.length <= 4 && out.length >= 3);
  assert.deepEqual(out[0], pts[0]);
  assert.deepEqual(out.at(-1), pts.at(-1));
});
