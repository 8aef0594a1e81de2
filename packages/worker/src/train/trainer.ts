/**
 * The fine-tuning loop: batches → gradients (training graph in onnxruntime) → accumulation →
 * clipping → learning-rate schedule → optimizer step, with periodic evaluation, early stopping on
 * a validation metric (keeping the best weights), atomic checkpoints, exact resume, and export of
 * the fine-tuned inference model with a metrics summary and an HTML report.
 */
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import ort from 'onnxruntime-node';
import type { AllReduceOverlap, FineTuneJob } from '@finetune/api';
import type { PreparedRun } from './prepare.js';
import { TrainingSessions, type Feeds } from './sessions.js';
import type { MicroBatch } from './gradient-thread.js';
import { overlappedStep } from './overlapped-step.js';
import { startCompute, type OverlapMode } from './compute-setup.js';
import { checkpointPath, saveCheckpoint, loadLatestCheckpoint } from './checkpoint.js';
import { timedParallel } from './timed-parallel.js';
import { nonPadTokens } from './tokens.js';
import { SILENT, type ProgressSink } from './progress.js';
import { batchFeeds, type Batch, type BatchTensor, type Dataset } from '../data/dataset.js';
import { epochOrder, batches } from '../data/sampler.js';
import { TOKENIZER_METADATA_KEY } from '../data/tokenizer.js';
import { createOptimizer, type Optimizer, type OptimizerSpec } from '../optim/optimizer.js';
import { learningRateAt, type ScheduleSpec } from '../optim/schedule.js';
import { clipByGlobalNorm, globalNorm } from '../optim/clip.js';
import { GradientAccumulator } from '../optim/accumulate.js';
import { withParameters, setMetadata } from '../model/export.js';
import { saveModel } from '../onnx/load.js';
import { writeSummary, type EvalPoint, type RunSummary, type TrainPoint } from '../report/summary.js';
import { writeReport } from '../report/html.js';
import { writeFileAtomic } from '../report/atomic.js';
import type { TrainingObserver } from '../metrics/observer.js';
import { TrainingInterrupted, UserError } from '../errors.js';
import { CollectiveError } from '../collective/link.js';
import { WIRE_OF_PRECISION, type WireFormat } from '../collective/wire.js';

export interface TrainerOptions {
  /**
   * Continue from the latest checkpoint in the output folder: `true` requires one, 'if-present'
   * starts fresh when there is none (a gang the controller restarts before the first checkpoint).
   */
  resume?: boolean | 'if-present';
  progress?: ProgressSink;
  /** Threads per onnxruntime op (default: all cores). */
  threads?: number;
  /** Data parallelism: gradients are averaged with the other ranks through this. */
  parallel?: DataParallel;
  /** Stop after this many optimizer steps in this process (tests use it to simulate a kill). */
  stopAfterSteps?: number;
  /**
   * Aborted (SIGTERM from Kubernetes, Ctrl-C): the run stops before its next step, rank 0 writes
   * a checkpoint of the last completed step, and the run rejects with TrainingInterrupted. Its
   * `reason` names the cause in the message.
   */
  stop?: AbortSignal;
  /** Receives loss, throughput, phase timings, all-reduces and checkpoints (the Prometheus metrics). */
  metrics?: TrainingObserver;
  /** Overlap the gradient all-reduce with the backward pass: see OverlapMode (default: spec.workers.allReduce.overlap). */
  overlap?: OverlapMode;
  /** Bucket size for overlap: a bucket closes once it holds this many gradient bytes (default: spec.workers.allReduce.bucketMiB). */
  bucketBytes?: number;
}

export { OVERLAP_MODES, type OverlapMode } from './compute-setup.js';

/** What the loop needs from the collective (see collective/data-parallel.ts). */
export interface DataParallel {
  readonly rank: number;
  readonly worldSize: number;
  /**
   * Averages the tensors in place across ranks; every rank ends with identical values. `wire`
   * rounds what crosses the network (default 'f32', exact).
   */
  allReduceMean(tensors: Float32Array[], wire?: WireFormat): Promise<void>;
  /** Sums the tensors in place across ranks. */
  allReduceSum(tensors: Float32Array[]): Promise<void>;
}

