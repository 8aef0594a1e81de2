/** What the training loop tells the outside world while it runs (a progress bar, logs, metrics). */
import type { EvalPoint, TrainPoint } from '../report/summary.js';

export interface RunInfo {
  job: string;
  totalSteps: number;
  stepsPerEpoch: number;
  epochs: number;
  startStep: number;
  trainable: { name: string; dims: number[] }[];
  frozen: string[];
  trainExamples: number;
  validationExamples: number;
}

export interface ProgressSink {
  start(info: RunInfo): void;
  step(point: TrainPoint): void;
  evaluation(point: EvalPoint, improved: boolean): void;
  message(text: string): void;
  finish(): void;
}

/** A sink that ignores everything (library use and tests). */
export const SILENT: ProgressSink = {
  start: () => {},
  step: () => {},
  evaluation: () => {},
  message: () => {},
  finish: () => {},
};
