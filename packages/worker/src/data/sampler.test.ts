import { test } from 'node:test';
import assert from 'node:assert/strict';
import { batches, epochOrder, limitPerClass, trainValidationSplit } from './sampler.js';
import { permutation } from './random.js';
import { classCounts, labelIds, type Dataset } from './dataset.js';
import { UserError } from '../errors.js';

/** Feature value = original index, so any subset can be traced back. */
function labelled(labels: number[]): Dataset {
  return {
    length: labels.length,
    features: { x: { type: 'float32', shape: [], data: Float32Array.from(labels, (_, i) => i) } },
    labels: { type: 'int64', shape: [], data: BigInt64Array.from(labels, BigInt) },
  };
}

const origin = (ds: Dataset): number[] => Array.from(ds.features.x!.data as Float32Array);
const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

test('the permutation is a permutation, fixed by its seed, and unbiased', () => {
  assert.deepEqual(sorted(permutation(100, 7)), range(100));
  assert.deepEqual(permutation(100, 7), permutation(100, 7));
  assert.notDeepEqual(permutation(100, 7), permutation(100, 8));
  // Where element 0 lands over many seeds: uniform for Fisher–Yates; a classic off-by-one
  // (Sattolo's algorithm) never leaves it at position 0.
  const at = [0, 0, 0, 0, 0];
  for (let seed = 0; seed < 5000; seed++) at[permutation(5, seed).indexOf(0)]!++;
  for (const c of at) assert.ok(c > 850 && c < 1150, `positions of element 0: ${at}`);
});

test('epochOrder is deterministic, changes with the epoch, and depends on seed + epoch only', () => {
  const base = { length: 50, seed: 42 };
  assert.deepEqual(epochOrder({ ...base, epoch: 3 }), epochOrder({ ...base, epoch: 3 }));
  assert.notDeepEqual(epochOrder({ ...base, epoch: 0 }), epochOrder({ ...base, epoch: 1 }));
  assert.deepEqual(epochOrder({ ...base, epoch: 1 }), epochOrder({ length: 50, seed: 43, epoch: 0 }));
  assert.deepEqual(sorted(epochOrder({ ...base })), range(50));
  assert.deepEqual(epochOrder({ length: 6, shuffle: false }), range(6));
});

test('DistributedSampler without shuffle: strided shards, padded by wrapping around', () => {
  // What torch.utils.data.DistributedSampler(range(10), num_replicas=3, shuffle=False) yields.
  const shard = (rank: number, dropLast = false) => epochOrder({ length: 10, rank, worldSize: 3, shuffle: false, dropLast });
  assert.deepEqual([shard(0), shard(1), shard(2)], [
    [0, 3, 6, 9],
    [1, 4, 7, 0],
    [2, 5, 8, 1],
  ]);
  assert.deepEqual([shard(0, true), shard(1, true), shard(2, true)], [
    [0, 3, 6],
    [1, 4, 7],
    [2, 5, 8],
  ]);
  // More ranks than examples: the padding wraps around more than once.
  assert.deepEqual(range(5).map((rank) => epochOrder({ length: 2, rank, worldSize: 5, shuffle: false })), [[0], [1], [0], [1], [0]]);
});

test('shuffled shards: equal sizes, disjoint, together all examples (plus the wrapped padding)', () => {
  for (const [length, worldSize] of [[100, 4], [101, 4], [7, 3], [3, 8]] as const) {
    for (const dropLast of [false, true]) {
      const shards = range(worldSize).map((rank) => epochOrder({ length, seed: 5, epoch: 2, rank, worldSize, dropLast }));
      const per = dropLast ? Math.floor(length / worldSize) : Math.ceil(length / worldSize);
      for (const s of shards) assert.equal(s.length, per);
      const all = shards.flat();
      if (dropLast) {
        assert.equal(new Set(all).size, all.length, 'shards overlap');
        assert.equal(all.length, length - (length % worldSize));
      } else {
        assert.deepEqual([...new Set(all)].sort((a, b) => a - b), range(length));
        // The padding repeats the head of the epoch's permutation.
        const full = epochOrder({ length, seed: 5, epoch: 2 });
        const interleaved = range(per * worldSize).map((i) => shards[i % worldSize]![Math.floor(i / worldSize)]!);
        assert.deepEqual(interleaved, range(per * worldSize).map((i) => full[i % length]!));
      }
    }
  }
});

