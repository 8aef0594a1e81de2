/**
 * Wraps the collective so every all-reduce reports its float32 payload and duration. Timing lives
 * here, on the trainer's side of the DataParallel interface, so the collective stays unaware of metrics.
 */
import type { DataParallel } from './trainer.js';
import type { WireFormat } from '../collective/wire.js';
import type { TrainingObserver } from '../metrics/observer.js';

export function timedParallel(parallel: DataParallel, observer: Pick<TrainingObserver, 'allReduced'>): DataParallel {
  const timed = (reduce: (tensors: Float32Array[], wire?: WireFormat) => Promise<void>) => async (tensors: Float32Array[], wire?: WireFormat) => {
    const bytes = tensors.reduce((sum, t) => sum + t.byteLength, 0);
    const start = performance.now();
    await reduce(tensors, wire);
    observer.allReduced(bytes, (performance.now() - start) / 1000);
  };
  return {
    rank: parallel.rank,
    worldSize: parallel.worldSize,
    allReduceMean: timed((t, wire) => parallel.allReduceMean(t, wire)),
    allReduceSum: timed((t) => parallel.allReduceSum(t)),
  };
}
