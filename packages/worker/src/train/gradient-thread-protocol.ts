/**
 * What the trainer (main thread) and the gradient thread (gradient-worker.ts) share and send.
 *
 * Parameters and averaged gradients live in SharedArrayBuffers that both threads see. Nothing is
 * transferred out of the main thread: detaching even one ArrayBuffer makes V8 add a detach check
 * to every typed-array access of that thread from then on (its "array buffer detaching
 * protector"), which measured 1.6x slower in the optimizer and summing loops. onnxruntime-node
 * cannot read or write shared memory, so the gradient thread copies the parameters into its own
 * buffers once per step and writes each bucket's averaged gradients into the shared ones.
 *
 * Ordering: the thread reads the shared parameters only after a step's first micro-batch arrives
 * (posted after the optimizer ran) and writes a bucket's gradients before posting that bucket; the
 * main thread reads them after receiving it, and changes nothing shared until the step's last
 * bucket arrived. Message passing orders these accesses.
 */
import type { Model } from '../onnx/types.js';
import type { ParameterInfo } from '../autodiff/training-graph.js';
import type { BatchTensor } from '../data/dataset.js';

export interface ThreadInit {
  training: Model;
  params: ParameterInfo[];
  /** Parameter indices per bucket, in the order the stages run. */
  buckets: number[][];
  intraOpThreads?: number;
  /** One per parameter, in parameter order: the values (the main thread's optimizer updates them). */
  sharedParams: SharedArrayBuffer[];
  /**
   * One per bucket: its averaged gradients back to back, in bucket order, written by the thread as
   * the bucket completes; the first bucket has one more float at the end for the step's loss, so
   * each bucket is all-reduced as one array, with no packing (layout: bucketLayout()).
   */
  sharedGrads: SharedArrayBuffer[];
}

/** Where each gradient of a bucket lives in its shared array, and the array's length. */
export function bucketLayout(bucket: readonly number[], sizes: readonly number[], withLoss: boolean): { offsets: number[]; length: number } {
  const offsets: number[] = [];
  let at = 0;
  for (const i of bucket) {
    offsets.push(at);
    at += sizes[i]!;
  }
  return { offsets, length: at + (withLoss ? 1 : 0) };
}

/** Views of a bucket's gradients in its shared array. */
export function bucketViews(buffer: SharedArrayBuffer, bucket: readonly number[], sizes: readonly number[]): Float32Array[] {
  const { offsets } = bucketLayout(bucket, sizes, false);
  return bucket.map((i, j) => new Float32Array(buffer, 4 * offsets[j]!, sizes[i]!));
}

/** One micro-batch of a step (copied to the thread: a few hundred kB at most). */
export interface MicroBatch {
  /** Model inputs by name. */
  inputs: Record<string, BatchTensor>;
  labels: BatchTensor;
  /** Its weight in the step's average gradient (proportional to its examples). */
  weight: number;
  /** Examples in it (weights the loss). */
  examples: number;
}

export type ToThread =
  /** `first`: read the parameters anew; `last`: report each bucket as it completes. */
  | { type: 'micro'; batch: MicroBatch; first: boolean; last: boolean }
  | { type: 'close' };

export type FromThread =
  | { type: 'ready' }
  /** Bucket `bucket`'s averaged gradients are in its shared array; the first bucket carries every micro-batch's loss. */
  | { type: 'bucket'; bucket: number; losses?: number[] }
  | { type: 'error'; message: string; stack?: string };
