/**
 * Whole models exported by PyTorch's torch.onnx.export (opset 17, eval mode): the training graph's
 * loss and gradients must match PyTorch autograd. The fixtures and the script that makes them live
 * in test/fixtures/pytorch and examples/pytorch.
 *
 * Tolerance: both sides compute in float32 with different operation orders, so each gradient
 * tensor must agree within 1e-4 of its largest magnitude (plus 1e-7 absolute), and the loss within
 * 1e-5 relative.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { loadModel, modelToBytes } from '../onnx/load.js';
import { buildTrainingArtifacts, gradName, LABELS_INPUT, LOSS_OUTPUT } from './training-graph.js';
import { nonStandardOps } from '../testing/gradcheck.js';
import type { LossKind } from './loss.js';

const FIXTURES = fileURLToPath(new URL('../../../../test/fixtures/pytorch/', import.meta.url));

interface Stored {
  dtype?: string;
  dims: number[];
  data: number[];
}

interface Reference {
  loss: LossKind;
  output: string;
  inputs: Record<string, Stored>;
  labels: Stored;
  expected: { loss: number; logits: Stored; grads: Record<string, Stored> };
  frozen: string[];
}

function tensor(s: Stored): ort.Tensor {
  return s.dtype === 'int64'
    ? new ort.Tensor('int64', BigInt64Array.from(s.data.map((v) => BigInt(v))), s.dims)
    : new ort.Tensor('float32', Float32Array.from(s.data), s.dims);
}

function assertClose(actual: ArrayLike<number>, expected: number[], what: string, rel = 1e-4): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  const scale = Math.max(...expected.map(Math.abs));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) worst = Math.max(worst, Math.abs(actual[i]! - expected[i]!));
  assert.ok(worst <= rel * scale + 1e-7, `${what}: max abs diff ${worst.toExponential(3)} > ${rel} x scale ${scale.toExponential(3)}`);
}

for (const name of ['mlp', 'mlp_mse', 'cnn', 'transformer']) {
  test(`${name}: loss and every gradient match PyTorch autograd`, async () => {
    const ref = JSON.parse(readFileSync(`${FIXTURES}${name}/reference.json`, 'utf8')) as Reference;
    const model = await loadModel(`${FIXTURES}${name}/model.onnx`);
    const artifacts = await buildTrainingArtifacts(model, { loss: ref.loss, output: ref.output });

    assert.deepEqual(nonStandardOps(artifacts.training), [], 'training graph uses only ai.onnx ops');
    assert.deepEqual(artifacts.params.map((p) => p.name).sort(), Object.keys(ref.expected.grads).sort());
    for (const frozen of ref.frozen) assert.ok(artifacts.frozen.includes(frozen), `${frozen} stays frozen`);

    const feeds: Record<string, ort.Tensor> = { [LABELS_INPUT]: tensor(ref.labels) };
    for (const [input, stored] of Object.entries(ref.inputs)) feeds[input] = tensor(stored);
    const inits = new Map(model.graph.initializers.map((t) => [t.name, t]));
    for (const p of artifacts.params) feeds[p.name] = new ort.Tensor('float32', inits.get(p.name)!.values as Float32Array, p.dims);

    const training = await ort.InferenceSession.create(modelToBytes(artifacts.training));
    const out = await training.run(feeds);
    await training.release();
    const loss = (out[LOSS_OUTPUT]!.data as Float32Array)[0]!;
    assert.ok(Math.abs(loss - ref.expected.loss) <= 1e-5 * Math.abs(ref.expected.loss), `loss ${loss} vs PyTorch ${ref.expected.loss}`);
    for (const [param, expected] of Object.entries(ref.expected.grads)) {
      const grad = out[gradName(param)]!;
      assert.deepEqual(grad.dims, expected.dims, `${param} gradient shape`);
      assertClose(grad.data as Float32Array, expected.data, `${param} gradient`);
    }

    const evaluation = await ort.InferenceSession.create(modelToBytes(artifacts.eval));
    const evalOut = await evaluation.run(feeds);
    await evaluation.release();
    assertClose(evalOut[ref.output]!.data as Float32Array, ref.expected.logits.data, 'eval logits', 1e-5);
    assert.ok(Math.abs((evalOut[LOSS_OUTPUT]!.data as Float32Array)[0]! - loss) <= 1e-6 * Math.abs(loss), 'eval loss equals training loss');
  });
}

test('freezing the lower layers: only the head gets gradients, and they equal the full graph\'s', async () => {
  const ref = JSON.parse(readFileSync(`${FIXTURES}transformer/reference.json`, 'utf8')) as Reference;
  const model = await loadModel(`${FIXTURES}transformer/model.onnx`);
  const artifacts = await buildTrainingArtifacts(model, { loss: ref.loss, trainable: ['head.*'] });
  assert.deepEqual(artifacts.params.map((p) => p.name), ['head.weight', 'head.bias']);
  assert.ok(artifacts.frozen.includes('embed.weight'));
  // No gradient work below the head: the backward pass must not touch the encoder's weights.
  const gradNodes = artifacts.training.graph.nodes.filter((n) => n.name.startsWith('grad/'));
  assert.ok(gradNodes.length > 0 && gradNodes.length < 12, `head-only backward has ${gradNodes.length} nodes`);
  const feeds: Record<string, ort.Tensor> = { [LABELS_INPUT]: tensor(ref.labels), tokens: tensor(ref.inputs.tokens!) };
  const inits = new Map(model.graph.initializers.map((t) => [t.name, t]));
  for (const p of artifacts.params) feeds[p.name] = new ort.Tensor('float32', inits.get(p.name)!.values as Float32Array, p.dims);
  const session = await ort.InferenceSession.create(modelToBytes(artifacts.training));
  const out = await session.run(feeds);
  await session.release();
  assertClose(out[gradName('head.weight')]!.data as Float32Array, ref.expected.grads['head.weight']!.data, 'head.weight gradient');
});
