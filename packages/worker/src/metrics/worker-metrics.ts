/**
 * The worker's Prometheus metrics (prom-client, one Registry per process). Every series carries
 * `job` (namespace/name) and `rank`; nothing else varies except the step phase, so the number of
 * series per worker is fixed. The names are a contract with the dashboards, the controller and the
 * Helm chart (docs/metrics.md): change them in all places or not at all.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { StepReport, TrainingObserver } from './observer.js';

export const METRIC_PREFIX = 'finetune_worker_';
export const STEP_PHASES = ['data', 'compute', 'allreduce', 'optimizer'] as const;

/** 0.5 ms to ~16 s, doubling: a step phase or one all-reduce, from a toy MLP to a large model. */
const DURATION_BUCKETS = [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.024, 2.048, 4.096, 8.192, 16.384];
/** 1 ms to ~65 s, x4: a checkpoint is a few kB for a head and gigabytes for a whole model. */
const CHECKPOINT_BUCKETS = [0.001, 0.004, 0.016, 0.064, 0.256, 1.024, 4.096, 16.384, 65.536];

export interface WorkerMetricsOptions {
  /** The `job` label: namespace/name. */
  job: string;
  rank: number;
  /** Process and Node.js runtime metrics (CPU, memory, event loop, GC), prefixed finetune_worker_. Default true. */
  defaultMetrics?: boolean;
}

const BASE_LABELS = ['job', 'rank'] as const;
type BaseLabel = (typeof BASE_LABELS)[number];

export class WorkerMetrics implements TrainingObserver {
  readonly registry = new Registry();
  private readonly base: Record<BaseLabel, string>;

  // Unknown until the first step or evaluation: absent until then rather than a misleading 0.
  private readonly loss = this.gauge('loss', 'Training loss of the last step (the mean over all ranks).');
  private readonly validationLoss = this.gauge('validation_loss', 'Validation loss of the last evaluation.');
  private readonly validationAccuracy = this.gauge('validation_accuracy', 'Validation accuracy of the last evaluation, 0..1 (classification only).');
  private readonly learningRate = this.gauge('learning_rate', 'Learning rate used by the last step.');

  private readonly samples = this.counter('samples_total', 'Training examples this rank processed.');
  private readonly tokens = this.counter('tokens_total', 'Non-pad input tokens this rank processed (0 for models without a tokenizer).');
  private readonly stepDuration = new Histogram({
    name: `${METRIC_PREFIX}step_duration_seconds`,
    help: 'Seconds per optimizer step spent in each phase: data, compute (forward+backward), allreduce (gradients), optimizer.',
    labelNames: [...BASE_LABELS, 'phase'],
    buckets: DURATION_BUCKETS,
    registers: [this.registry],
  });
  private readonly allReduceBytes = this.counter('allreduce_bytes_total', 'float32 payload bytes this rank all-reduced (gradients, evaluation sums, replica checks).');
  private readonly allReduceDuration = this.histogram('allreduce_duration_seconds', 'Seconds per all-reduce call, as this rank waited for it.', DURATION_BUCKETS);
  private readonly worldSize = this.gauge('world_size', 'Number of data-parallel ranks (busbw = algbw * 2(N-1)/N).');
  private readonly checkpointDuration = this.histogram('checkpoint_duration_seconds', 'Seconds to write one checkpoint (only rank 0 writes them).', CHECKPOINT_BUCKETS);
  private readonly checkpointSize = this.gauge('checkpoint_size_bytes', 'Bytes of the last checkpoint this rank wrote (0 on ranks that write none).');
  private readonly epoch = this.gauge('epoch', 'Current epoch, 0-based.');
  private readonly step = this.gauge('step', 'Optimizer steps done.');
  private readonly totalSteps = this.gauge('total_steps', 'Optimizer steps the run will do at most.');

  constructor(options: WorkerMetricsOptions) {
    this.base = { job: options.job, rank: String(options.rank) };
    // Known from the start: exposed as 0 so rates and "has it started" queries work at once.
    this.samples.inc(this.base, 0);
    this.tokens.inc(this.base, 0);
    this.allReduceBytes.inc(this.base, 0);
    this.allReduceDuration.zero(this.base);
    this.checkpointDuration.zero(this.base);
    this.checkpointSize.set(this.base, 0);
    for (const phase of STEP_PHASES) this.stepDuration.zero({ ...this.base, phase });
    for (const g of [this.epoch, this.step, this.totalSteps]) g.set(this.base, 0);
    this.worldSize.set(this.base, 1);
    if (options.defaultMetrics !== false) {
      collectDefaultMetrics({ register: this.registry, prefix: METRIC_PREFIX, labels: this.base });
    }
  }

  runStarted(info: { worldSize: number; totalSteps: number; step: number; epoch: number }): void {
    this.worldSize.set(this.base, info.worldSize);
    this.totalSteps.set(this.base, info.totalSteps);
    this.step.set(this.base, info.step);
    this.epoch.set(this.base, info.epoch);
  }

  stepFinished(r: StepReport): void {
    this.step.set(this.base, r.step);
    this.epoch.set(this.base, r.epoch);
    this.loss.set(this.base, r.loss);
    this.learningRate.set(this.base, r.learningRate);
    this.samples.inc(this.base, r.samples);
    if (r.tokens > 0) this.tokens.inc(this.base, r.tokens);
    for (const phase of STEP_PHASES) {
      const seconds = r.seconds[phase];
      if (seconds !== undefined) this.stepDuration.observe({ ...this.base, phase }, seconds);
    }
  }

  evaluated(result: { loss: number; accuracy?: number }): void {
    this.validationLoss.set(this.base, result.loss);
    if (result.accuracy !== undefined) this.validationAccuracy.set(this.base, result.accuracy);
  }

  allReduced(bytes: number, seconds: number): void {
    this.allReduceBytes.inc(this.base, bytes);
    this.allReduceDuration.observe(this.base, seconds);
  }

  checkpointWritten(seconds: number, bytes: number): void {
    this.checkpointDuration.observe(this.base, seconds);
    this.checkpointSize.set(this.base, bytes);
  }

  exposition(): Promise<string> {
    return this.registry.metrics();
  }

  private gauge(name: string, help: string): Gauge<BaseLabel> {
    return new Gauge({ name: METRIC_PREFIX + name, help, labelNames: BASE_LABELS, registers: [this.registry] });
  }

  private counter(name: string, help: string): Counter<BaseLabel> {
    return new Counter({ name: METRIC_PREFIX + name, help, labelNames: BASE_LABELS, registers: [this.registry] });
  }

  private histogram(name: string, help: string, buckets: number[]): Histogram<BaseLabel> {
    return new Histogram({ name: METRIC_PREFIX + name, help, labelNames: BASE_LABELS, buckets, registers: [this.registry] });
  }
}