/** The overlap mode of each spec.workers.allReduce.overlap. */
const OVERLAP_OF_SPEC: Readonly<Record<AllReduceOverlap, OverlapMode>> = { never: 'off', auto: 'auto', always: 'on' };

/** Steps between checks that every rank holds identical parameters. */
const DIVERGENCE_CHECK_EVERY = 50;

export interface RunResult {
  summary: RunSummary;
  outputDir: string;
  modelPath?: string;
  /** Final parameter values (the best ones when evaluation chose them). */
  params: Map<string, Float32Array>;
}

/** Serializable loop state stored in checkpoints next to the tensors. */
interface LoopState {
  step: number;
  epoch: number;
  /** Batches of `epoch` already consumed. */
  batchInEpoch: number;
  optimizerStep: number;
  optimizerType: string;
  slotNames: string[][];
  best?: EvalPoint & { metric: string };
  evalsWithoutImprovement: number;
  train: TrainPoint[];
  eval: EvalPoint[];
  elapsedSeconds: number;
  samplesSeen: number;
}

export function outputDirOf(job: FineTuneJob): string {
  return resolve(job.spec.output.path ?? join('out', job.metadata.name));
}

function toTensor(t: BatchTensor): ort.Tensor {
  return new ort.Tensor(t.type, t.data, t.dims);
}

function feedsOf(batch: Batch): { inputs: Feeds; labels: ort.Tensor } {
  const inputs: Feeds = {};
  for (const [name, t] of Object.entries(batch.feeds)) inputs[name] = toTensor(t);
  return { inputs, labels: toTensor(batch.labels) };
}

function optimizerSpec(job: FineTuneJob): OptimizerSpec {
  const o = job.spec.optimizer;
  if (o.type === 'sgd') {
    return { type: 'sgd', momentum: o.momentum ?? 0.9, nesterov: o.nesterov ?? false, weightDecay: o.weightDecay ?? 0 };
  }
  return { type: 'adamw', beta1: o.beta1 ?? 0.9, beta2: o.beta2 ?? 0.999, eps: o.eps ?? 1e-8, weightDecay: o.weightDecay ?? 0.01 };
}

function scheduleSpec(job: FineTuneJob): ScheduleSpec {
  const s = job.spec.schedule;
  if (s.type === 'constant') return { type: 'constant' };
  if (s.type === 'linear') return { type: 'linear', warmupSteps: s.warmupSteps };
  return { type: 'cosine', warmupSteps: s.warmupSteps, ...(s.minLrRatio !== undefined ? { minLrRatio: s.minLrRatio } : {}) };
}

/** Biases and normalization scales (1-D parameters) are exempt from weight decay, as is usual. */
function decayMask(dims: number[][]): boolean[] {
  return dims.map((d) => d.length > 1);
}

