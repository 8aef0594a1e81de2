/**
 * One optimizer step with communication overlapped with computation: the gradient thread runs
 * the micro-batches and hands out each bucket's averaged gradients as its stage finishes; the
 * main thread all-reduces that bucket (one array, in place) while the thread computes the next
 * stage. All-reduces run one at a time in bucket order, the same on every rank. The loss rides
 * with the first bucket.
 */
import type { GradientThread, MicroBatch } from './gradient-thread.js';

export interface OverlappedStepResult {
  /** Averaged across ranks, in parameter order. */
  grads: Float32Array[];
  /** The global mean loss of the step (rounded to the wire format with a 16-bit wire). */
  loss: number;
  /** This rank's own mean loss, before the all-reduce. */
  localLoss: number;
  /** Wall seconds until the thread delivered the last bucket (compute and the all-reduces that overlapped it). */
  computeSeconds: number;
  /** Wall seconds spent waiting for all-reduces after that: the communication that was not hidden. */
  exposedReduceSeconds: number;
}

/**
 * Runs tasks one after another; `failure` rejects as soon as one fails, so a caller waiting for
 * something else can stop at once instead of after it.
 */
export class SerialQueue {
  private tail: Promise<void> = Promise.resolve();
  private rejectFailure!: (err: unknown) => void;
  readonly failure: Promise<never>;

  constructor() {
    this.failure = new Promise<never>((_, reject) => (this.rejectFailure = reject));
    // Only observed through race(); a failure nobody races against is reported by drain().
    this.failure.catch(() => {});
  }

  push(task: () => Promise<void>): void {
    this.tail = this.tail.then(task).catch((err) => {
      this.rejectFailure(err);
      throw err;
    });
    this.tail.catch(() => {});
  }

  /** Resolves when every task pushed so far has finished; rejects with the first failure. */
  drain(): Promise<void> {
    return this.tail;
  }
}

export async function overlappedStep(options: {
  thread: GradientThread;
  micros: Iterable<MicroBatch>;
  /** All-reduce (mean) across ranks, in place. */
  allReduceMean: (tensors: Float32Array[]) => Promise<void>;
}): Promise<OverlappedStepResult> {
  const { thread } = options;
  const start = performance.now();
  const examples: number[] = [];
  const micros = (function* () {
    for (const m of options.micros) {
      examples.push(m.examples);
      yield m;
    }
  })();
  const queue = new SerialQueue();
  let lossCell: Float32Array | undefined;
  let localLoss = NaN;
  const stepDone = thread.step(micros, (ready) => {
    if (ready.losses) {
      // Same arithmetic as the sequential path: the size-weighted mean of the micro-batch losses,
      // in the bucket's spare last element so it rides along with the gradients.
      let lossSum = 0;
      let total = 0;
      ready.losses.forEach((l, m) => {
        lossSum += l * examples[m]!;
        total += examples[m]!;
      });
      lossCell = ready.data.subarray(ready.data.length - 1);
      localLoss = lossCell[0] = lossSum / total;
    }
    queue.push(() => options.allReduceMean([ready.data]));
  });
  // A failed all-reduce ends the step at once; the thread's result is then dropped.
  stepDone.catch(() => {});
  await Promise.race([stepDone, queue.failure]);
  const computed = performance.now();
  await queue.drain();
  const end = performance.now();
  return { grads: [...thread.grads], loss: lossCell![0]!, localLoss, computeSeconds: (computed - start) / 1000, exposedReduceSeconds: (end - computed) / 1000 };
}
