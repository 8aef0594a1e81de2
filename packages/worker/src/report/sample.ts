/**
 * A plausible run summary (decaying noisy loss, warmup-then-decay learning rate, rising accuracy),
 * deterministic for a given seed: tests build on it, and it shows the report's look without a real run.
 */
import type { EvalPoint, RunSummary, TrainPoint } from './summary.js';

export interface SampleOptions {
  steps?: number;
  evalEvery?: number;
  accuracy?: boolean;
  seed?: number;
  job?: string;
}

export function sampleRunSummary(options: SampleOptions = {}): RunSummary {
  const steps = options.steps ?? 300;
  const evalEvery = options.evalEvery ?? 50;
  let state = (options.seed ?? 1) >>> 0 || 1;
  const rand = (): number => {
    // xorshift32: tiny and deterministic, which is all a fixture needs
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 2 ** 32;
  };
  const warmup = Math.max(1, Math.floor(steps / 10));
  const train: TrainPoint[] = [];
  for (let step = 1; step <= steps; step++) {
    const lr = step <= warmup ? (3e-4 * step) / warmup : 3e-4 * 0.5 * (1 + Math.cos((Math.PI * (step - warmup)) / Math.max(1, steps - warmup)));
    train.push({
      step,
      epoch: step / 100,
      loss: 0.2 + 2.1 * Math.exp(-step / (steps / 4)) + 0.15 * (rand() - 0.5),
      learningRate: lr,
      samplesPerSecond: 1200 + 100 * rand(),
      gradNorm: 1 + rand(),
    });
  }
  const evals: EvalPoint[] = [];
  for (let step = evalEvery; step <= steps; step += evalEvery) {
    const point: EvalPoint = { step, epoch: step / 100, loss: 0.3 + 2.1 * Math.exp(-step / (steps / 4)) };
    if (options.accuracy ?? true) point.accuracy = 0.1 + 0.85 * (1 - Math.exp(-step / (steps / 3)));
    evals.push(point);
  }
  const best = evals.length ? { ...evals[evals.length - 1]!, metric: options.accuracy ?? true ? 'accuracy' : 'loss' } : undefined;
  const summary: RunSummary = {
    format: 'finetune-operator/metrics@1',
    job: options.job ?? 'sample-job',
    model: { source: 'models/base.onnx', output: 'out/model.onnx', exported: 'out/inference.onnx' },
    parameters: { trainable: ['head.weight', 'head.bias'], frozen: ['body.0.weight', 'body.0.bias', 'body.1.weight'], trainableValues: 7850, frozenValues: 235_200 },
    dataset: { train: 60_000, validation: 10_000, classes: ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'] },
    config: { optimizer: { type: 'adamw', lr: 3e-4, weightDecay: 0.01 }, schedule: { type: 'cosine', warmupSteps: warmup }, training: { steps, batchSize: 64 } },
    train,
    eval: evals,
    final: { step: steps, epoch: steps / 100, stoppedEarly: false, reason: 'reached max steps' },
    timing: { seconds: 754.2, samplesPerSecond: 1250.5 },
    startedAt: '2024-05-01T10:00:00.000Z',
    finishedAt: '2024-05-01T10:12:34.200Z',
  };
  if (best) summary.best = best;
  return summary;
}
