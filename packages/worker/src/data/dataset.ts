/**
 * A columnar in-memory dataset: one flat typed array per model input plus one for the labels, so
 * that a batch is a handful of row copies and the trainer can wrap the result in ort.Tensor as is.
 * Nothing here imports onnxruntime; the trainer owns that boundary.
 */
import { UserError } from '../errors.js';

export type FeatureArray = Float32Array | BigInt64Array;
export type FeatureType = 'float32' | 'int64';

export interface Feature {
  type: FeatureType;
  /** Shape of one example (no batch dimension). */
  shape: number[];
  /** length = dataset.length * prod(shape), example-major. */
  data: FeatureArray;
}

export interface Labels {
  /** int64: class ids (shape []); float32: regression targets. */
  type: 'int64' | 'float32';
  shape: number[];
  data: FeatureArray;
}

export interface Dataset {
  length: number;
  /** Keyed by the ONNX model input name each one feeds. */
  features: Record<string, Feature>;
  labels: Labels;
  /** Class names; index = label id. */
  classes?: string[];
}

/** A batch tensor as plain data: `new ort.Tensor(t.type, t.data, t.dims)` makes it a feed. */
export interface BatchTensor {
  type: FeatureType;
  dims: number[];
  data: FeatureArray;
}

export interface Batch {
  feeds: Record<string, BatchTensor>;
  labels: BatchTensor;
}

/** Number of values in one example of the given per-example shape. */
export function exampleSize(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A zero-filled array of the storage type for `type`. */
export function allocFeature(type: FeatureType, length: number): FeatureArray {
  return type === 'float32' ? new Float32Array(length) : new BigInt64Array(length);
}

function storageType(data: FeatureArray): FeatureType {
  return data instanceof Float32Array ? 'float32' : 'int64';
}

/**
 * Throws if the arrays do not match `length` and their shapes, or a type tag disagrees with its
 * storage. Loaders call it once so that a bug surfaces at load time, not deep in a training step.
 */
export function assertConsistent(ds: Dataset): void {
  const check = (what: string, t: { type: FeatureType; shape: number[]; data: FeatureArray }) => {
    if (storageType(t.data) !== t.type) throw new Error(`${what}: type ${t.type} but stored as ${t.data.constructor.name}`);
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 0)) throw new Error(`${what}: bad shape [${t.shape.join(', ')}]`);
    const want = ds.length * exampleSize(t.shape);
    if (t.data.length !== want) throw new Error(`${what}: ${t.data.length} values, expected ${ds.length} x [${t.shape.join(', ')}] = ${want}`);
  };
  if (!Number.isInteger(ds.length) || ds.length < 0) throw new Error(`dataset length ${ds.length} is not a count`);
  for (const [name, f] of Object.entries(ds.features)) check(`feature '${name}'`, f);
  check('labels', ds.labels);
}

/** Copies the rows `indices` (in that order, repeats allowed) of an example-major array. */
function gatherRows(data: FeatureArray, size: number, indices: ArrayLike<number>, rows: number): FeatureArray {
  const n = indices.length;
  const pick = (j: number): number => {
    const i = indices[j]!;
    if (!Number.isInteger(i) || i < 0 || i >= rows) throw new RangeError(`example index ${i} out of range [0, ${rows})`);
    return i * size;
  };
  if (data instanceof Float32Array) {
    const out = new Float32Array(n * size);
    for (let j = 0; j < n; j++) {
      const at = pick(j);
      out.set(data.subarray(at, at + size), j * size);
    }
    return out;
  }
  const out = new BigInt64Array(n * size);
  for (let j = 0; j < n; j++) {
    const at = pick(j);
    out.set(data.subarray(at, at + size), j * size);
  }
  return out;
}

/** A new dataset holding copies of the examples `indices`, in that order. */
export function subset(ds: Dataset, indices: ArrayLike<number>): Dataset {
  const features: Record<string, Feature> = {};
  for (const [name, f] of Object.entries(ds.features)) {
    features[name] = { type: f.type, shape: [...f.shape], data: gatherRows(f.data, exampleSize(f.shape), indices, ds.length) };
  }
  const l = ds.labels;
  const out: Dataset = {
    length: indices.length,
    features,
    labels: { type: l.type, shape: [...l.shape], data: gatherRows(l.data, exampleSize(l.shape), indices, ds.length) },
  };
  if (ds.classes) out.classes = [...ds.classes];
  return out;
}

/** The feeds and labels of one batch, each with its batch dimension first. */
export function batchFeeds(ds: Dataset, indices: ArrayLike<number>): Batch {
  const feeds: Record<string, BatchTensor> = {};
  for (const [name, f] of Object.entries(ds.features)) {
    feeds[name] = { type: f.type, dims: [indices.length, ...f.shape], data: gatherRows(f.data, exampleSize(f.shape), indices, ds.length) };
  }
  const l = ds.labels;
  return {
    feeds,
    labels: { type: l.type, dims: [indices.length, ...l.shape], data: gatherRows(l.data, exampleSize(l.shape), indices, ds.length) },
  };
}

/** Class ids as plain numbers; only for class labels (int64, one per example). */
export function labelIds(ds: Dataset): number[] {
  const l = ds.labels;
  if (l.type !== 'int64' || exampleSize(l.shape) !== 1) {
    throw new UserError(`the dataset's labels are ${l.type} [${l.shape.join(', ')}] per example, not class ids (int64, one per example)`);
  }
  return Array.from(l.data as BigInt64Array, Number);
}

/**
 * How many examples each class has; index = class id. The length is classes.length when the
 * dataset names its classes (so absent classes show as 0), else the largest id + 1.
 */
export function classCounts(ds: Dataset): number[] {
  const ids = labelIds(ds);
  let n = ds.classes?.length ?? 0;
  for (const id of ids) if (id + 1 > n) n = id + 1;
  const counts = new Array<number>(n).fill(0);
  for (const id of ids) {
    if (id < 0) throw new UserError(`negative class id ${id} in the labels`);
    counts[id]!++;
  }
  return counts;
}
