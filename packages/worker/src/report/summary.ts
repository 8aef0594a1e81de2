/** The machine-readable record of a training run (metrics.json), written once at the end of a run. */
import { writeFileAtomic } from './atomic.js';

export interface TrainPoint {
  step: number;
  epoch: number;
  loss: number;
  learningRate: number;
  samplesPerSecond?: number;
  gradNorm?: number;
}

export interface EvalPoint {
  step: number;
  epoch: number;
  loss: number;
  accuracy?: number;
}

export interface RunSummary {
  format: 'finetune-operator/metrics@1';
  /** Job name. */
  job: string;
  model: { source: string; output: string; exported?: string };
  parameters: { trainable: string[]; frozen: string[]; trainableValues: number; frozenValues: number };
  dataset: { train: number; validation: number; classes?: string[] };
  /** The resolved spec (optimizer, schedule, training). */
  config: Record<string, unknown>;
  /** One point per logged step. */
  train: TrainPoint[];
  /** One point per evaluation. */
  eval: EvalPoint[];
  best?: EvalPoint & { metric: string };
  final: { step: number; epoch: number; stoppedEarly: boolean; reason: string };
  timing: { seconds: number; samplesPerSecond: number };
  startedAt: string;
  finishedAt: string;
}

export const SUMMARY_FORMAT = 'finetune-operator/metrics@1' as const;

/**
 * Pretty JSON. A diverged run has NaN/Infinity losses, which JSON cannot hold: they become null
 * (what JSON.stringify does for non-finite numbers anyway; the replacer makes it explicit and also
 * keeps a bigint in the config from throwing).
 */
export function summaryToJson(summary: RunSummary): string {
  return `${JSON.stringify(summary, jsonReplacer, 2)}\n`;
}

function jsonReplacer(_key: string, value: unknown): unknown {
  if (typeof value === 'number' && !Number.isFinite(value)) return null;
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  return value;
}

/** Writes metrics.json via a temporary file and a rename. */
export function writeSummary(path: string, summary: RunSummary): void {
  writeFileAtomic(path, summaryToJson(summary));
}
