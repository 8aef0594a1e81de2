import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { loadModel } from '../onnx/load.js';
import type { Model } from '../onnx/types.js';
import { ModelBuilder, randomValues, rng } from '../testing/model-builder.js';
import { buildTrainingArtifacts } from '../autodiff/training-graph.js';
import { UserError } from '../errors.js';
import { resolveTrainable } from './select.js';

const FIXTURES = fileURLToPath(new URL('../../../../test/fixtures/pytorch/', import.meta.url));
const fixture = (name: string) => loadModel(`${FIXTURES}${name}/model.onnx`);

const SA = 'encoder.self_attn';
const ALL = [
  'embed.weight',
  `${SA}.in_proj_weight`, `${SA}.in_proj_bias`, `${SA}.out_proj.weight`, `${SA}.out_proj.bias`,
  'encoder.linear1.weight', 'encoder.linear1.bias', 'encoder.linear2.weight', 'encoder.linear2.bias',
  'encoder.norm1.weight', 'encoder.norm1.bias', 'encoder.norm2.weight', 'encoder.norm2.bias',
  'head.weight', 'head.bias',
];
const except = (...frozen: string[]) => ALL.filter((n) => !frozen.includes(n));

test('freezeBelow on the transformer: by node name, parameter name and prefixes', async () => {
  const model = await fixture('transformer');
  const cases: [string, string[]][] = [
    // Node name: the out-projection Gemm; the in-projection (read before it) freezes.
    ['/encoder/self_attn/Gemm', except('embed.weight', `${SA}.in_proj_weight`, `${SA}.in_proj_bias`)],
    // Parameter name: linear2.weight is first read by linear2's Transpose.
    ['encoder.linear2.weight', ['encoder.linear2.weight', 'encoder.linear2.bias', 'encoder.norm2.weight', 'encoder.norm2.bias', 'head.weight', 'head.bias']],
    // Parameter prefix, '.'-separated.
    ['encoder.linear1', except('embed.weight', `${SA}.in_proj_weight`, `${SA}.in_proj_bias`, `${SA}.out_proj.weight`, `${SA}.out_proj.bias`, 'encoder.norm1.weight', 'encoder.norm1.bias')],
    // Parameter prefix, '_'-separated.
    [`${SA}.in_proj`, except('embed.weight')],
    // The MatMul reads linear1.weight through a Transpose placed before it: the weight still trains.
    ['/encoder/linear1/MatMul', except('embed.weight', `${SA}.in_proj_weight`, `${SA}.in_proj_bias`, `${SA}.out_proj.weight`, `${SA}.out_proj.bias`, 'encoder.norm1.weight', 'encoder.norm1.bias')],
    // Node-name prefix.
    ['/encoder/norm2', ['encoder.norm2.weight', 'encoder.norm2.bias', 'head.weight', 'head.bias']],
  ];
  for (const [x, expected] of cases) assert.deepEqual(resolveTrainable(model, { freezeBelow: x }), expected, `freezeBelow ${x}`);

  const trainable = resolveTrainable(model, { freezeBelow: 'encoder.linear2.weight' })!;
  const artifacts = await buildTrainingArtifacts(model, { loss: 'cross_entropy', trainable });
  assert.deepEqual(artifacts.params.map((p) => p.name), trainable);
  assert.deepEqual(artifacts.frozen.sort(), ALL.filter((n) => !trainable.includes(n)).sort());
});

test('freezeBelow leaves out buffers no gradient reaches (BatchNorm running statistics)', async () => {
  const model = await fixture('cnn');
  const trainable = resolveTrainable(model, { freezeBelow: 'bn1' })!;
  assert.deepEqual(trainable, ['bn1.weight', 'bn1.bias', 'dw.weight', 'dw.bias', 'pw.weight', 'pw.bias', 'fc.weight', 'fc.bias']);
  const artifacts = await buildTrainingArtifacts(model, { loss: 'cross_entropy', trainable });
  assert.deepEqual(artifacts.params.map((p) => p.name), trainable);
});

test('freezeBelow with an unknown name, or one past every parameter, is a UserError', async () => {
  const model = await fixture('transformer');
  assert.throws(() => resolveTrainable(model, { freezeBelow: 'encoder.linear9' }), (err: Error) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, /freezeBelow 'encoder\.linear9': no node, parameter or parameter prefix/);
    assert.match(err.message, /nodes include: \/embed\/Gather/);
    assert.match(err.message, /parameter prefixes include: .*encoder\.linear1/);
    return true;
  });
  // 'encoder.lin' is not a whole name component.
  assert.throws(() => resolveTrainable(model, { freezeBelow: 'encoder.lin' }), UserError);

  const r = rng(1);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 4]);
  m.output(m.node('Softmax', [m.node('Gemm', [x, m.param('w', [3, 4], randomValues(r, 12))], { transB: 1 })]));
  assert.throws(() => resolveTrainable(m.build(), { freezeBelow: 'Softmax_1' }), /freezeBelow 'Softmax_1': .*nothing would train/);
});

test('patterns pass through; a new head always trains; no spec means every parameter', async () => {
  const model: Model = await fixture('mlp');
  assert.equal(resolveTrainable(model, undefined), undefined);
  assert.equal(resolveTrainable(model, {}), undefined);
  assert.deepEqual(resolveTrainable(model, { patterns: ['fc1.*'] }), ['fc1.*']);
  assert.deepEqual(resolveTrainable(model, { patterns: ['fc1.*'] }, ['head.weight', 'head.bias']), ['fc1.*', 'head.weight', 'head.bias']);
  assert.deepEqual(resolveTrainable(model, { headOnly: true }), ['fc2.weight', 'fc2.bias']);
  assert.deepEqual(resolveTrainable(model, { freezeBelow: 'norm' }), ['norm.weight', 'norm.bias', 'fc2.weight', 'fc2.bias']);
});

test('headOnly on a model without a recognizable head explains why', () => {
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 4]);
  m.output(m.node('Relu', [m.node('Mul', [x, m.param('scale', [4], [1, 2, 3, 4])])]));
  assert.throws(() => resolveTrainable(m.build(), { headOnly: true }), /headOnly: .*Relu node 'Relu_1'/);
});
