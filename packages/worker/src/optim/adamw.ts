/**
 * torch.optim.AdamW (amsgrad = false, maximize = false), per its documented algorithm, at step t:
 *   theta *= 1 - lr * weight_decay                       (decoupled decay, before the moments)
 *   m = beta1 * m + (1 - beta1) * g
 *   v = beta2 * v + (1 - beta2) * g^2
 *   theta -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + eps)
 * Arithmetic runs in float64 per element; only parameters and moments are stored as float32.
 */
import type { AdamWSpec, Optimizer, OptimizerState } from './optimizer.js';
import { allocate, checkStepArgs, restore, snapshot, specNumber } from './slots.js';

export class AdamW implements Optimizer {
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  /** Weight decay per parameter: 0 where the mask exempts it. */
  private readonly decay: Float64Array;
  private readonly m: Float32Array[];
  private readonly v: Float32Array[];
  private steps = 0;

  constructor(spec: AdamWSpec, private readonly sizes: readonly number[], mask: readonly boolean[]) {
    this.beta1 = specNumber('beta1', spec.beta1, 0.9, 0, 1);
    this.beta2 = specNumber('beta2', spec.beta2, 0.999, 0, 1);
    this.eps = specNumber('eps', spec.eps, 1e-8, 0, Infinity);
    const wd = specNumber('weightDecay', spec.weightDecay, 0.01, 0, Infinity);
    this.decay = Float64Array.from(mask, (m) => (m ? wd : 0));
    this.m = allocate(sizes);
    this.v = allocate(sizes);
  }

  step(params: readonly Float32Array[], grads: readonly Float32Array[], lr: number): void {
    checkStepArgs(this.sizes, params, grads, lr);
    const t = this.steps + 1;
    const b1 = this.beta1;
    const b2 = this.beta2;
    const a1 = 1 - b1;
    const a2 = 1 - b2;
    const eps = this.eps;
    // Bias corrections are per step, not per element: fold them into two scalars.
    const stepSize = lr / (1 - Math.pow(b1, t));
    const invSqrtBc2 = 1 / Math.sqrt(1 - Math.pow(b2, t));
    for (let p = 0; p < params.length; p++) {
      const theta = params[p]!;
      const g = grads[p]!;
      const m = this.m[p]!;
      const v = this.v[p]!;
      const keep = 1 - lr * this.decay[p]!;
      const n = theta.length;
      for (let i = 0; i < n; i++) {
        const gi = g[i]!;
        const mi = b1 * m[i]! + a1 * gi;
        const vi = b2 * v[i]! + a2 * gi * gi;
        m[i] = mi;
        v[i] = vi;
        theta[i] = theta[i]! * keep - (stepSize * mi) / (Math.sqrt(vi) * invSqrtBc2 + eps);
      }
    }
    this.steps = t;
  }

  state(): OptimizerState {
    return snapshot('adamw', this.steps, { exp_avg: this.m, exp_avg_sq: this.v }, this.sizes.length);
  }

  loadState(s: OptimizerState): void {
    this.steps = restore('adamw', s, { exp_avg: this.m, exp_avg_sq: this.v }, this.sizes);
  }
}
