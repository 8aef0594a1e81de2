/**
 * torch.optim.SGD (maximize = false), per its documented algorithm:
 *   g = grad + weight_decay * theta
 *   b = (t == 1) ? g : momentum * b + (1 - dampening) * g      (only when momentum != 0)
 *   g = nesterov ? g + momentum * b : b
 *   theta -= lr * g
 * Arithmetic runs in float64 per element; only parameters and buffers are stored as float32.
 */
import { UserError } from '../errors.js';
import type { Optimizer, OptimizerState, SgdSpec } from './optimizer.js';
import { allocate, checkStepArgs, restore, snapshot, specNumber } from './slots.js';

export class Sgd implements Optimizer {
  private readonly momentum: number;
  private readonly dampening: number;
  private readonly nesterov: boolean;
  /** Weight decay per parameter: 0 where the mask exempts it. */
  private readonly decay: Float64Array;
  /** Empty when momentum is 0: PyTorch keeps no buffer then either. */
  private readonly buffers: Float32Array[];
  private steps = 0;

  constructor(spec: SgdSpec, private readonly sizes: readonly number[], mask: readonly boolean[]) {
    this.momentum = specNumber('momentum', spec.momentum, 0, 0, 1, true);
    this.dampening = specNumber('dampening', spec.dampening, 0, 0, 1, true);
    this.nesterov = spec.nesterov ?? false;
    const wd = specNumber('weightDecay', spec.weightDecay, 0, 0, Infinity);
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) {
      throw new UserError('optimizer: nesterov momentum requires momentum > 0 and dampening = 0');
    }
    this.decay = Float64Array.from(mask, (m) => (m ? wd : 0));
    this.buffers = this.momentum !== 0 ? allocate(sizes) : [];
  }

  step(params: readonly Float32Array[], grads: readonly Float32Array[], lr: number): void {
    checkStepArgs(this.sizes, params, grads, lr);
    const mu = this.momentum;
    const keep = 1 - this.dampening;
    for (let p = 0; p < params.length; p++) {
      const theta = params[p]!;
      const g = grads[p]!;
      const wd = this.decay[p]!;
      const n = theta.length;
      if (mu === 0) {
        for (let i = 0; i < n; i++) theta[i] = theta[i]! - lr * (g[i]! + wd * theta[i]!);
        continue;
      }
      const buf = this.buffers[p]!;
      // Branches hoisted out of the element loops: first step seeds the buffer with the gradient.
      if (this.steps === 0) {
        if (this.nesterov) {
          for (let i = 0; i < n; i++) {
            const d = g[i]! + wd * theta[i]!;
            buf[i] = d;
            theta[i] = theta[i]! - lr * (d + mu * d);
          }
        } else {
          for (let i = 0; i < n; i++) {
            const d = g[i]! + wd * theta[i]!;
            buf[i] = d;
            theta[i] = theta[i]! - lr * d;
          }
        }
      } else if (this.nesterov) {
        for (let i = 0; i < n; i++) {
          const d = g[i]! + wd * theta[i]!;
          const b = mu * buf[i]! + keep * d;
          buf[i] = b;
          theta[i] = theta[i]! - lr * (d + mu * b);
        }
      } else {
        for (let i = 0; i < n; i++) {
          const d = g[i]! + wd * theta[i]!;
          const b = mu * buf[i]! + keep * d;
          buf[i] = b;
          theta[i] = theta[i]! - lr * b;
        }
      }
    }
    this.steps++;
  }

  state(): OptimizerState {
    return snapshot('sgd', this.steps, this.named(), this.sizes.length);
  }

  loadState(s: OptimizerState): void {
    this.steps = restore('sgd', s, this.named(), this.sizes);
  }

  private named(): Record<string, Float32Array[]> {
    return this.momentum !== 0 ? { momentum_buffer: this.buffers } : {};
  }
}
