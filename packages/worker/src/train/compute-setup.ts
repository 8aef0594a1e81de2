/**
 * Where the training graph runs: on the main thread (TrainingSessions), or in the gradient
 * thread cut into bucket stages so the all-reduce overlaps the backward pass (docs/data-parallel.md).
 */
import type { TrainingArtifacts } from '../autodiff/training-graph.js';
import { UserError } from '../errors.js';
import { TrainingSessions } from './sessions.js';
import { GradientThread } from './gradient-thread.js';
import { DEFAULT_BUCKET_BYTES, gradientReadyOrder, planBuckets } from './buckets.js';
import { canSplit } from './graph-stages.js';
import type { ProgressSink } from './progress.js';

export const OVERLAP_MODES = ['auto', 'on', 'off'] as const;
/**
 * 'off' (the default): the training graph runs on the main thread, the all-reduce after it.
 * 'auto': overlap with more than one worker when the gradients make at least two buckets.
 * 'on': always the gradient thread (even alone, or with one bucket: for tests and measurements).
 * Off by default because overlap only pays with a core to spare per worker: on a machine whose
 * cores the sequential step already keeps busy it measured slower (docs/data-parallel.md).
 */
export type OverlapMode = (typeof OVERLAP_MODES)[number];

export interface Compute {
  /** Evaluation, and the gradients too when there is no thread. */
  sessions: TrainingSessions;
  thread?: GradientThread;
  /** The parameters as evaluation may read them (a private copy when they live in shared memory). */
  evalParams(): ReadonlyMap<string, Float32Array>;
}

export async function startCompute(options: {
  artifacts: TrainingArtifacts;
  /** The parameters; with the thread, their values are moved into shared memory (the map's entries replaced). */
  params: Map<string, Float32Array>;
  worldSize: number;
  progress: ProgressSink;
  threads?: number;
  overlap?: OverlapMode;
  bucketBytes?: number;
}): Promise<Compute> {
  const { artifacts, params, worldSize } = options;
  const overlap = options.overlap ?? 'off';
  if (!OVERLAP_MODES.includes(overlap)) throw new UserError(`overlap: expected one of ${OVERLAP_MODES.join(', ')}, got '${String(overlap)}'`);
  const bucketBytes = options.bucketBytes ?? DEFAULT_BUCKET_BYTES;
  if (!(Number.isFinite(bucketBytes) && bucketBytes > 0)) throw new UserError(`bucketBytes: expected a positive number of bytes, got ${bucketBytes}`);
  const buckets = gradientBuckets(artifacts, bucketBytes);
  const sessionOptions = options.threads ? { intraOpThreads: options.threads } : {};
  if (!(overlap === 'on' || (overlap === 'auto' && worldSize > 1 && buckets.length > 1))) {
    return { sessions: await TrainingSessions.create(artifacts, sessionOptions), evalParams: () => params };
  }

  // The thread owns the training graph; this thread's sessions only evaluate.
  const sessions = await TrainingSessions.createEvaluation(artifacts, sessionOptions);
  let thread: GradientThread;
  try {
    thread = await GradientThread.start({
      training: artifacts.training,
      params: artifacts.params,
      buckets,
      initial: artifacts.params.map((p) => params.get(p.name)!),
      ...(options.threads ? { intraOpThreads: options.threads } : {}),
    });
  } catch (err) {
    await sessions.release();
    throw err;
  }
  artifacts.params.forEach((p, i) => params.set(p.name, thread.params[i]!));
  // onnxruntime-node cannot read shared memory: evaluation reads a copy, refreshed each time.
  const copies = new Map(artifacts.params.map((p) => [p.name, new Float32Array(params.get(p.name)!.length)]));
  const evalParams = () => {
    for (const [name, copy] of copies) copy.set(params.get(name)!);
    return copies;
  };
  if (worldSize > 1) {
    const mib = buckets.map((b) => b.reduce((sum, i) => sum + 4 * artifacts.params[i]!.dims.reduce((x, y) => x * y, 1), 0) / 2 ** 20);
    options.progress.message(`overlapping the all-reduce with the backward pass: ${buckets.length} gradient bucket(s) of ${mib.map((m) => m.toFixed(1)).join(', ')} MiB`);
  }
  return { sessions, thread, evalParams };
}

/** Gradient buckets (buckets.ts); one holding everything when the graph cannot be cut into stages. */
function gradientBuckets(artifacts: TrainingArtifacts, bucketBytes: number): number[][] {
  const graph = artifacts.training.graph;
  if (!canSplit(graph)) return [artifacts.params.map((_, i) => i)];
  return planBuckets(gradientReadyOrder(graph, artifacts.params), artifacts.params, bucketBytes);
}
