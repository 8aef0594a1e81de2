import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rng, randomValues } from '../testing/model-builder.js';
import { assertClose } from './test-support.js';
import { createOptimizer, type AdamWSpec } from './optimizer.js';


/**
 * torch.optim.AdamW's documented algorithm (amsgrad off), in float64, at t = 1, 2, ...:
 *   theta <- theta - gamma * lambda * theta
 *   m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2
 *   m_hat = m / (1 - beta1^t);  v_hat = v / (1 - beta2^t)
 *   theta <- theta - gamma * m_hat / (sqrt(v_hat) + eps)
 */
function adamwReference(theta0: ArrayLike<number>, grads: ArrayLike<number>[], lrs: number[], spec: AdamWSpec, decays = true): number[] {
  const beta1 = spec.beta1 ?? 0.9;
  const beta2 = spec.beta2 ?? 0.999;
  const eps = spec.eps ?? 1e-8;
  const lambda = decays ? (spec.weightDecay ?? 0.01) : 0;
  const theta = Array.from(theta0);
  const m = theta.map(() => 0);
  const v = theta.map(() => 0);
  for (let k = 0; k < lrs.length; k++) {
    const t = k + 1;
    const gamma = lrs[k]!;
    const g = grads[k]!;
    for (let i = 0; i < theta.length; i++) {
      theta[i] = theta[i]! - gamma * lambda * theta[i]!;
      m[i] = beta1 * m[i]! + (1 - beta1) * g[i]!;
      v[i] = beta2 * v[i]! + (1 - beta2) * g[i]! * g[i]!;
      const mHat = m[i]! / (1 - beta1 ** t);
      const vHat = v[i]! / (1 - beta2 ** t);
      theta[i] = theta[i]! - (gamma * mHat) / (Math.sqrt(vHat) + eps);
    }
  }
  return theta;
}

function runCase(spec: AdamWSpec, lrs: number[], decayMask?: boolean[], gradScale = 2, seed = 3) {
  const r = rng(seed);
  const sizes = [6, 4];
  const init = sizes.map((n) => randomValues(r, n));
  const grads = lrs.map(() => sizes.map((n) => randomValues(r, n, -gradScale, gradScale)));
  const params = init.map((p) => p.slice());
  const opt = createOptimizer(spec, sizes, decayMask);
  for (let t = 0; t < lrs.length; t++) opt.step(params, grads[t]!, lrs[t]!);
  return { init, grads, params };
}

const lrs = [0.1, 0.05, 0.2, 0.1];

const cases: [string, AdamWSpec, number][] = [
  ['defaults', { type: 'adamw' }, 2],
  ['strong weight decay', { type: 'adamw', weightDecay: 0.5 }, 2],
  ['custom betas', { type: 'adamw', beta1: 0.8, beta2: 0.95, weightDecay: 0.1 }, 2],
  // Gradients ~1e-4 with eps 1e-3: eps dominates the denominator, so where it sits is visible.
  ['eps outside the square root', { type: 'adamw', eps: 1e-3, weightDecay: 0 }, 1e-4],
];

for (const [label, spec, gradScale] of cases) {
  test(`AdamW (${label}) matches the PyTorch algorithm over 4 steps with varying LR`, () => {
    const { init, grads, params } = runCase(spec, lrs, undefined, gradScale);
    for (let p = 0; p < init.length; p++) {
      assertClose(params[p]!, adamwReference(init[p]!, grads.map((g) => g[p]!), lrs, spec), `param ${p}`);
    }
  });
}

test('AdamW decayMask exempts masked parameters from decoupled weight decay', () => {
  const spec: AdamWSpec = { type: 'adamw', weightDecay: 0.5 };
  const { init, grads, params } = runCase(spec, lrs, [false, true]);
  assertClose(params[0]!, adamwReference(init[0]!, grads.map((g) => g[0]!), lrs, spec, false), 'exempt param');
  assertClose(params[1]!, adamwReference(init[1]!, grads.map((g) => g[1]!), lrs, spec, true), 'decayed param');
  const decayed = adamwReference(init[0]!, grads.map((g) => g[0]!), lrs, spec, true);
  assert.ok(Math.abs(decayed[0]! - params[0]![0]!) > 1e-4);
});

test('AdamW first step moves each parameter by lr against the gradient sign (bias correction)', () => {
  // With m_hat = g and v_hat = g^2 at t = 1, the update is lr * g / (|g| + eps).
  const opt = createOptimizer({ type: 'adamw', weightDecay: 0 }, [3]);
  const theta = Float32Array.of(1, -1, 0.5);
  opt.step([theta], [Float32Array.of(0.3, -7, 1e-3)], 0.01);
  assertClose(theta, [0.99, -0.99, 0.5 - 0.01 * (1e-3 / (1e-3 + 1e-8))], 'theta');
});

test('AdamW rejects invalid specs', () => {
  assert.throws(() => createOptimizer({ type: 'adamw', beta1: 1 }, [2]), /beta1/);
  assert.throws(() => createOptimizer({ type: 'adamw', beta2: -0.5 }, [2]), /beta2/);
  assert.throws(() => createOptimizer({ type: 'adamw', eps: -1 }, [2]), /eps/);
  assert.throws(() => createOptimizer({ type: 'adamw' }, [2.5]), /invalid size/);
});
