/**
 * The main thread's handle on the gradient thread (gradient-worker.ts): starts it with the
 * parameters in shared memory, posts a step's micro-batches and tells the caller as each bucket
 * of averaged gradients is ready. Any failure of the thread (an onnxruntime error, a crash)
 * rejects the step in progress; close() always ends the thread.
 */
import { Worker } from 'node:worker_threads';
import { elementCount } from '../onnx/types.js';
import { bucketLayout, bucketViews, type FromThread, type MicroBatch, type ThreadInit, type ToThread } from './gradient-thread-protocol.js';

export type { MicroBatch } from './gradient-thread-protocol.js';

export interface GradientThreadOptions extends Omit<ThreadInit, 'sharedParams' | 'sharedGrads'> {
  /** Starting parameter values, in parameter order (copied into shared memory). */
  initial: readonly Float32Array[];
}

export interface BucketReady {
  bucket: number;
  /** Parameter indices of the bucket. */
  params: readonly number[];
  /**
   * The bucket's averaged gradients back to back (shared memory), to all-reduce in place as one
   * array; the first bucket's last element is a free slot for the step's loss.
   */
  data: Float32Array;
  /** Every micro-batch's loss (with the first bucket only). */
  losses?: number[];
}

/** How long close() waits for the thread to release its sessions before terminating it. */
const CLOSE_GRACE_MS = 5000;

let running = 0;

/** Gradient threads started in this process that have not exited yet (tests check that none leak). */
export function runningGradientThreads(): number {
  return running;
}

interface PendingStep {
  resolve(losses: number[]): void;
  reject(err: Error): void;
  onBucket(ready: BucketReady): void;
  losses: number[];
}

export class GradientThread {
  private pending: PendingStep | undefined;
  private failure: Error | undefined;
  private closed = false;

  private constructor(
    private readonly worker: Worker,
    readonly buckets: readonly (readonly number[])[],
    /** The parameters, in shared memory: update them in place between steps, never during one. */
    readonly params: readonly Float32Array[],
    /** The step's averaged gradients, in parameter order (views of the bucket arrays), complete once step() resolved. */
    readonly grads: readonly Float32Array[],
    /** Per bucket, its whole shared array. */
    private readonly bucketData: readonly Float32Array[],
  ) {
    worker.on('message', (msg: FromThread) => this.receive(msg));
    worker.on('error', (err) => this.fail(new Error(`the gradient thread crashed: ${err.message}`, { cause: err })));
    worker.on('exit', (code) => this.fail(new Error(`the gradient thread exited (code ${code})`)));
  }

  /** Starts the thread and waits until its sessions exist. */
  static async start(options: GradientThreadOptions): Promise<GradientThread> {
    const { initial, ...rest } = options;
    const sizes = options.params.map((p) => elementCount(p.dims));
    if (initial.length !== sizes.length || initial.some((v, i) => v.length !== sizes[i])) throw new Error('GradientThread: initial values do not match the parameters');
    const listed = options.buckets.flat().sort((a, b) => a - b);
    if (listed.length !== sizes.length || listed.some((p, i) => p !== i)) throw new Error(`GradientThread: the buckets must list every parameter index 0..${sizes.length - 1} once, got ${JSON.stringify(options.buckets)}`);
    const sharedParams = sizes.map((n) => new SharedArrayBuffer(4 * n));
    const sharedGrads = options.buckets.map((bucket, s) => new SharedArrayBuffer(4 * bucketLayout(bucket, sizes, s === 0).length));
    const params = sharedParams.map((b, i) => {
      const values = new Float32Array(b);
      values.set(initial[i]!);
      return values;
    });
    const init: ThreadInit = { ...rest, sharedParams, sharedGrads };
    const worker = new Worker(new URL('./gradient-worker.js', import.meta.url), { workerData: init });
    running++;
    worker.once('exit', () => running--);
    const listeners: { message?: (msg: FromThread) => void; error?: (err: Error) => void; exit?: (code: number) => void } = {};
    try {
      await new Promise<void>((resolve, reject) => {
        listeners.message = (msg) => (msg.type === 'ready' ? resolve() : msg.type === 'error' ? reject(threadError(msg)) : undefined);
        listeners.error = reject;
        listeners.exit = (code) => reject(new Error(`the gradient thread exited (code ${code}) while starting`));
        worker.on('message', listeners.message).on('error', listeners.error).on('exit', listeners.exit);
      });
    } catch (err) {
      await worker.terminate();
      throw err;
    } finally {
      // Only ours: Worker keeps its own listeners (they start and reference its message port).
      worker.off('message', listeners.message!).off('error', listeners.error!).off('exit', listeners.exit!);
    }
    const grads: Float32Array[] = new Array(sizes.length);
    options.buckets.forEach((bucket, s) => bucketViews(sharedGrads[s]!, bucket, sizes).forEach((view, j) => (grads[bucket[j]!] = view)));
    return new GradientThread(worker, options.buckets, params, grads, sharedGrads.map((b) => new Float32Array(b)));
  }

