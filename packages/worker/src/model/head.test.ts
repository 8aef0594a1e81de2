import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { loadModel, modelToBytes } from '../onnx/load.js';
import { DataType, type Model, type TensorData } from '../onnx/types.js';
import { ModelBuilder, randomValues, rng } from '../testing/model-builder.js';
import { buildTrainingArtifacts } from '../autodiff/training-graph.js';
import { UserError } from '../errors.js';
import { attachHead, findClassifier } from './head.js';
import { resolveTrainable } from './select.js';

const FIXTURES = fileURLToPath(new URL('../../../../test/fixtures/pytorch/', import.meta.url));
const fixture = (name: string) => loadModel(`${FIXTURES}${name}/model.onnx`);

/** Random feeds for every input; symbolic dimensions get 2 (first) and 5 (others). */
function feedsFor(model: Model, seed = 7): Record<string, ort.Tensor> {
  const r = rng(seed);
  const feeds: Record<string, ort.Tensor> = {};
  for (const input of model.graph.inputs) {
    const dims = (input.shape ?? []).map((d, i) => (typeof d === 'number' ? d : i === 0 ? 2 : 5));
    const n = dims.reduce((a, b) => a * b, 1);
    feeds[input.name] =
      input.elemType === DataType.INT64
        ? new ort.Tensor('int64', BigInt64Array.from({ length: n }, () => BigInt(Math.floor(r() * 10))), dims)
        : new ort.Tensor('float32', randomValues(r, n), dims);
  }
  return feeds;
}

async function run(model: Model, feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
  const session = await ort.InferenceSession.create(modelToBytes(model), { logSeverityLevel: 3 });
  try {
    return await session.run(feeds);
  } finally {
    await session.release();
  }
}

const bytes = (t: TensorData) => Buffer.from((t.values as Float32Array).buffer, (t.values as Float32Array).byteOffset, (t.values as Float32Array).byteLength);
const init = (m: Model, name: string) => m.graph.initializers.find((t) => t.name === name);

function assertInitBounds(t: TensorData, fanIn: number): void {
  const bound = Math.fround(1 / Math.sqrt(fanIn));
  const values = [...(t.values as Float32Array)];
  assert.ok(values.every((v) => Math.abs(v) <= bound), `${t.name}: all values within ±${bound}`);
  // Uniform over the whole range, not squeezed to zero.
  assert.ok(Math.max(...values.map(Math.abs)) > 0.5 * bound, `${t.name}: values use the range`);
}

const cases = [
  { name: 'mlp', old: ['fc2.weight', 'fc2.bias'], fanIn: 32, head: ['head.weight', 'head.bias'] },
  { name: 'cnn', old: ['fc.weight', 'fc.bias'], fanIn: 16, head: ['head.weight', 'head.bias'] },
  // The transformer's head is already called head.*: the new one must not reuse those names.
  { name: 'transformer', old: ['head.weight', 'head.bias'], fanIn: 16, head: ['head.weight_ft', 'head.bias_ft'] },
];

for (const c of cases) {
  test(`replace on the PyTorch ${c.name}: new class count, old head gone, lower layers byte-equal`, async () => {
    const model = await fixture(c.name);
    const snapshot = structuredClone(model);
    const { model: out, headParams, replaced, output } = await attachHead(model, { numClasses: 7, mode: 'replace', seed: 1 });
    assert.deepEqual(model, snapshot, 'the input model is not mutated');
    assert.equal(output, 'logits');
    assert.deepEqual(headParams, c.head);
    assert.deepEqual(replaced, c.old);
    for (const name of c.old) if (!c.head.includes(name)) assert.equal(init(out, name), undefined, `${name} removed`);

    const newNames = new Set(headParams);
    const kept = out.graph.initializers.filter((t) => !newNames.has(t.name));
    assert.deepEqual(kept.map((t) => t.name), model.graph.initializers.map((t) => t.name).filter((n) => !c.old.includes(n)));
    for (const t of kept) assert.ok(bytes(t).equals(bytes(init(model, t.name)!)), `${t.name} byte-equal`);

    const [w, b] = headParams.map((n) => init(out, n)!);
    assert.deepEqual(w!.dims, [7, c.fanIn]);
    assert.deepEqual(b!.dims, [7]);
    assertInitBounds(w!, c.fanIn);
    assertInitBounds(b!, c.fanIn);
    assert.deepEqual(out.graph.outputs[0]!.shape, ['batch', 7]);

    const result = await run(out, feedsFor(out));
    assert.deepEqual(result['logits']!.dims, [2, 7]);
    assert.ok([...(result['logits']!.data as Float32Array)].every(Number.isFinite));
  });
}

