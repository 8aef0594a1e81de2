/**
 * The committed base models (examples/models/) and the script that makes them
 * (examples/pretrain/make-base-models.mjs): they load and run, the text model carries its
 * tokenizer, the example jobs that fine-tune them prepare, and the script reproduces them byte for
 * byte (slow: it pre-trains both models, about a minute on two cores).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { parseFineTuneJob } from '@finetune/api';
import { loadModel, prepareRun, Tokenizer, TOKENIZER_METADATA_KEY, PAD_ID } from '@finetune/worker';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const MODELS = join(ROOT, 'examples', 'models');
const SCRIPT = join(ROOT, 'examples', 'pretrain', 'make-base-models.mjs');
const FILES = ['digits-cnn-0to4.onnx', 'text-encoder-mlm.onnx'];

const sha256 = (path: string) => createHash('sha256').update(readFileSync(path)).digest('hex');

test('the committed base models are small', () => {
  for (const f of FILES) {
    const bytes = statSync(join(MODELS, f)).size;
    assert.ok(bytes > 10_000 && bytes <= 2 * 1024 * 1024, `${f}: ${bytes} bytes`);
  }
});

test('the digits CNN runs in onnxruntime: image [batch,1,28,28] -> logits [batch,5]', async () => {
  const path = join(MODELS, 'digits-cnn-0to4.onnx');
  const session = await ort.InferenceSession.create(path);
  try {
    assert.deepEqual(session.inputNames, ['image']);
    assert.deepEqual(session.outputNames, ['logits']);
    const out = await session.run({ image: new ort.Tensor('float32', new Float32Array(3 * 784).fill(0.5), [3, 1, 28, 28]) });
    assert.deepEqual(out.logits!.dims, [3, 5]);
    assert.ok((out.logits!.data as Float32Array).every(Number.isFinite));
  } finally {
    await session.release();
  }
  const model = await loadModel(path);
  assert.deepEqual(JSON.parse(model.metadata['finetune.classes']!), ['0', '1', '2', '3', '4']);
  for (const p of ['conv1.weight', 'conv2.weight', 'conv3.weight', 'head.weight', 'head.bias']) {
    assert.ok(model.graph.initializers.some((t) => t.name === p), `has ${p}`);
  }
});

test('the text encoder runs in onnxruntime and carries its tokenizer in the metadata', async () => {
  const path = join(MODELS, 'text-encoder-mlm.onnx');
  const model = await loadModel(path);
  assert.ok(model.metadata[TOKENIZER_METADATA_KEY], `metadata '${TOKENIZER_METADATA_KEY}'`);
  const tokenizer = Tokenizer.fromModelMetadata(model.metadata)!;
  assert.equal(tokenizer.vocabSize, 3000);
  const embed = model.graph.initializers.find((t) => t.name === 'embed.weight');
  assert.deepEqual(embed?.dims, [3000, 64], 'one embedding row per token id');

  const ids = [tokenizer.encode('Click here to claim your free', 64), tokenizer.encode('', 64)];
  assert.ok(ids[0]!.slice(0, 6).every((id) => id > 3), 'common words are in the vocabulary');
  assert.ok(ids[1]!.every((id) => id === PAD_ID));
  const session = await ort.InferenceSession.create(path);
  try {
    assert.deepEqual(session.inputNames, ['tokens']);
    const out = await session.run({ tokens: new ort.Tensor('int64', BigInt64Array.from(ids.flat().map(BigInt)), [2, 64]) });
    assert.equal(out.logits!.dims[0], 2);
    assert.ok((out.logits!.data as Float32Array).every(Number.isFinite), 'an all-padding row gives finite logits');
  } finally {
    await session.release();
  }
});

test('the example fine-tuning jobs validate and prepare against the committed models', async () => {
  for (const [file, params] of [
    ['digits-5to9.yaml', 5 * 288 + 5],
    ['spam-ham.yaml', 2 * 64 + 2],
  ] as const) {
    const job = parseFineTuneJob(readFileSync(join(ROOT, 'examples', file), 'utf8'), file);
    job.spec.model.source = join(ROOT, job.spec.model.source);
    const prepared = await prepareRun(job);
    assert.equal(prepared.numClasses, job.spec.model.head!.numClasses, file);
    const head = prepared.artifacts.params.filter((p) => p.name.startsWith('head.'));
    assert.equal(head.reduce((n, p) => n + p.dims.reduce((a, b) => a * b, 1), 0), params, `${file}: the new head trains`);
    assert.ok(prepared.artifacts.frozen.length > 0, `${file}: the lower layers stay frozen`);
    if (file === 'spam-ham.yaml') assert.ok(prepared.tokenizer, 'the text job finds the tokenizer');
  }
});

test('make-base-models.mjs reproduces the committed models byte for byte', { timeout: 15 * 60_000 }, () => {
  const out = mkdtempSync(join(tmpdir(), 'base-models-'));
  try {
    const res = spawnSync(process.execPath, [SCRIPT, '--out', out, '--quiet'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(res.status, 0, res.stderr);
    for (const f of FILES) {
      assert.equal(
        sha256(join(out, f)),
        sha256(join(MODELS, f)),
        `${f} differs from the committed file. If the script or the worker's training changed on purpose, regenerate examples/models ` +
          `(node examples/pretrain/make-base-models.mjs) and update examples/models/README.md; a different CPU type can also change ` +
          `onnxruntime's float results.\nscript output:\n${res.stdout}`,
      );
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});
