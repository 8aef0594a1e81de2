import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rng, randomValues } from '../testing/model-builder.js';
import { assertClose } from './test-support.js';
import { createOptimizer, type SgdSpec } from './optimizer.js';


/**
 * torch.optim.SGD's documented algorithm, written out in float64:
 *   g <- g + lambda * theta;  b <- (t = 1) ? g : mu * b + (1 - tau) * g;
 *   g <- nesterov ? g + mu * b : b;  theta <- theta - gamma * g
 */
function sgdReference(theta0: ArrayLike<number>, grads: ArrayLike<number>[], lrs: number[], spec: SgdSpec, decays = true): number[] {
  const mu = spec.momentum ?? 0;
  const tau = spec.dampening ?? 0;
  const lambda = decays ? (spec.weightDecay ?? 0) : 0;
  const theta = Array.from(theta0);
  let b: number[] | undefined;
  for (let t = 0; t < lrs.length; t++) {
    let g = Array.from(grads[t]!, (gi, i) => gi + lambda * theta[i]!);
    if (mu !== 0) {
      const prev = b;
      b = prev === undefined ? [...g] : prev.map((bi, i) => mu * bi + (1 - tau) * g[i]!);
      const buf = b;
      g = spec.nesterov ? g.map((gi, i) => gi + mu * buf[i]!) : buf;
    }
    for (let i = 0; i < theta.length; i++) theta[i] = theta[i]! - lrs[t]! * g[i]!;
  }
  return theta;
}

/** Runs the implementation on `sizes`-shaped parameters with a fixed gradient sequence. */
function runCase(spec: SgdSpec, lrs: number[], decayMask?: boolean[], seed = 1) {
  const r = rng(seed);
  const sizes = [7, 3];
  const init = sizes.map((n) => randomValues(r, n));
  const grads = lrs.map(() => sizes.map((n) => randomValues(r, n, -2, 2)));
  const params = init.map((p) => p.slice());
  const opt = createOptimizer(spec, sizes, decayMask);
  for (let t = 0; t < lrs.length; t++) opt.step(params, grads[t]!, lrs[t]!);
  return { sizes, init, grads, params };
}

const lrs = [0.1, 0.05, 0.2, 0.1, 0.07];

const cases: [string, SgdSpec][] = [
  ['plain', { type: 'sgd' }],
  ['weight decay', { type: 'sgd', weightDecay: 0.3 }],
  ['momentum', { type: 'sgd', momentum: 0.9 }],
  ['momentum with dampening and weight decay', { type: 'sgd', momentum: 0.8, dampening: 0.25, weightDecay: 0.1 }],
  ['nesterov', { type: 'sgd', momentum: 0.9, nesterov: true }],
  ['nesterov with weight decay', { type: 'sgd', momentum: 0.7, nesterov: true, weightDecay: 0.2 }],
];

for (const [label, spec] of cases) {
  test(`SGD (${label}) matches the PyTorch algorithm over 5 steps with varying LR`, () => {
    const { init, grads, params } = runCase(spec, lrs);
    for (let p = 0; p < init.length; p++) {
      const expected = sgdReference(init[p]!, grads.map((g) => g[p]!), lrs, spec);
      assertClose(params[p]!, expected, `param ${p}`);
    }
  });
}

test('SGD decayMask exempts masked parameters from weight decay only', () => {
  const spec: SgdSpec = { type: 'sgd', momentum: 0.9, weightDecay: 0.5 };
  const { init, grads, params } = runCase(spec, lrs, [true, false]);
  assertClose(params[0]!, sgdReference(init[0]!, grads.map((g) => g[0]!), lrs, spec, true), 'decayed param');
  assertClose(params[1]!, sgdReference(init[1]!, grads.map((g) => g[1]!), lrs, spec, false), 'exempt param');
  // The exemption must make a visible difference, or this test could not fail.
  const decayed = sgdReference(init[1]!, grads.map((g) => g[1]!), lrs, spec, true);
  assert.ok(Math.abs(decayed[0]! - params[1]![0]!) > 1e-3);
});

test('SGD rejects invalid specs and mismatched arguments', () => {
  assert.throws(() => createOptimizer({ type: 'sgd', nesterov: true }, [2]), /nesterov/);
  assert.throws(() => createOptimizer({ type: 'sgd', momentum: 0.9, dampening: 0.1, nesterov: true }, [2]), /nesterov/);
  assert.throws(() => createOptimizer({ type: 'sgd', momentum: -0.1 }, [2]), /momentum/);
  assert.throws(() => createOptimizer({ type: 'sgd', weightDecay: Number.NaN }, [2]), /weightDecay/);
  assert.throws(() => createOptimizer({ type: 'sgd' }, [2, 3], [true]), /decayMask/);
  assert.throws(() => createOptimizer({ type: 'rmsprop' } as never, [2]), /unknown type/);
  const opt = createOptimizer({ type: 'sgd' }, [2]);
  assert.throws(() => opt.step([new Float32Array(3)], [new Float32Array(3)], 0.1), /expects 2/);
  assert.throws(() => opt.step([new Float32Array(2)], [], 0.1), /expected 1/);
  assert.throws(() => opt.step([new Float32Array(2)], [new Float32Array(2)], Number.NaN), /learning rate/);
});