test('replace is deterministic for a seed and differs for another seed', async () => {
  const model = await fixture('mlp');
  const a = await attachHead(model, { numClasses: 4, mode: 'replace', seed: 42 });
  const b = await attachHead(model, { numClasses: 4, mode: 'replace', seed: 42 });
  const c = await attachHead(model, { numClasses: 4, mode: 'replace', seed: 43 });
  for (const name of a.headParams) {
    assert.ok(bytes(init(a.model, name)!).equals(bytes(init(b.model, name)!)), `${name}: same seed, same bytes`);
    assert.ok(!bytes(init(a.model, name)!).equals(bytes(init(c.model, name)!)), `${name}: another seed, other values`);
  }
  assert.deepEqual(modelToBytes(a.model), modelToBytes(b.model));
});

/** x[batch, 6] -> MatMul(W1[6, 8]) + b1 -> Relu -> MatMul(W2[8, 3]) + b2. */
function matMulAddModel(): Model {
  const r = rng(5);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 6]);
  const h = m.node('Relu', [m.node('Add', [m.node('MatMul', [x, m.param('l1.weight', [6, 8], randomValues(r, 48))]), m.param('l1.bias', [8], randomValues(r, 8))])]);
  m.output(m.node('Add', [m.node('MatMul', [h, m.param('l2.weight', [8, 3], randomValues(r, 24))]), m.param('l2.bias', [3], randomValues(r, 3))]));
  return m.build();
}

test('replace on a MatMul + Add head keeps the [in, out] layout and runs', async () => {
  const model = matMulAddModel();
  const layer = findClassifier(model);
  assert.equal(layer.kind, 'matmul');
  assert.deepEqual([layer.weight, layer.bias, layer.inFeatures, layer.outFeatures], ['l2.weight', 'l2.bias', 8, 3]);
  const { model: out, headParams, replaced } = await attachHead(model, { numClasses: 5, mode: 'replace', seed: 3 });
  assert.deepEqual(headParams, ['head.weight', 'head.bias']);
  assert.deepEqual(replaced, ['l2.weight', 'l2.bias']);
  assert.deepEqual(init(out, 'head.weight')!.dims, [8, 5]);
  assertInitBounds(init(out, 'head.weight')!, 8);
  assert.ok(bytes(init(out, 'l1.weight')!).equals(bytes(init(model, 'l1.weight')!)));
  const result = await run(out, feedsFor(out));
  assert.deepEqual(Object.values(result)[0]!.dims, [2, 5]);
});

test("replace on PyTorch's N-D Linear pattern Add(b, MatMul(x, Transpose(W))) and on Gemm transB=0", async () => {
  const r = rng(9);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 'seq', 4]);
  const wt = m.node('Transpose', [m.param('cls.weight', [6, 4], randomValues(r, 24))], { perm: [1, 0] });
  m.output(m.node('Add', [m.param('cls.bias', [6], randomValues(r, 6)), m.node('MatMul', [x, wt])]));
  const model = m.build();
  const { model: out, headParams, replaced } = await attachHead(model, { numClasses: 2, mode: 'replace', seed: 3 });
  assert.deepEqual(replaced, ['cls.weight', 'cls.bias']);
  assert.deepEqual(init(out, headParams[0]!)!.dims, [2, 4], 'PyTorch layout [out, in] kept');
  assert.ok(!out.graph.nodes.some((n) => n.inputs.includes('cls.weight')), 'the old Transpose is gone');
  const result = await run(out, feedsFor(out));
  assert.deepEqual(Object.values(result)[0]!.dims, [2, 5, 2]);

  const g = new ModelBuilder();
  const gx = g.input('x', ['batch', 4]);
  g.output(g.node('Gemm', [gx, g.param('w', [4, 6], randomValues(r, 24)), g.param('b', [6], randomValues(r, 6))], { transB: 0 }));
  const gemm = await attachHead(g.build(), { numClasses: 3, mode: 'replace', seed: 1 });
  assert.deepEqual(init(gemm.model, 'head.weight')!.dims, [4, 3], 'transB=0 keeps [in, out]');
  assert.deepEqual(Object.values(await run(gemm.model, feedsFor(gemm.model)))[0]!.dims, [2, 3]);
});

test('replace looks through Identity and Flatten, and keeps a weight that another layer shares', async () => {
  const r = rng(2);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 4]);
  const shared = m.param('shared', [4, 4], randomValues(r, 16));
  const h = m.node('Relu', [m.node('MatMul', [x, shared])]);
  const y = m.node('Flatten', [m.node('Identity', [m.node('Gemm', [h, shared, m.param('b', [4], randomValues(r, 4))])])], { axis: 1 });
  m.output(y);
  const model = m.build();
  model.graph.outputs[0]!.shape = ['batch', 4];
  const { model: out, replaced } = await attachHead(model, { numClasses: 9, mode: 'replace', seed: 1 });
  assert.deepEqual(replaced, ['b'], 'the shared weight stays for the MatMul');
  assert.ok(init(out, 'shared'));
  assert.deepEqual(out.graph.outputs[0]!.shape, ['batch', 9]);
  assert.deepEqual(Object.values(await run(out, feedsFor(out)))[0]!.dims, [2, 9]);
});

