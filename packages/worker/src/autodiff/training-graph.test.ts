/** The engine as a whole: selection, pruning, unsupported ops, the artifact contract. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { ModelBuilder, randomValues, rng } from '../testing/model-builder.js';
import { gradCheck, nonStandardOps } from '../testing/gradcheck.js';
import { buildTrainingArtifacts } from './training-graph.js';
import { modelToBytes } from '../onnx/load.js';
import { UserError } from '../errors.js';
import { DataType } from '../onnx/types.js';

/** x → Gemm(w1) → CumSum → Gemm(w2): CumSum has no gradient rule. */
function modelWithUnsupportedOp() {
  const r = rng(1);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 4]);
  const h = m.node('Gemm', [x, m.param('w1', [4, 4], randomValues(r, 16))]);
  const c = m.node('CumSum', [h, m.int64('axis', [], [1])]);
  m.output(m.node('Gemm', [c, m.param('w2', [4, 3], randomValues(r, 12)), m.param('b2', [3], randomValues(r, 3))]));
  return m.build();
}

test('an op without a gradient rule on the path is an error naming the op, the node and the parameters that need it', async () => {
  await assert.rejects(buildTrainingArtifacts(modelWithUnsupportedOp(), { loss: 'cross_entropy' }), (err: Error) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, /op CumSum \(node 'CumSum_1'\) has no gradient rule; parameters that need it: w1\. Freeze those parameters/);
    return true;
  });
});

test('freezing the parameters below an unsupported op makes the model trainable', async () => {
  const feeds = { x: new ort.Tensor('float32', randomValues(rng(2), 8), [2, 4]) };
  const labels = new ort.Tensor('int64', BigInt64Array.from([0n, 2n]), [2]);
  const { artifacts } = await gradCheck(modelWithUnsupportedOp(), { loss: 'cross_entropy', trainable: ['w2', 'b2'], feeds, labels });
  assert.deepEqual(artifacts.params.map((p) => p.name), ['w2', 'b2']);
  assert.ok(!artifacts.training.graph.nodes.some((n) => n.opType === 'CumSum' && n.name.startsWith('grad/')));
});

test('a custom-domain op on the path is reported with its domain', async () => {
  const m = new ModelBuilder();
  const x = m.param('x', [3], [1, 2, 3]);
  const y = m.node('Relu', [x]);
  const model = m.build();
  model.graph.nodes.push({ name: 'fused', opType: 'FastGelu', domain: 'com.microsoft', inputs: [y], outputs: ['z'], attributes: {} });
  model.opsetImports.push({ domain: 'com.microsoft', version: 1 });
  model.graph.outputs = [{ name: 'z', elemType: DataType.FLOAT }];
  await assert.rejects(buildTrainingArtifacts(model, { loss: 'mse' }), /op com\.microsoft\.FastGelu \(node 'fused'\) has no gradient rule; parameters that need it: x/);
});

test('frozen branches, shape arithmetic and integer math are not differentiated', async () => {
  const r = rng(3);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 4]);
  const frozen = m.node('Tanh', [m.node('MatMul', [x, m.param('frozen.w', [4, 4], randomValues(r, 16))])]);
  // A shape computation on a trainable value: Shape → Gather → Cast, feeding a Reshape.
  const h = m.node('MatMul', [frozen, m.param('w', [4, 6], randomValues(r, 24))]);
  const batch = m.node('Gather', [m.node('Shape', [h]), m.int64('zero', [1], [0])], { axis: 0 });
  const shape = m.node('Concat', [batch, m.int64('six', [1], [6])], { axis: 0 });
  m.output(m.node('Reshape', [h, shape]));
  const artifacts = await buildTrainingArtifacts(m.build(), { loss: 'mse', trainable: ['w'] });
  const gradNodes = artifacts.training.graph.nodes.filter((n) => n.name.startsWith('grad/'));
  assert.ok(!gradNodes.some((n) => n.opType === 'Tanh'), 'nothing flows back into the frozen Tanh branch');
  assert.ok(!artifacts.training.graph.outputs.some((o) => o.name === 'frozen.w_grad'));
  assert.ok(artifacts.training.graph.initializers.some((t) => t.name === 'frozen.w'), 'frozen weights stay initializers');
  const feeds = { x: new ort.Tensor('float32', randomValues(r, 12), [3, 4]) };
  await gradCheck(m.build(), { trainable: ['w'], feeds });
});

