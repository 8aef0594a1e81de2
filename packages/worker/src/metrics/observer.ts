/**
 * What the training loop reports while it runs. The loop depends on this interface only, so it
 * stays free of prom-client and tests can pass a recorder; WorkerMetrics is the real one.
 */

/** Seconds one optimizer step spent in each phase. */
export interface StepPhaseSeconds {
  /** Gathering the batch and building the input tensors. */
  data: number;
  /** Forward and backward (the training graph in onnxruntime), including gradient accumulation. */
  compute: number;
  /** Averaging the gradients across ranks; absent when training alone. */
  allreduce?: number;
  /** Clipping, the learning-rate schedule and the optimizer update. */
  optimizer: number;
}

export interface StepReport {
  /** Optimizer steps done so far (1 after the first). */
  step: number;
  /** The epoch this step belonged to (0-based). */
  epoch: number;
  loss: number;
  learningRate: number;
  /** Examples this rank processed in this step. */
  samples: number;
  /** Non-pad tokens this rank processed in this step (0 for non-text models). */
  tokens: number;
  seconds: StepPhaseSeconds;
}

export interface TrainingObserver {
  /** Once, before the first step (also after a resume, with the restored position). */
  runStarted(info: { worldSize: number; totalSteps: number; step: number; epoch: number }): void;
  stepFinished(report: StepReport): void;
  evaluated(result: { loss: number; accuracy?: number }): void;
  /** One all-reduce of `bytes` float32 payload bytes (gradients, evaluation sums, checks). */
  allReduced(bytes: number, seconds: number): void;
  checkpointWritten(seconds: number, bytes: number): void;
  /** The Prometheus text exposition of everything so far (written as metrics.prom at the end). */
  exposition(): Promise<string>;
}
