/**
 * Which examples each worker sees, and in what order. Follows torch.utils.data.DistributedSampler
 * so that a job behaves like its PyTorch counterpart: every rank computes the same seeded
 * permutation independently (no coordination needed), pads or trims it to a multiple of the world
 * size, and takes every worldSize-th index starting at its rank.
 */
import { UserError } from '../errors.js';
import { type Dataset, labelIds, subset } from './dataset.js';
import { mulberry32, permutation, shuffleInPlace } from './random.js';

export interface EpochOrderOptions {
  /** Number of examples in the dataset. */
  length: number;
  /** Default 0. The permutation of an epoch depends on seed + epoch only, as in PyTorch. */
  seed?: number;
  /** Default 0. */
  epoch?: number;
  /** Default 0. */
  rank?: number;
  /** Default 1. */
  worldSize?: number;
  /** Default true; false keeps 0..length-1 in order. */
  shuffle?: boolean;
  /**
   * Default false: pad by wrapping around to the start of the order until the total is a multiple
   * of worldSize (so a few examples are seen twice per epoch). true: drop the tail instead.
   */
  dropLast?: boolean;
}

function checkCount(what: string, n: number, min: number): void {
  if (!Number.isInteger(n) || n < min) throw new RangeError(`${what} must be an integer >= ${min}, got ${n}`);
}

/** The example indices rank `rank` visits during epoch `epoch`, in visiting order. */
export function epochOrder(opts: EpochOrderOptions): number[] {
  const { length, seed = 0, epoch = 0, rank = 0, worldSize = 1, shuffle = true, dropLast = false } = opts;
  checkCount('length', length, 0);
  checkCount('worldSize', worldSize, 1);
  checkCount('rank', rank, 0);
  if (rank >= worldSize) throw new RangeError(`rank ${rank} must be below worldSize ${worldSize}`);
  if (length === 0) return [];

  const perRank = dropLast ? Math.floor(length / worldSize) : Math.ceil(length / worldSize);
  const total = perRank * worldSize;
  const order = shuffle ? permutation(length, seed + epoch) : Array.from({ length }, (_, i) => i);
  // Padding wraps around (repeatedly, when worldSize > length), exactly like PyTorch.
  for (let i = length; i < total; i++) order.push(order[i - length]!);
  order.length = total;

  const mine: number[] = [];
  for (let i = rank; i < total; i += worldSize) mine.push(order[i]!);
  return mine;
}

/** Consecutive chunks of `order` of `batchSize` indices; the last may be short unless dropLast. */
export function batches(order: readonly number[], batchSize: number, dropLast = false): number[][] {
  checkCount('batchSize', batchSize, 1);
  const out: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) {
    const b = order.slice(i, i + batchSize);
    if (b.length < batchSize && dropLast) break;
    out.push(b);
  }
  return out;
}

export interface Split {
  train: Dataset;
  validation: Dataset;
  /** Indices into the original dataset, ascending. */
  trainIndices: number[];
  validationIndices: number[];
}

/**
 * Holds out round(fraction * length) examples for validation. With stratify (the default, for class
 * labels only; regression targets are split plainly) each class keeps its share: per-class quotas
 * are rounded by largest remainder so that they still sum to the overall count. Both parts keep
 * the original order; the sampler shuffles later.
 */
export function trainValidationSplit(ds: Dataset, fraction: number, seed: number, stratify = true): Split {
  if (!(fraction >= 0 && fraction < 1)) throw new UserError(`validation fraction must be in [0, 1), got ${fraction}`);
  const target = Math.round(fraction * ds.length);
  const random = mulberry32(seed);
  const validation: number[] = [];

  if (stratify && ds.labels.type === 'int64') {
    const byClass = indicesByClass(labelIds(ds));
    const quotas = byClass.map((members) => fraction * members.length);
    const taken = quotas.map(Math.floor);
    let left = target - taken.reduce((a, b) => a + b, 0);
    // Largest fractional part first; ties to the lower class id, for determinism.
    const order = quotas.map((q, c) => ({ c, r: q - Math.floor(q) })).sort((a, b) => b.r - a.r || a.c - b.c);
    for (const { c } of order) {
      if (left <= 0) break;
      if (taken[c]! < byClass[c]!.length) {
        taken[c]!++;
        left--;
      }
    }
    byClass.forEach((members, c) => validation.push(...shuffleInPlace([...members], random).slice(0, taken[c])));
  } else {
    validation.push(...permutation(ds.length, seed).slice(0, target));
  }

  validation.sort((a, b) => a - b);
  const held = new Set(validation);
  const train: number[] = [];
  for (let i = 0; i < ds.length; i++) if (!held.has(i)) train.push(i);
  return { train: subset(ds, train), validation: subset(ds, validation), trainIndices: train, validationIndices: validation };
}

function indicesByClass(ids: readonly number[]): number[][] {
  const byClass: number[][] = [];
  ids.forEach((id, i) => {
    if (id < 0) throw new UserError(`example ${i} has a negative class id ${id}`);
    for (let c = byClass.length; c <= id; c++) byClass.push([]);
    byClass[id]!.push(i);
  });
  return byClass;
}

/**
 * Few-label fine-tuning: keeps at most k examples of each class, picked by a seeded shuffle within
 * the class, in their original order. Classes with fewer than k examples keep them all.
 */
export function limitPerClass(ds: Dataset, k: number, seed: number): Dataset {
  if (!Number.isInteger(k) || k < 1) throw new UserError(`examples per class must be a positive integer, got ${k}`);
  const random = mulberry32(seed);
  const keep: number[] = [];
  for (const members of indicesByClass(labelIds(ds))) keep.push(...shuffleInPlace([...members], random).slice(0, k));
  keep.sort((a, b) => a - b);
  return subset(ds, keep);
}