export async function runTraining(prepared: PreparedRun, options: TrainerOptions = {}): Promise<RunResult> {
  const { job, artifacts, train, validation } = prepared;
  const spec = job.spec;
  const progress = options.progress ?? SILENT;
  const metrics = options.metrics;
  const parallel = options.parallel && metrics ? timedParallel(options.parallel, metrics) : options.parallel;
  const countTokens = prepared.tokenizer !== undefined;
  const rank = parallel?.rank ?? 0;
  const worldSize = parallel?.worldSize ?? 1;
  const outputDir = outputDirOf(job);
  const checkpointDir = join(outputDir, 'checkpoints');

  const paramInfo = artifacts.params;
  const inits = new Map(prepared.model.graph.initializers.map((t) => [t.name, t]));
  const params = new Map<string, Float32Array>(paramInfo.map((p) => [p.name, Float32Array.from(inits.get(p.name)!.values as Float32Array)]));
  const sizes = paramInfo.map((p) => params.get(p.name)!.length);

  const optimizer = createOptimizer(optimizerSpec(job), sizes, decayMask(paramInfo.map((p) => p.dims)));
  const schedule = scheduleSpec(job);
  const baseLr = spec.optimizer.learningRate;

  const perWorkerBatch = spec.training.batchSize / worldSize;
  const microBatch = perWorkerBatch / spec.training.gradientAccumulationSteps;
  const shardLength = epochOrder({ length: train.length, seed: spec.training.seed, epoch: 0, rank, worldSize }).length;
  const stepsPerEpoch = Math.ceil(shardLength / perWorkerBatch);
  const totalSteps = spec.training.maxSteps ?? stepsPerEpoch * spec.training.epochs;
  const evalEvery = spec.training.evalEvery ?? stepsPerEpoch;
  const checkpointEvery = spec.training.checkpointEvery ?? stepsPerEpoch;
  const early = spec.training.earlyStopping;
  const allReduceSpec = spec.workers.allReduce;
  const wire = WIRE_OF_PRECISION[allReduceSpec.wirePrecision];
  /** Averages the step's loss alone, in float32: a compressed wire would round it. */
  const meanLossExactly = async (local: number): Promise<number> => {
    const cell = Float32Array.of(local);
    await parallel!.allReduceMean([cell]);
    return cell[0]!;
  };
  const metric = early?.metric ?? (spec.training.loss === 'cross_entropy' ? 'val_accuracy' : 'val_loss');

  let state: LoopState = {
    step: 0,
    epoch: 0,
    batchInEpoch: 0,
    optimizerStep: 0,
    optimizerType: spec.optimizer.type,
    slotNames: [],
    evalsWithoutImprovement: 0,
    train: [],
    eval: [],
    elapsedSeconds: 0,
    samplesSeen: 0,
  };
  let bestParams: Map<string, Float32Array> | undefined;

  if (options.resume) {
    const restored = loadLatestCheckpoint<LoopState>(checkpointDir);
    if (restored) {
      ({ state, bestParams } = restoreCheckpoint(restored.state, restored.tensors, params, optimizer, paramInfo.map((p) => p.name)));
      progress.message(`resuming from ${restored.path} (step ${state.step})`);
    } else if (options.resume === true) {
      throw new UserError(`--resume: no checkpoint in ${checkpointDir}`);
    } else {
      progress.message(`no checkpoint in ${checkpointDir} yet: starting from the beginning`);
    }
  }

  metrics?.runStarted({ worldSize, totalSteps, step: state.step, epoch: state.epoch });
  const { sessions, thread, evalParams } = await startCompute({
    artifacts,
    params,
    worldSize,
    progress,
    ...(options.threads ? { threads: options.threads } : {}),
    overlap: options.overlap ?? OVERLAP_OF_SPEC[allReduceSpec.overlap],
    bucketBytes: options.bucketBytes ?? allReduceSpec.bucketMiB * 2 ** 20,
  });
  // With the gradient thread the parameters now live in shared memory (the same values).
  const paramList = paramInfo.map((p) => params.get(p.name)!);
  // The gradient thread accumulates on its side.
  const accumulator = thread ? undefined : new GradientAccumulator(sizes);
  const startedAt = new Date();
  const clock = performance.now();
  // Time spent before a resume (from the checkpoint) plus this process's time.
  const secondsBefore = state.elapsedSeconds;
  const elapsed = () => secondsBefore + (performance.now() - clock) / 1000;
  let stoppedEarly = false;
  let reason = state.step >= totalSteps ? 'reached the step limit' : '';
  let stepsThisProcess = 0;
  /** The step of the newest checkpoint on disk (rank 0), so none is written twice. */
  let checkpointedStep = options.resume ? state.step : 0;
  const writeCheckpoint = (): void => {
    state.elapsedSeconds = elapsed();
    const saveStart = performance.now();
    const saved = saveCheckpoint(checkpointDir, state.step, checkpointOf(state, params, optimizer, bestParams, paramInfo.map((p) => p.name)));
    metrics?.checkpointWritten((performance.now() - saveStart) / 1000, saved.bytes);
    checkpointedStep = state.step;
  };
  /**
   * Rank 0 keeps what the run has done when it must end early: a checkpoint of the last completed
   * step (parameters, optimizer and sampler position agree there; a failed step changed nothing).
   * An evaluation that failed at that step is not redone on resume.
   */
  const checkpointProgress = (): void => {
    if (rank !== 0 || state.step <= checkpointedStep) return;
    try {
      writeCheckpoint();
    } catch (err) {
      progress.message(`could not write a checkpoint of step ${state.step}: ${(err as Error).message}`);
    }
  };
  const latestCheckpoint = (): string | undefined => (rank === 0 && checkpointedStep > 0 ? checkpointPath(checkpointDir, checkpointedStep) : undefined);
  const interrupted = (): TrainingInterrupted => {
    checkpointProgress();
    return new TrainingInterrupted(String(options.stop?.reason ?? 'stop requested'), state.step, latestCheckpoint());
  };

  const evaluate = async (): Promise<EvalPoint> => {
    const result = await collective(state.step, () => evaluateDataset(sessions, validation, evalParams(), prepared.numClasses !== undefined, 256, parallel));
    metrics?.evaluated(result);
    return { step: state.step, epoch: state.epoch, loss: result.loss, ...(result.accuracy !== undefined ? { accuracy: result.accuracy } : {}) };
  };

  try {
    // Inside the try: whatever fails from here on still ends the gradient thread.
    progress.start({
      job: job.metadata.name,
      totalSteps,
      stepsPerEpoch,
      epochs: Math.ceil(totalSteps / stepsPerEpoch),
      startStep: state.step,
      trainable: paramInfo.map((p) => ({ name: p.name, dims: p.dims })),
      frozen: artifacts.frozen,
      trainExamples: train.length,
      validationExamples: validation.length,
    });
    training: while (state.step < totalSteps) {
      const order = epochOrder({ length: train.length, seed: spec.training.seed, epoch: state.epoch, rank, worldSize });
      const epochBatches = batches(order, perWorkerBatch);
      for (let b = state.batchInEpoch; b < epochBatches.length && state.step < totalSteps; b++) {
        if (options.stop?.aborted) throw interrupted();
        const stepStart = performance.now();
        const phases = { data: 0, compute: 0, optimizer: 0 };
        let mark = stepStart;
        /** Seconds since the previous call (the phase that just ended). */
        const lap = (): number => {
          const now = performance.now();
          const seconds = (now - mark) / 1000;
          mark = now;
          return seconds;
        };
        const indices = epochBatches[b]!;
        let tokens = 0;
        let grads: Float32Array[];
        let loss: number;
        let allreduceSeconds: number | undefined;
        if (thread) {
          // Built while the thread computes the one before; the data phase is this thread's share.
          const micros = microBatchesOf(train, indices, microBatch, (batch, seconds) => {
            phases.data += seconds;
            if (countTokens) tokens += nonPadTokens(batch, prepared.inputName);
          });
          const out = await collective(state.step + 1, async () => {
            const result = await overlappedStep({ thread, micros, allReduceMean: parallel ? (tensors) => parallel.allReduceMean(tensors, wire) : async () => {} });
            if (parallel && wire !== 'f32') result.loss = await meanLossExactly(result.localLoss);
            return result;
          });
          ({ grads, loss } = out);
          phases.compute += out.computeSeconds - phases.data;
          if (parallel) allreduceSeconds = out.exposedReduceSeconds;
          else phases.compute += out.exposedReduceSeconds;
          lap();
        } else {
          let lossSum = 0;
          for (let m = 0; m < indices.length; m += microBatch) {
            const micro = indices.slice(m, m + microBatch);
            const batch = batchFeeds(train, micro);
            if (countTokens) tokens += nonPadTokens(batch, prepared.inputName);
            const { inputs, labels } = feedsOf(batch);
            phases.data += lap();
            const out = await sessions.gradients(inputs, labels, params);
            // Weight 1 for a full micro-batch: a single one passes through unscaled.
            accumulator!.add(paramInfo.map((p) => out.grads.get(p.name)!), micro.length / microBatch);
            lossSum += out.loss * micro.length;
            phases.compute += lap();
          }
          grads = accumulator!.average();
          loss = lossSum / indices.length;
          phases.compute += lap();
          if (parallel) {
            // The loss rides along with float32 gradients, so every rank logs (and checks) the global mean.
            const lossCell = Float32Array.of(loss);
            await collective(state.step + 1, async () => {
              if (wire === 'f32') {
                await parallel.allReduceMean([...grads, lossCell]);
              } else {
                await parallel.allReduceMean(grads, wire);
                lossCell[0] = await meanLossExactly(loss);
              }
            });
            allreduceSeconds = lap();
            loss = lossCell[0]!;
          }
        }
        if (!Number.isFinite(loss)) {
          throw new UserError(`step ${state.step + 1}: the training loss is ${loss}; lower spec.optimizer.learningRate or check the data (checkpoints up to step ${state.step} are intact)`);
        }
        const gradNorm = spec.training.gradientClipNorm ? clipByGlobalNorm(grads, spec.training.gradientClipNorm) : globalNorm(grads);
        if (!Number.isFinite(gradNorm)) {
          // Clipping happens after the all-reduce, so it cannot save a float16 wire from overflow.
          const hint = wire === 'f16' ? 'float16 on the wire overflows above 65504: set spec.workers.allReduce.wirePrecision to bfloat16, or lower spec.optimizer.learningRate' : 'lower spec.optimizer.learningRate or set spec.training.gradientClipNorm';
          throw new UserError(`step ${state.step + 1}: the gradient norm is ${gradNorm}; ${hint}`);
        }
        const lr = learningRateAt(state.step, schedule, totalSteps, baseLr);
        optimizer.step(paramList, grads, lr);
        phases.optimizer += lap();

        state.step++;
        state.batchInEpoch = b + 1;
        state.samplesSeen += indices.length * worldSize;
        stepsThisProcess++;
        const seconds = (performance.now() - stepStart) / 1000;
        const point: TrainPoint = { step: state.step, epoch: state.epoch, loss, learningRate: lr, samplesPerSecond: (indices.length * worldSize) / seconds, gradNorm };
        state.train.push(point);
        progress.step(point);
        metrics?.stepFinished({
          step: state.step,
          epoch: state.epoch,
          loss,
          learningRate: lr,
          samples: indices.length,
          tokens,
          seconds: { ...phases, ...(allreduceSeconds !== undefined ? { allreduce: allreduceSeconds } : {}) },
        });

        if (parallel && state.step % DIVERGENCE_CHECK_EVERY === 0) await collective(state.step, () => checkIdentical(parallel, paramList, state.step));
        const endOfEpoch = state.batchInEpoch === epochBatches.length;
        if (state.step % evalEvery === 0 || state.step === totalSteps || (endOfEpoch && spec.training.evalEvery === undefined)) {
          const point = await evaluate();
          state.eval.push(point);
          const value = metric === 'val_accuracy' ? point.accuracy ?? -point.loss : point.loss;
          const bestValue = state.best ? (metric === 'val_accuracy' ? state.best.accuracy ?? -state.best.loss : state.best.loss) : undefined;
          const delta = early?.minDelta ?? 0;
          const improved = bestValue === undefined || (metric === 'val_accuracy' ? value > bestValue + delta : value < bestValue - delta);
          if (improved) {
            state.best = { ...point, metric };
            state.evalsWithoutImprovement = 0;
            bestParams = new Map([...params].map(([k, v]) => [k, Float32Array.from(v)]));
          } else {
            state.evalsWithoutImprovement++;
          }
          progress.evaluation(point, improved);
          if (early && state.evalsWithoutImprovement >= early.patience) {
            stoppedEarly = true;
            reason = `early stopping: ${metric} did not improve for ${early.patience} evaluation(s)`;
          }
        }
        if (endOfEpoch) {
          state.epoch++;
          state.batchInEpoch = 0;
        }
        if (rank === 0 && (state.step % checkpointEvery === 0 || endOfEpoch || stoppedEarly)) writeCheckpoint();
        if (stoppedEarly) break training;
        if (options.stopAfterSteps !== undefined && stepsThisProcess >= options.stopAfterSteps) {
          return { summary: buildSummary(), outputDir, params };
        }
      }
      if (state.batchInEpoch !== 0) {
        state.epoch++;
        state.batchInEpoch = 0;
      }
    }
    if (!reason) reason = spec.training.maxSteps ? 'reached spec.training.maxSteps' : `completed ${spec.training.epochs} epoch(s)`;
  } catch (err) {
    // A stop request that made a peer leave mid-step is still the stop request.
    if (options.stop?.aborted && err instanceof CollectiveError) throw interrupted();
    if (err instanceof CollectiveError && rank === 0) {
      checkpointProgress();
      const latest = latestCheckpoint();
      if (latest) throw new CollectiveError(`${err.message} (rank 0's checkpoint of step ${checkpointedStep}: ${latest})`, err.peer);
    }
    throw err;
  } finally {
    await thread?.close();
    await sessions.release();
    progress.finish();
  }

  // Keep the best weights when evaluation chose them.
  const finalParams = bestParams ?? params;
  const summary = buildSummary();
  let modelPath: string | undefined;
  if (rank === 0) {
    mkdirSync(outputDir, { recursive: true });
    modelPath = join(outputDir, 'model.onnx');
    const metadata: Record<string, string> = { 'finetune.job': job.metadata.name };
    if (prepared.classes) metadata['finetune.classes'] = JSON.stringify(prepared.classes);
    if (prepared.tokenizer) metadata[TOKENIZER_METADATA_KEY] = prepared.model.metadata[TOKENIZER_METADATA_KEY]!;
    saveModel(setMetadata(withParameters(prepared.model, finalParams), metadata), modelPath);
    summary.model.exported = modelPath;
    writeSummary(join(outputDir, 'metrics.json'), summary);
    writeReport(join(outputDir, 'report.html'), summary);
    // The final Prometheus figures, so they outlive the worker pods (docs/metrics.md).
    if (metrics) writeFileAtomic(join(outputDir, 'metrics.prom'), await metrics.exposition());
  }
  return { summary, outputDir, params: finalParams, ...(modelPath ? { modelPath } : {}) };

  function buildSummary(): RunSummary {
    const seconds = elapsed();
    const frozenValues = artifacts.frozen.reduce((s, n) => s + (inits.get(n)?.dims.reduce((a, b) => a * b, 1) ?? 0), 0);
    return {
      format: 'finetune-operator/metrics@1',
      job: job.metadata.name,
      model: { source: spec.model.source, output: artifacts.prediction },
      parameters: {
        trainable: paramInfo.map((p) => p.name),
        frozen: artifacts.frozen,
        trainableValues: sizes.reduce((a, b) => a + b, 0),
        frozenValues,
      },
      dataset: { train: train.length, validation: validation.length, ...(prepared.classes ? { classes: prepared.classes } : {}) },
      config: { optimizer: spec.optimizer, schedule: spec.schedule, training: spec.training, workers: spec.workers },
      train: state.train,
      eval: state.eval,
      ...(state.best ? { best: state.best } : {}),
      final: { step: state.step, epoch: state.epoch, stoppedEarly, reason: reason || 'stopped' },
      timing: { seconds, samplesPerSecond: state.samplesSeen / Math.max(seconds, 1e-9) },
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
    };
  }
}

