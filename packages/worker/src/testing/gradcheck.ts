/**
 * Checks a training graph's gradients against central finite differences of its eval graph's
 * loss, both run by onnxruntime-node in float32.
 *
 * Tolerance: with step eps, central differences have truncation error O(eps^2 f''') and rounding
 * error about 1e-7 * |loss| / eps in float32. With eps = 1e-2 and inputs kept away from kinks
 * (ReLU at 0, ties in MaxPool), both stay near 1e-4 of the gradient scale, so a coordinate passes
 * when |analytic - numeric| <= rtol * |numeric| + atol * scale, with rtol = 1e-2, atol = 1e-3 and
 * scale = the largest |numeric| of that parameter. A wrong rule is off by O(1) of the scale.
 */
import ort from 'onnxruntime-node';
import type { Model } from '../onnx/types.js';
import { modelToBytes } from '../onnx/load.js';
import { buildTrainingArtifacts, gradName, LABELS_INPUT, LOSS_OUTPUT, type TrainingArtifacts } from '../autodiff/training-graph.js';
import type { LossKind } from '../autodiff/loss.js';
import { randomValues, rng } from './model-builder.js';

export interface GradCheckOptions {
  /** Values for the model's real inputs (with concrete sizes for symbolic dims). */
  feeds?: Record<string, ort.Tensor>;
  loss?: LossKind;
  /** Labels; for mse, random targets shaped like the output when absent. */
  labels?: ort.Tensor;
  trainable?: string[];
  eps?: number;
  rtol?: number;
  atol?: number;
  /** At most this many coordinates of each parameter are checked (spread at random). */
  maxCoords?: number;
  seed?: number;
  probeDims?: Record<string, number>;
}

export interface GradCheckResult {
  artifacts: TrainingArtifacts;
  loss: number;
  /** Worst |analytic - numeric| / (rtol |numeric| + atol scale) per parameter; <= 1 passes. */
  worst: Record<string, number>;
}

export async function gradCheck(model: Model, options: GradCheckOptions = {}): Promise<GradCheckResult> {
  const eps = options.eps ?? 1e-2;
  const rtol = options.rtol ?? 1e-2;
  const atol = options.atol ?? 1e-3;
  const random = rng(options.seed ?? 1234);
  const feeds = options.feeds ?? {};

  const artifacts = await buildTrainingArtifacts(model, {
    loss: options.loss ?? 'mse',
    ...(options.trainable ? { trainable: options.trainable } : {}),
    ...(options.probeDims ? { probe: { dims: options.probeDims } } : {}),
  });
  const labels = options.labels ?? (await randomTargets(model, artifacts.prediction, feeds, random));

  const params: Record<string, ort.Tensor> = {};
  const inits = new Map(model.graph.initializers.map((t) => [t.name, t]));
  for (const p of artifacts.params) {
    params[p.name] = new ort.Tensor('float32', Float32Array.from(inits.get(p.name)!.values as Float32Array), p.dims);
  }

  const training = await ort.InferenceSession.create(modelToBytes(artifacts.training));
  const evaluation = await ort.InferenceSession.create(modelToBytes(artifacts.eval));
  try {
    const base = { ...feeds, [LABELS_INPUT]: labels };
    const out = await training.run({ ...base, ...params });
    const loss = (out[LOSS_OUTPUT]!.data as Float32Array)[0]!;
    const lossAt = async () => ((await evaluation.run({ ...base, ...params }, [LOSS_OUTPUT]))[LOSS_OUTPUT]!.data as Float32Array)[0]!;

    const worst: Record<string, number> = {};
    const failures: string[] = [];
    for (const p of artifacts.params) {
      const values = params[p.name]!.data as Float32Array;
      const analytic = out[gradName(p.name)]!.data as Float32Array;
      const coords = pickCoords(values.length, options.maxCoords ?? 32, random);
      const numeric: number[] = [];
      for (const j of coords) {
        const saved = values[j]!;
        values[j] = saved + eps;
        const plus = await lossAt();
        values[j] = saved - eps;
        const minus = await lossAt();
        values[j] = saved;
        numeric.push((plus - minus) / (2 * eps));
      }
      const scale = Math.max(1e-6, ...numeric.map(Math.abs));
      let worstRatio = 0;
      coords.forEach((j, k) => {
        const n = numeric[k]!;
        const a = analytic[j]!;
        const ratio = Math.abs(a - n) / (rtol * Math.abs(n) + atol * scale);
        if (ratio > worstRatio) worstRatio = ratio;
        if (!(ratio <= 1)) failures.push(`${p.name}[${j}]: analytic ${a.toPrecision(6)} vs numeric ${n.toPrecision(6)}`);
      });
      worst[p.name] = worstRatio;
    }
    if (failures.length > 0) {
      throw new Error(`gradient mismatch (eps ${eps}, rtol ${rtol}, atol ${atol} x scale):\n  ${failures.slice(0, 10).join('\n  ')}`);
    }
    return { artifacts, loss, worst };
  } finally {
    await training.release();
    await evaluation.release();
  }
}

async function randomTargets(model: Model, prediction: string, feeds: Record<string, ort.Tensor>, random: () => number): Promise<ort.Tensor> {
  const session = await ort.InferenceSession.create(modelToBytes(model));
  try {
    const y = (await session.run(feeds, [prediction]))[prediction]!;
    return new ort.Tensor('float32', randomValues(random, y.size), y.dims);
  } finally {
    await session.release();
  }
}

function pickCoords(length: number, max: number, random: () => number): number[] {
  if (length <= max) return Array.from({ length }, (_, i) => i);
  const picked = new Set<number>([0, length - 1]);
  while (picked.size < max) picked.add(Math.floor(random() * length));
  return [...picked].sort((a, b) => a - b);
}

/** Op types in a model's graph outside the default ONNX domain (should be none). */
export function nonStandardOps(model: Model): string[] {
  return model.graph.nodes.filter((n) => n.domain !== '' && n.domain !== 'ai.onnx').map((n) => `${n.domain}.${n.opType}`);
}
