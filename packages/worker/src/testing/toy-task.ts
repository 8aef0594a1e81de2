/**
 * The toy fine-tuning task that the worker, CLI and end-to-end tests train on: a temp folder with
 * train.jsonl (rows of 4 random features and a label given by a rule) and mlp.onnx, a small MLP
 * (Gemm layers with Tanh between them). One builder so that every test's data and initial weights
 * come from the same recipe; a test picks only the seed, the rule and the layer sizes.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { saveModel } from '../onnx/load.js';
import { ModelBuilder, randomValues, rng } from './model-builder.js';

/** The number of input features (the model's input 'x' has dims ['batch', 4]). */
const TOY_FEATURES = 4;

export interface ToyLayer {
  /** Output width of this Gemm. */
  out: number;
  /** Uniform range of the initial weights. */
  init: [lo: number, hi: number];
  /** Uniform range of the initial bias; `init` when left out. */
  biasInit?: [lo: number, hi: number];
}

export interface ToyTaskOptions {
  /** Prefix of the temp folder's name. */
  prefix: string;
  seed: number;
  /** Rows in train.jsonl. */
  examples?: number;
  /** The label of a row, from its features (before they are rounded to 4 decimals). */
  label: (x: number[]) => number | string;
  /** fc1, fc2, ...: Tanh after every layer but the last. */
  layers: ToyLayer[];
}

/**
 * Writes train.jsonl and mlp.onnx into a new temp folder. All random draws come from rng(seed):
 * every row's features first, then each layer's weights, then its bias.
 */
export function writeToyTask({ prefix, seed, examples = 240, label, layers }: ToyTaskOptions): { dir: string; trainPath: string; modelPath: string } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  const trainPath = join(dir, 'train.jsonl');
  const modelPath = join(dir, 'mlp.onnx');
  const r = rng(seed);
  const rows: string[] = [];
  for (let i = 0; i < examples; i++) {
    const x = Array.from(randomValues(r, TOY_FEATURES, -1, 1));
    rows.push(JSON.stringify({ x: x.map((v) => Number(v.toFixed(4))), label: label(x) }));
  }
  writeFileSync(trainPath, rows.join('\n') + '\n');
  const m = new ModelBuilder();
  let h = m.input('x', ['batch', TOY_FEATURES]);
  let width = TOY_FEATURES;
  layers.forEach(({ out, init, biasInit = init }, i) => {
    const weight = m.param(`fc${i + 1}.weight`, [out, width], randomValues(r, out * width, ...init));
    const bias = m.param(`fc${i + 1}.bias`, [out], randomValues(r, out, ...biasInit));
    h = m.node('Gemm', [h, weight, bias], { transB: 1 });
    if (i < layers.length - 1) h = m.node('Tanh', [h]);
    width = out;
  });
  m.output(h);
  saveModel(m.build(), modelPath);
  return { dir, trainPath, modelPath };
}