/**
 * A step's micro-batches for the gradient thread, built as they are consumed. Each one's weight
 * is its share of a full micro-batch, as in the main-thread path.
 */
function* microBatchesOf(ds: Dataset, indices: number[], microBatch: number, built: (batch: Batch, seconds: number) => void): Generator<MicroBatch> {
  for (let m = 0; m < indices.length; m += microBatch) {
    const started = performance.now();
    const micro = indices.slice(m, m + microBatch);
    const batch = batchFeeds(ds, micro);
    built(batch, (performance.now() - started) / 1000);
    yield { inputs: batch.feeds, labels: batch.labels, weight: micro.length / microBatch, examples: micro.length };
  }
}

/**
 * Mean loss and accuracy over a whole dataset, in fixed-size batches. With data parallelism each
 * rank evaluates every worldSize-th example and the sums are all-reduced.
 */
export async function evaluateDataset(
  sessions: Pick<TrainingSessions, 'evaluate'>,
  ds: Dataset,
  params: ReadonlyMap<string, Float32Array>,
  classify: boolean,
  batchSize = 256,
  parallel?: DataParallel,
): Promise<{ loss: number; accuracy?: number }> {
  let lossSum = 0;
  let correct = 0;
  let positions = 0;
  let examples = 0;
  const rank = parallel?.rank ?? 0;
  const worldSize = parallel?.worldSize ?? 1;
  const mine: number[] = [];
  for (let i = rank; i < ds.length; i += worldSize) mine.push(i);
  for (let start = 0; start < mine.length; start += batchSize) {
    const indices = mine.slice(start, start + batchSize);
    const batch = batchFeeds(ds, indices);
    const { inputs, labels } = feedsOf(batch);
    const out = await sessions.evaluate(inputs, labels, params);
    lossSum += out.loss * indices.length;
    examples += indices.length;
    if (classify) {
      const logits = out.prediction.data as Float32Array;
      const classes = out.prediction.dims.at(-1)!;
      const truth = batch.labels.data as BigInt64Array;
      for (let i = 0; i < truth.length; i++) {
        let best = 0;
        for (let c = 1; c < classes; c++) if (logits[i * classes + c]! > logits[i * classes + best]!) best = c;
        if (BigInt(best) === truth[i]) correct++;
      }
      positions += truth.length;
    }
  }
  if (parallel) {
    // float64 sums of this size are exact in float32 for counts; the loss sum rounds slightly.
    const totals = Float32Array.of(lossSum, correct, positions, examples);
    await parallel.allReduceSum([totals]);
    [lossSum, correct, positions, examples] = [totals[0]!, totals[1]!, totals[2]!, totals[3]!];
  }
  return { loss: lossSum / examples, ...(classify ? { accuracy: correct / positions } : {}) };
}

