import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rng, randomValues } from '../testing/model-builder.js';
import { createOptimizer, type OptimizerSpec, type OptimizerState } from './optimizer.js';

function bytes(a: Float32Array): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** What a checkpoint does: raw bytes out, fresh Float32Arrays in; nothing shared with the optimizer. */
function serializeRoundTrip(s: OptimizerState): OptimizerState {
  const json = JSON.stringify({
    type: s.type,
    step: s.step,
    slots: s.slots.map((rec) => Object.fromEntries(Object.entries(rec).map(([k, v]) => [k, bytes(v).toString('base64')]))),
  });
  const parsed = JSON.parse(json) as { type: OptimizerState['type']; step: number; slots: Record<string, string>[] };
  return {
    ...parsed,
    slots: parsed.slots.map((rec) =>
      Object.fromEntries(
        Object.entries(rec).map(([k, b64]) => {
          const buf = Buffer.from(b64, 'base64');
          return [k, new Float32Array(buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength))];
        }),
      ),
    ),
  };
}

const specs: OptimizerSpec[] = [
  { type: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 0.1 },
  { type: 'sgd', weightDecay: 0.1 },
  { type: 'adamw', weightDecay: 0.05 },
];

for (const spec of specs) {
  test(`${JSON.stringify(spec)}: resuming from a saved state is bit-identical to an uninterrupted run`, () => {
    const r = rng(11);
    const sizes = [9, 4, 1];
    const init = sizes.map((n) => randomValues(r, n));
    const grads = Array.from({ length: 8 }, () => sizes.map((n) => randomValues(r, n, -3, 3)));
    const lrAt = (t: number) => 0.05 + 0.01 * t;
    const mask = [true, false, true];

    const straight = init.map((p) => p.slice());
    const a = createOptimizer(spec, sizes, mask);
    for (let t = 0; t < 8; t++) a.step(straight, grads[t]!, lrAt(t));

    const resumed = init.map((p) => p.slice());
    const b = createOptimizer(spec, sizes, mask);
    for (let t = 0; t < 4; t++) b.step(resumed, grads[t]!, lrAt(t));
    const saved = serializeRoundTrip(b.state());
    const c = createOptimizer(spec, sizes, mask);
    c.loadState(saved);
    for (let t = 4; t < 8; t++) c.step(resumed, grads[t]!, lrAt(t));

    for (let p = 0; p < sizes.length; p++) assert.ok(bytes(resumed[p]!).equals(bytes(straight[p]!)), `param ${p} differs`);
    assert.deepEqual(c.state(), a.state());
  });
}

test('state() is a detached copy and has the documented shape', () => {
  const opt = createOptimizer({ type: 'adamw' }, [2, 3]);
  const params = [Float32Array.of(1, 2), Float32Array.of(3, 4, 5)];
  opt.step(params, [Float32Array.of(1, 1), Float32Array.of(1, 1, 1)], 0.1);
  const s = opt.state();
  assert.equal(s.type, 'adamw');
  assert.equal(s.step, 1);
  assert.deepEqual(s.slots.map((r) => Object.keys(r).sort()), [['exp_avg', 'exp_avg_sq'], ['exp_avg', 'exp_avg_sq']]);
  assert.ok(Math.abs(s.slots[0]!.exp_avg![0]! - 0.1) < 1e-7);
  const before = s.slots[0]!.exp_avg!.slice();
  opt.step(params, [Float32Array.of(1, 1), Float32Array.of(1, 1, 1)], 0.1);
  assert.deepEqual(s.slots[0]!.exp_avg, before);
  assert.equal(s.step, 1);

  const sgd = createOptimizer({ type: 'sgd', momentum: 0.5 }, [2]);
  assert.deepEqual(Object.keys(sgd.state().slots[0]!), ['momentum_buffer']);
  assert.deepEqual(createOptimizer({ type: 'sgd' }, [2]).state().slots, [{}]);
});

test('loadState rejects a foreign or mis-shaped state and leaves the optimizer unchanged', () => {
  const opt = createOptimizer({ type: 'adamw' }, [2]);
  const params = [Float32Array.of(1, 2)];
  opt.step(params, [Float32Array.of(1, -1)], 0.1);
  const good = opt.state();
  assert.throws(() => opt.loadState({ ...good, type: 'sgd' }), /written by 'sgd'/);
  assert.throws(() => opt.loadState({ ...good, step: -1 }), /step/);
  assert.throws(() => opt.loadState({ ...good, slots: [] }), /1 parameters|0 parameters/);
  assert.throws(() => opt.loadState({ ...good, slots: [{ exp_avg: new Float32Array(2), exp_avg_sq: new Float32Array(3) }] }), /Float32Array of 2/);
  assert.throws(() => opt.loadState({ ...good, slots: [{ exp_avg: new Float32Array(2) }] }), /slots/);
  assert.deepEqual(opt.state(), good);
});