test('an output produced by Softmax, Relu or a Reshape is a clear UserError suggesting append', async () => {
  const r = rng(4);
  for (const after of ['Softmax', 'Relu', 'Reshape']) {
    const m = new ModelBuilder();
    const x = m.input('x', ['batch', 4]);
    const logits = m.node('Gemm', [x, m.param('w', [3, 4], randomValues(r, 12)), m.param('b', [3], randomValues(r, 3))], { transB: 1 });
    const inputs = after === 'Reshape' ? [logits, m.int64('shape', [2], [-1, 3])] : [logits];
    m.output(m.node(after, inputs));
    await assert.rejects(attachHead(m.build(), { numClasses: 2, mode: 'replace', seed: 1 }), (err: Error) => {
      assert.ok(err instanceof UserError, 'a UserError');
      assert.match(err.message, new RegExp(`${after} node`));
      assert.match(err.message, /mode 'append'/);
      assert.ok(!err.message.includes('\n'), 'one line');
      return true;
    });
  }
});

test('append adds a Gemm after the output; the original output is still computed', async () => {
  const model = await fixture('mlp');
  const { model: out, headParams, output } = await attachHead(model, { numClasses: 3, mode: 'append', seed: 5 });
  assert.equal(output, 'logits_head', "'logits' is taken");
  assert.deepEqual(headParams, ['head.weight', 'head.bias']);
  assert.deepEqual(out.graph.outputs.map((o) => [o.name, o.shape]), [['logits_head', ['batch', 3]], ['logits', ['batch', 5]]]);
  assert.deepEqual(init(out, 'head.weight')!.dims, [3, 5]);
  assertInitBounds(init(out, 'head.weight')!, 5);

  const feeds = feedsFor(model);
  const before = (await run(model, feeds))['logits']!.data as Float32Array;
  const after = await run(out, feeds);
  assert.deepEqual(after['logits']!.data, before, 'original output unchanged');
  const w = init(out, 'head.weight')!.values as Float32Array;
  const b = init(out, 'head.bias')!.values as Float32Array;
  const head = after['logits_head']!.data as Float32Array;
  for (let n = 0; n < 2; n++) {
    for (let k = 0; k < 3; k++) {
      let s = b[k]!;
      for (let c = 0; c < 5; c++) s += before[n * 5 + c]! * w[k * 5 + c]!;
      assert.ok(Math.abs(head[n * 3 + k]! - s) < 1e-5, `logits_head[${n},${k}]`);
    }
  }
});

test('append names its parameters after the new output when head.* is taken, and probes undeclared shapes', async () => {
  const transformer = await attachHead(await fixture('transformer'), { numClasses: 2, mode: 'append', seed: 1 });
  assert.deepEqual(transformer.headParams, ['logits_head.weight', 'logits_head.bias']);

  // A 3-D output without a declared shape: the feature size comes from running the model.
  const r = rng(6);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 'seq', 4]);
  m.output(m.node('MatMul', [x, m.param('proj', [4, 6], randomValues(r, 24))]));
  const model = m.build();
  const { model: out, headParams, output } = await attachHead(model, { numClasses: 3, mode: 'append', seed: 1 });
  assert.equal(output, 'logits');
  assert.deepEqual(headParams.map((n) => init(out, n)!.dims), [[3, 6], [3]]);
  assert.deepEqual(out.graph.outputs[0]!.shape, [null, null, 3], 'dynamic axes unnamed, features fixed');
  const result = await run(out, feedsFor(out));
  assert.deepEqual(result['logits']!.dims, [2, 5, 3]);
  assert.deepEqual(result[model.graph.outputs[0]!.name]!.dims, [2, 5, 6]);
});

test('training graphs with headOnly train exactly the head (replace, append, detected)', async () => {
  const replaced = await attachHead(await fixture('mlp'), { numClasses: 4, mode: 'replace', seed: 1 });
  const trainable = resolveTrainable(replaced.model, { headOnly: true }, replaced.headParams);
  assert.deepEqual(trainable, ['head.weight', 'head.bias']);
  const a = await buildTrainingArtifacts(replaced.model, { loss: 'cross_entropy', trainable: trainable! });
  assert.deepEqual(a.params.map((p) => p.name), replaced.headParams);
  assert.deepEqual(a.params.map((p) => p.dims), [[4, 32], [4]]);

  const appended = await attachHead(await fixture('transformer'), { numClasses: 2, mode: 'append', seed: 1 });
  const t = resolveTrainable(appended.model, { headOnly: true }, appended.headParams);
  const b = await buildTrainingArtifacts(appended.model, { loss: 'cross_entropy', trainable: t!, output: appended.output });
  assert.deepEqual(b.params.map((p) => p.name), ['logits_head.weight', 'logits_head.bias']);

  const cnn = await fixture('cnn');
  assert.deepEqual(resolveTrainable(cnn, { headOnly: true }), ['fc.weight', 'fc.bias'], 'detected without attaching');
});