/**
 * Fails loudly when ranks hold different parameters (a bug or a corrupted update), instead of
 * training diverged replicas: a 32-bit FNV-1a hash of the parameter bytes, as two 16-bit halves
 * (exact in float32), summed across ranks, must equal worldSize times this rank's own.
 */
async function checkIdentical(parallel: DataParallel, params: readonly Float32Array[], step: number): Promise<void> {
  let hash = 0x811c9dc5;
  for (const p of params) {
    const words = new Uint32Array(p.buffer, p.byteOffset, p.length);
    for (let i = 0; i < words.length; i++) hash = Math.imul(hash ^ words[i]!, 0x01000193) >>> 0;
  }
  const own = [hash & 0xffff, hash >>> 16];
  const sums = Float32Array.from(own);
  await parallel.allReduceSum([sums]);
  if (sums[0] !== own[0]! * parallel.worldSize || sums[1] !== own[1]! * parallel.worldSize) {
    throw new UserError(`step ${step}: parameters differ between ranks (rank ${parallel.rank} hash ${hash.toString(16)}); the replicas diverged, restart from the last checkpoint`);
  }
}

function checkpointOf(state: LoopState, params: Map<string, Float32Array>, optimizer: Optimizer, best: Map<string, Float32Array> | undefined, order: string[]) {
  const tensors = new Map<string, Float32Array>();
  for (const name of order) tensors.set(`param/${name}`, params.get(name)!);
  const opt = optimizer.state();
  const slotNames = opt.slots.map((slots, i) => {
    for (const [slot, values] of Object.entries(slots)) tensors.set(`optim/${slot}/${order[i]}`, values);
    return Object.keys(slots);
  });
  if (best) for (const name of order) tensors.set(`best/${name}`, best.get(name)!);
  return { state: { ...state, optimizerStep: opt.step, optimizerType: opt.type, slotNames }, tensors };
}

