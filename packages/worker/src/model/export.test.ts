import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { modelToBytes } from '../onnx/load.js';
import { decodeModel } from '../onnx/codec.js';
import type { Model } from '../onnx/types.js';
import { ModelBuilder } from '../testing/model-builder.js';
import { UserError } from '../errors.js';
import { setMetadata, withParameters } from './export.js';

/** y = x @ W + b with x [1, 2], W [2, 2], b [2]. */
function linear(): Model {
  const m = new ModelBuilder();
  const x = m.input('x', [1, 2]);
  m.output(m.node('Add', [m.node('MatMul', [x, m.param('W', [2, 2], [1, 0, 0, 1])]), m.param('b', [2], [0, 0])]));
  return m.build();
}

async function run(model: Model): Promise<number[]> {
  const session = await ort.InferenceSession.create(modelToBytes(model));
  try {
    const out = await session.run({ x: new ort.Tensor('float32', Float32Array.from([3, 5]), [1, 2]) });
    return [...(Object.values(out)[0]!.data as Float32Array)];
  } finally {
    await session.release();
  }
}

test('withParameters: onnxruntime computes with the new values; the input model and the caller buffers stay separate', async () => {
  const model = linear();
  assert.deepEqual(await run(model), [3, 5]);
  const w = Float32Array.from([0, 1, 2, 0]);
  const b = Float32Array.from([10, 20]);
  const updated = withParameters(model, new Map([['W', w], ['b', b]]));
  // [3, 5] @ [[0, 1], [2, 0]] + [10, 20] = [20, 23]
  assert.deepEqual(await run(updated), [20, 23]);
  assert.deepEqual(await run(model), [3, 5], 'the original is unchanged');
  w.fill(0);
  assert.deepEqual(await run(updated), [20, 23], 'values were copied');
  assert.deepEqual(await run(withParameters(model, new Map([['b', Float32Array.from([1, 1])]]))), [4, 6], 'a subset is fine');
});

test('withParameters: a wrong length or an unknown name is an Error naming the parameter', () => {
  const model = linear();
  assert.throws(() => withParameters(model, new Map([['W', new Float32Array(3)]])), (err: Error) => {
    assert.ok(!(err instanceof UserError), 'a caller bug, not a user error');
    assert.match(err.message, /parameter 'W' has shape \[2, 2\] \(4 values\), got 3 values/);
    return true;
  });
  assert.throws(() => withParameters(model, new Map([['nope', new Float32Array(1)]])), /no initializer 'nope'/);
});

test('setMetadata adds entries without touching the input, and they survive serialization', () => {
  const model = setMetadata(linear(), { base: 'keep' });
  const tagged = setMetadata(model, { 'finetune.job': 'demo', base: 'replaced' });
  assert.deepEqual(model.metadata, { base: 'keep' });
  assert.deepEqual(decodeModel(modelToBytes(tagged)).metadata, { base: 'replaced', 'finetune.job': 'demo' });
});
