import { test } from 'node:test';
import assert from 'node:assert/strict';
import { assertConsistent, batchFeeds, classCounts, exampleSize, labelIds, subset, type Dataset } from './dataset.js';
import { UserError } from '../errors.js';

/** 5 examples: a float32 [2] feature holding (i, -i), an int64 [3] feature, class labels. */
function tiny(): Dataset {
  const x = new Float32Array(10);
  const ids = new BigInt64Array(15);
  for (let i = 0; i < 5; i++) {
    x.set([i, -i], i * 2);
    ids.set([BigInt(i), BigInt(i * 10), BigInt(i * 100)], i * 3);
  }
  return {
    length: 5,
    features: { x: { type: 'float32', shape: [2], data: x }, ids: { type: 'int64', shape: [3], data: ids } },
    labels: { type: 'int64', shape: [], data: BigInt64Array.from([0n, 2n, 2n, 0n, 2n]) },
    classes: ['a', 'b', 'c'],
  };
}

test('subset copies the chosen rows of every feature and the labels, in the given order', () => {
  const ds = tiny();
  assertConsistent(ds);
  const s = subset(ds, [4, 1, 1]);
  assertConsistent(s);
  assert.equal(s.length, 3);
  assert.deepEqual(Array.from(s.features.x!.data as Float32Array), [4, -4, 1, -1, 1, -1]);
  assert.deepEqual(Array.from(s.features.ids!.data as BigInt64Array), [4n, 40n, 400n, 1n, 10n, 100n, 1n, 10n, 100n]);
  assert.deepEqual(labelIds(s), [2, 2, 2]);
  assert.deepEqual(s.classes, ['a', 'b', 'c']);
  // A copy, not a view: writing to the subset leaves the source alone.
  (s.features.x!.data as Float32Array)[0] = 99;
  assert.equal((ds.features.x!.data as Float32Array)[8], 4);
});

test('batchFeeds gives plain tensors with the batch dimension first', () => {
  const b = batchFeeds(tiny(), [3, 0]);
  assert.deepEqual(b.feeds.x!.dims, [2, 2]);
  assert.equal(b.feeds.x!.type, 'float32');
  assert.ok(b.feeds.x!.data instanceof Float32Array);
  assert.deepEqual(Array.from(b.feeds.x!.data as Float32Array), [3, -3, 0, -0]);
  assert.deepEqual(b.feeds.ids!.dims, [2, 3]);
  assert.ok(b.feeds.ids!.data instanceof BigInt64Array);
  assert.deepEqual(Array.from(b.feeds.ids!.data as BigInt64Array), [3n, 30n, 300n, 0n, 0n, 0n]);
  assert.deepEqual(b.labels, { type: 'int64', dims: [2], data: BigInt64Array.from([0n, 0n]) });
});

test('indices out of range are a bug and say so', () => {
  assert.throws(() => batchFeeds(tiny(), [5]), RangeError);
  assert.throws(() => subset(tiny(), [-1]), RangeError);
  assert.throws(() => subset(tiny(), [0.5]), RangeError);
});

test('classCounts covers every named class, absent ones as 0', () => {
  assert.deepEqual(classCounts(tiny()), [2, 0, 3]);
  const unnamed = { ...tiny(), classes: undefined };
  assert.deepEqual(classCounts(unnamed), [2, 0, 3]);
  const regression: Dataset = { ...tiny(), labels: { type: 'float32', shape: [], data: new Float32Array(5) } };
  assert.throws(() => classCounts(regression), UserError);
});

test('assertConsistent catches a column whose length or storage disagrees with the dataset', () => {
  assert.equal(exampleSize([1, 28, 28]), 784);
  assert.equal(exampleSize([]), 1);
  const short = tiny();
  short.features.x!.data = new Float32Array(9);
  assert.throws(() => assertConsistent(short), /feature 'x': 9 values, expected 5 x \[2\] = 10/);
  const wrongType = tiny();
  wrongType.features.x!.type = 'int64';
  assert.throws(() => assertConsistent(wrongType), /type int64 but stored as Float32Array/);
});