function restoreCheckpoint(state: LoopState, tensors: Map<string, Float32Array>, params: Map<string, Float32Array>, optimizer: Optimizer, order: string[]) {
  for (const name of order) {
    const saved = tensors.get(`param/${name}`);
    if (!saved || saved.length !== params.get(name)!.length) {
      throw new UserError(`the checkpoint does not match this job: parameter '${name}' is ${saved ? `${saved.length} values, expected ${params.get(name)!.length}` : 'missing'}`);
    }
    params.get(name)!.set(saved);
  }
  optimizer.loadState({
    type: state.optimizerType as 'sgd' | 'adamw',
    step: state.optimizerStep,
    slots: order.map((name, i) => Object.fromEntries((state.slotNames[i] ?? []).map((slot) => [slot, tensors.get(`optim/${slot}/${name}`)!]))),
  });
  const hasBest = tensors.has(`best/${order[0]}`);
  const bestParams = hasBest ? new Map(order.map((name) => [name, tensors.get(`best/${name}`)!])) : undefined;
  return { state, bestParams };
}

/** A failed collective ends the run with the step it happened at, so the job can resume from its checkpoint. */
async function collective<T>(step: number, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (err instanceof CollectiveError) {
      // Still a CollectiveError: the worker exits with the retryable code and the controller restarts the gang.
      throw new CollectiveError(`step ${step}: ${err.message}; restart with --resume to continue from the last checkpoint`, err.peer);
    }
    throw err;
  }
}