test('epochOrder rejects a rank outside the world', () => {
  assert.throws(() => epochOrder({ length: 10, rank: 2, worldSize: 2 }), RangeError);
  assert.throws(() => epochOrder({ length: 10, worldSize: 0 }), RangeError);
  assert.deepEqual(epochOrder({ length: 0, worldSize: 4, rank: 3 }), []);
});

test('batches: consecutive chunks, the short last one kept unless dropLast', () => {
  assert.deepEqual(batches([5, 4, 3, 2, 1], 2), [[5, 4], [3, 2], [1]]);
  assert.deepEqual(batches([5, 4, 3, 2, 1], 2, true), [[5, 4], [3, 2]]);
  assert.deepEqual(batches([1, 2], 4, true), []);
  assert.throws(() => batches([1], 0), RangeError);
});

const skewed = [...Array(70).fill(0), ...Array(20).fill(1), ...Array(10).fill(2)] as number[];

test('trainValidationSplit keeps class proportions, is disjoint and complete, and follows the seed', () => {
  const ds = labelled(skewed);
  const { train, validation, trainIndices, validationIndices } = trainValidationSplit(ds, 0.2, 1);
  assert.deepEqual(classCounts(validation), [14, 4, 2]);
  assert.deepEqual(classCounts(train), [56, 16, 8]);
  assert.deepEqual(sorted([...trainIndices, ...validationIndices]), range(100));
  assert.deepEqual(origin(validation), validationIndices);
  assert.deepEqual(labelIds(validation), validationIndices.map((i) => skewed[i]));
  assert.deepEqual(trainValidationSplit(ds, 0.2, 1).validationIndices, validationIndices);
  assert.notDeepEqual(trainValidationSplit(ds, 0.2, 2).validationIndices, validationIndices);
});

test('stratified quotas are rounded by largest remainder so they add up to the overall share', () => {
  const ds = labelled([0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2]);
  const { validation } = trainValidationSplit(ds, 0.5, 3);
  assert.equal(validation.length, 8); // round(7.5)
  assert.deepEqual(classCounts(validation), [3, 3, 2]);
  // Quotas 1.2, 2.1, 1.8 of round(5.1) = 5: the spare one goes to the largest remainder, class 2.
  const uneven = labelled([...Array(4).fill(0), ...Array(7).fill(1), ...Array(6).fill(2)] as number[]);
  assert.deepEqual(classCounts(trainValidationSplit(uneven, 0.3, 3).validation), [1, 2, 2]);
  const plain = trainValidationSplit(labelled(skewed), 0.25, 9, false);
  assert.equal(plain.validation.length, 25);
  assert.throws(() => trainValidationSplit(ds, 1, 0), UserError);
  // Regression targets cannot be stratified; they are split plainly.
  const regression: Dataset = { ...ds, labels: { type: 'float32', shape: [], data: new Float32Array(15) } };
  assert.equal(trainValidationSplit(regression, 0.2, 0).validation.length, 3);
});

test('limitPerClass keeps at most k of each class, chosen by seed, rows kept together', () => {
  const ds = labelled(skewed);
  const few = limitPerClass(ds, 3, 11);
  assert.deepEqual(classCounts(few), [3, 3, 3]);
  assert.deepEqual(labelIds(few), origin(few).map((i) => skewed[i]));
  assert.deepEqual(origin(few), sorted(origin(few)));
  assert.deepEqual(classCounts(limitPerClass(ds, 15, 11)), [15, 15, 10]);
  assert.deepEqual(origin(limitPerClass(ds, 3, 11)), origin(few));
  assert.notDeepEqual(origin(limitPerClass(ds, 3, 12)), origin(few));
  assert.throws(() => limitPerClass(ds, 0, 1), /positive integer/);
});