  /**
   * Runs one optimizer step: posts the micro-batches as `micros` yields them (building the next
   * overlaps computing this one), calls `onBucket` as each bucket's averaged gradients are ready,
   * in stage order, and resolves with every micro-batch's loss once the last bucket is.
   */
  step(micros: Iterable<MicroBatch>, onBucket: (ready: BucketReady) => void): Promise<number[]> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.pending) return Promise.reject(new Error('a step is already running on the gradient thread'));
    const result = new Promise<number[]>((resolve, reject) => {
      this.pending = { resolve, reject, onBucket, losses: [] };
    });
    let previous: MicroBatch | undefined;
    let first = true;
    const send = (batch: MicroBatch, last: boolean) => {
      this.worker.postMessage({ type: 'micro', batch, first, last } satisfies ToThread);
      first = false;
    };
    try {
      // One behind, so the last micro-batch is known when it is sent.
      for (const batch of micros) {
        if (previous) send(previous, false);
        previous = batch;
      }
      if (!previous) throw new Error('a step needs at least one micro-batch');
      send(previous, true);
    } catch (err) {
      this.pending = undefined;
      return Promise.reject(err);
    }
    return result;
  }

  /** Ends the thread: lets it release its sessions, then terminates it if it has not exited. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.fail(new Error('the gradient thread was closed'));
    if (this.worker.threadId < 0) return; // already exited
    const exited = new Promise<void>((resolve) => this.worker.once('exit', () => resolve()));
    this.worker.postMessage({ type: 'close' } satisfies ToThread);
    const timer = setTimeout(() => void this.worker.terminate(), CLOSE_GRACE_MS);
    await exited;
    clearTimeout(timer);
  }

  private receive(msg: FromThread): void {
    if (msg.type === 'error') return this.fail(threadError(msg));
    const pending = this.pending;
    if (msg.type !== 'bucket' || !pending) return;
    const bucket = this.buckets[msg.bucket];
    if (!bucket) return this.fail(new Error(`the gradient thread reported an unknown bucket ${msg.bucket}`));
    if (msg.losses) pending.losses = msg.losses;
    try {
      pending.onBucket({ bucket: msg.bucket, params: bucket, data: this.bucketData[msg.bucket]!, ...(msg.losses ? { losses: msg.losses } : {}) });
    } catch (err) {
      this.pending = undefined;
      return pending.reject(err instanceof Error ? err : new Error(String(err)));
    }
    if (msg.bucket === this.buckets.length - 1) {
      this.pending = undefined;
      pending.resolve(pending.losses);
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    const pending = this.pending;
    this.pending = undefined;
    pending?.reject(err);
  }
}

function threadError(msg: { message: string; stack?: string }): Error {
  const err = new Error(`gradient thread: ${msg.message}`);
  if (msg.stack) err.stack = `${err.message}\n(in the gradient thread) ${msg.stack}`;
  return err;
}
