/** Writes training.onnx, eval.onnx and a manifest describing them (the artifact contract). */
import { writeFileSync, mkdirSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import type { Model } from '../onnx/types.js';
import { saveModel } from '../onnx/load.js';
import { buildTrainingArtifacts, gradName, LABELS_INPUT, LOSS_OUTPUT, type TrainingGraphOptions, type ParameterInfo } from './training-graph.js';

export interface ArtifactsReport {
  training: string;
  eval: string;
  manifest: string;
  loss: string;
  prediction: string;
  labels: string;
  params: (ParameterInfo & { grad: string })[];
  frozen: string[];
  disconnected: string[];
  parameterCount: { trainable: number; frozen: number };
}

export async function writeArtifacts(model: Model, outDir: string, options: TrainingGraphOptions): Promise<ArtifactsReport> {
  const artifacts = await buildTrainingArtifacts(model, options);
  mkdirSync(outDir, { recursive: true });
  const training = join(outDir, 'training.onnx');
  const evaluation = join(outDir, 'eval.onnx');
  const manifest = join(outDir, 'artifacts.json');
  saveModel(artifacts.training, training);
  saveModel(artifacts.eval, evaluation);
  const sizes = new Map(model.graph.initializers.map((t) => [t.name, t.dims.reduce((a, b) => a * b, 1)]));
  const trainableCount = artifacts.params.reduce((s, p) => s + sizes.get(p.name)!, 0);
  const frozenCount = artifacts.frozen.reduce((s, name) => s + (sizes.get(name) ?? 0), 0);
  const report: ArtifactsReport = {
    training,
    eval: evaluation,
    manifest,
    loss: options.loss,
    prediction: artifacts.prediction,
    labels: LABELS_INPUT,
    params: artifacts.params.map((p) => ({ ...p, grad: gradName(p.name) })),
    frozen: artifacts.frozen,
    disconnected: artifacts.disconnected,
    parameterCount: { trainable: trainableCount, frozen: frozenCount },
  };
  const body = {
    format: 'finetune-operator/artifacts@1',
    loss: { kind: options.loss, output: LOSS_OUTPUT, reads: artifacts.prediction },
    labels: LABELS_INPUT,
    inputs: artifacts.training.graph.inputs.map((i) => i.name),
    params: report.params,
    frozen: report.frozen,
    disconnected: report.disconnected,
  };
  writeFileSync(`${manifest}.tmp`, JSON.stringify(body, null, 2) + '\n');
  renameSync(`${manifest}.tmp`, manifest);
  return report;
}