test('a parameter that does not influence the loss is left frozen, or rejected when named', async () => {
  const r = rng(4);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 2]);
  const y = m.node('MatMul', [x, m.param('w', [2, 2], randomValues(r, 4))]);
  m.node('Add', [y, m.param('unused.b', [2], randomValues(r, 2))]); // a dead branch
  m.output(y);
  const all = await buildTrainingArtifacts(m.build(), { loss: 'mse' });
  assert.deepEqual(all.params.map((p) => p.name), ['w']);
  assert.deepEqual(all.disconnected, ['unused.b']);
  await assert.rejects(buildTrainingArtifacts(m.build(), { loss: 'mse', trainable: ['unused.b'] }), /--trainable unused\.b: does not influence the loss/);
});

test('the training graph has the documented inputs and outputs, and a frozen glob keeps the rest constant', async () => {
  const r = rng(5);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 3]);
  const h = m.node('Relu', [m.node('Gemm', [x, m.param('enc.w', [3, 5], randomValues(r, 15)), m.param('enc.b', [5], randomValues(r, 5))])]);
  m.output(m.node('Gemm', [h, m.param('head.w', [5, 2], randomValues(r, 10)), m.param('head.b', [2], randomValues(r, 2))]));
  const artifacts = await buildTrainingArtifacts(m.build(), { loss: 'cross_entropy', trainable: ['head.*'] });
  const g = artifacts.training.graph;
  assert.deepEqual(g.inputs.map((i) => i.name), ['x', 'labels', 'head.w', 'head.b']);
  assert.deepEqual(g.inputs[1]!.shape, ['labels_dim0']);
  assert.deepEqual(g.outputs.map((o) => o.name), ['loss', 'head.w_grad', 'head.b_grad']);
  assert.deepEqual(nonStandardOps(artifacts.training), []);
  assert.deepEqual(artifacts.eval.graph.outputs.map((o) => o.name), ['loss', 'gemm2_0']);
  // onnxruntime accepts every batch size with the one graph.
  const session = await ort.InferenceSession.create(modelToBytes(artifacts.training));
  for (const n of [1, 7]) {
    const out = await session.run({
      x: new ort.Tensor('float32', randomValues(r, n * 3), [n, 3]),
      labels: new ort.Tensor('int64', new BigInt64Array(n), [n]),
      'head.w': new ort.Tensor('float32', randomValues(r, 10), [5, 2]),
      'head.b': new ort.Tensor('float32', randomValues(r, 2), [2]),
    });
    assert.deepEqual(out['head.w_grad']!.dims, [5, 2]);
    assert.ok(Number.isFinite((out.loss!.data as Float32Array)[0]!));
  }
  await session.release();
});

test('models older than opset 13 and reserved names are refused clearly', async () => {
  const old = new ModelBuilder(11);
  old.output(old.node('Relu', [old.param('x', [2], [1, 2])]));
  await assert.rejects(buildTrainingArtifacts(old.build(), { loss: 'mse' }), /imports ONNX opset 11; training graphs need opset 13 or newer/);
  const clash = new ModelBuilder();
  clash.output(clash.node('Relu', [clash.param('labels', [2], [1, 2])]));
  await assert.rejects(buildTrainingArtifacts(clash.build(), { loss: 'mse' }), /already has a value named 'labels'/);
});

test('cross-entropy over a sequence of positions ([batch, seq, classes]) matches finite differences', async () => {
  const r = rng(6);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 'seq', 4]);
  m.output(m.node('MatMul', [x, m.param('w', [4, 5], randomValues(r, 20))]));
  const feeds = { x: new ort.Tensor('float32', randomValues(r, 2 * 3 * 4), [2, 3, 4]) };
  const labels = new ort.Tensor('int64', BigInt64Array.from([0n, 4n, 2n, 1n, 3n, 0n]), [2, 3]);
  await gradCheck(m.build(), { loss: 'cross_entropy', feeds, labels });
});
