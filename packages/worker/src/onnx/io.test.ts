import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, readFileSync, readdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AddressInfo } from 'node:net';
import ort from 'onnxruntime-node';
import { loadModel, modelToBytes, saveModel } from './load.js';
import { DataType, type Model } from './types.js';
import { summarizeModel } from './inspect.js';
import { ModelBuilder, randomValues, rng } from '../testing/model-builder.js';
import { UserError } from '../errors.js';

function sampleModel(): Model {
  const r = rng(3);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 64]);
  const w = m.param('w', [64, 32], randomValues(r, 64 * 32));
  const bias = m.param('b', [32], randomValues(r, 32));
  const shape = m.int64('shape', [2], [-1, 32]);
  m.output(m.node('Reshape', [m.node('Add', [m.node('MatMul', [x, w]), bias]), shape]));
  return m.build();
}

async function run(model: Model | string, x: Float32Array): Promise<Float32Array> {
  const session = typeof model === 'string' ? await ort.InferenceSession.create(model) : await ort.InferenceSession.create(modelToBytes(model));
  const out = await session.run({ x: new ort.Tensor('float32', x, [2, 64]) });
  await session.release();
  return Object.values(out)[0]!.data as Float32Array;
}

test('a model survives encode and decode unchanged, and onnxruntime runs the written bytes', async () => {
  const model = sampleModel();
  const dir = mkdtempSync(join(tmpdir(), 'ftjob-io-'));
  saveModel(model, join(dir, 'm.onnx'));
  const loaded = await loadModel(join(dir, 'm.onnx'));
  assert.deepEqual(loaded.graph.inputs, model.graph.inputs);
  assert.deepEqual(loaded.graph.nodes, model.graph.nodes);
  assert.deepEqual(loaded.opsetImports, model.opsetImports);
  for (const [i, t] of model.graph.initializers.entries()) {
    const u = loaded.graph.initializers[i]!;
    assert.equal(u.name, t.name);
    assert.deepEqual(u.dims, t.dims);
    assert.deepEqual(Array.from(u.values as ArrayLike<number | bigint>), Array.from(t.values as ArrayLike<number | bigint>));
  }
  const x = randomValues(rng(9), 128);
  assert.deepEqual(await run(join(dir, 'm.onnx'), x), await run(model, x));
});

test('external data: written beside the model, read back, and loadable by onnxruntime itself', async () => {
  const model = sampleModel();
  const dir = mkdtempSync(join(tmpdir(), 'ftjob-ext-'));
  const path = join(dir, 'model.onnx');
  saveModel(model, path, { externalDataFile: 'model.data', externalThreshold: 64 });
  assert.ok(readFileSync(path).byteLength < 1024, 'weights must live in model.data, not inline');
  assert.ok(readdirSync(dir).includes('model.data'));
  const loaded = await loadModel(path);
  const w = loaded.graph.initializers.find((t) => t.name === 'w')!;
  assert.deepEqual(Array.from(w.values as Float32Array), Array.from(model.graph.initializers[0]!.values as Float32Array));
  const x = randomValues(rng(10), 128);
  // onnxruntime resolves the external file on its own: an independent reader of what we wrote.
  assert.deepEqual(await run(path, x), await run(model, x));
  assert.deepEqual(await run(loaded, x), await run(model, x));
});

test('loads from file:// and http:// URLs, external data included', async () => {
  const model = sampleModel();
  const dir = mkdtempSync(join(tmpdir(), 'ftjob-url-'));
  saveModel(model, join(dir, 'model.onnx'), { externalDataFile: 'weights.bin', externalThreshold: 64 });
  const fromFileUrl = await loadModel(pathToFileURL(join(dir, 'model.onnx')).href);
  assert.equal(fromFileUrl.graph.initializers.length, 3);

  const server = createServer((req, res) => {
    try {
      const body = readFileSync(join(dir, req.url!.slice(1)));
      res.writeHead(200).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  try {
    const viaHttp = await loadModel(`http://127.0.0.1:${port}/model.onnx`);
    const x = randomValues(rng(11), 128);
    assert.deepEqual(await run(viaHttp, x), await run(model, x));
    await assert.rejects(loadModel(`http://127.0.0.1:${port}/missing.onnx`), (err: Error) => err instanceof UserError && /HTTP 404/.test(err.message));
  } finally {
    server.close();
  }
});

test('clear errors for a missing file, a file that is not ONNX, and a truncated external file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ftjob-bad-'));
  await assert.rejects(loadModel(join(dir, 'nope.onnx')), (err: Error) => err instanceof UserError && /cannot read model file .*ENOENT/.test(err.message));
  writeFileSync(join(dir, 'text.onnx'), 'this is not a protobuf message at all, just some text\n');
  await assert.rejects(loadModel(join(dir, 'text.onnx')), (err: Error) => err instanceof UserError && /not an ONNX model/.test(err.message));
  saveModel(sampleModel(), join(dir, 'm.onnx'), { externalDataFile: 'm.data', externalThreshold: 64 });
  writeFileSync(join(dir, 'm.data'), Buffer.alloc(100));
  await assert.rejects(loadModel(join(dir, 'm.onnx')), (err: Error) => err instanceof UserError && /tensor 'w'.*too short/.test(err.message));
  await assert.rejects(loadModel('ftp://example.invalid/m.onnx'), (err: Error) => err instanceof UserError && /unsupported scheme 'ftp:'/.test(err.message));
});

test('summary lists real inputs (not initializers), outputs, op counts and parameter count', () => {
  const s = summarizeModel(sampleModel());
  assert.deepEqual(s.inputs, [{ name: 'x', type: 'float', shape: ['batch', 64] }]);
  assert.deepEqual(s.ops, { MatMul: 1, Add: 1, Reshape: 1 });
  assert.equal(s.parameters, 64 * 32 + 32);
  assert.equal(s.initializers.find((t) => t.name === 'shape')!.type, 'int64');
});

test('int64 and bool tensors keep their values through a round trip', async () => {
  const m = new ModelBuilder();
  m.int64('big', [3], [-(2 ** 40), 0, 2 ** 40]);
  m.bool('mask', [2], [1, 0]);
  const x = m.input('x', [2]);
  m.output(m.node('Identity', [x]));
  const loaded = await loadModel(modelToBytes(m.build()));
  const big = loaded.graph.initializers.find((t) => t.name === 'big')!;
  assert.equal(big.dataType, DataType.INT64);
  assert.deepEqual(Array.from(big.values as BigInt64Array), [-(2n ** 40n), 0n, 2n ** 40n]);
  assert.deepEqual(Array.from(loaded.graph.initializers.find((t) => t.name === 'mask')!.values as Uint8Array), [1, 0]);
});
