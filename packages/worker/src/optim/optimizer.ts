/**
 * The optimizer contract and its factory. Optimizers update Float32Array parameters in place from
 * Float32Array gradients (the training graph's outputs), so the update costs no session round trip
 * and no allocation per step. Their state is plain data so checkpoints can serialize it.
 */
import { UserError } from '../errors.js';
import { AdamW } from './adamw.js';
import { Sgd } from './sgd.js';

/** torch.optim.SGD: `weightDecay` is L2 (added to the gradient), not decoupled. */
export interface SgdSpec {
  type: 'sgd';
  /** Default 0 (no momentum buffer is kept). */
  momentum?: number;
  /** Default 0; must be 0 with nesterov, as in PyTorch. */
  dampening?: number;
  /** Default false; needs momentum > 0. */
  nesterov?: boolean;
  /** Default 0. */
  weightDecay?: number;
}

/** torch.optim.AdamW (amsgrad = false): decoupled weight decay, bias-corrected moments. */
export interface AdamWSpec {
  type: 'adamw';
  /** Default 0.9. */
  beta1?: number;
  /** Default 0.999. */
  beta2?: number;
  /** Default 1e-8, added after the square root as in PyTorch. */
  eps?: number;
  /** Default 0.01 (PyTorch's AdamW default). */
  weightDecay?: number;
}

export type OptimizerSpec = SgdSpec | AdamWSpec;
export type OptimizerType = OptimizerSpec['type'];

/**
 * Everything an optimizer needs to continue a run bit-identically. Plain data (numbers, strings,
 * Float32Arrays), so a checkpoint can write each slot as a raw tensor.
 *
 * - `type`: the algorithm that wrote it; loadState refuses another type.
 * - `step`: updates taken so far. AdamW's bias corrections use it (t = step + 1 on the next
 *   update); SGD uses `step === 0` to know its momentum buffers are not yet initialised.
 * - `slots[i]`: one record per parameter, in the factory's order, slot name -> Float32Array with
 *   the parameter's length. Names follow PyTorch's optimizer state_dict:
 *   SGD `{ momentum_buffer }` when momentum > 0, else `{}`; AdamW `{ exp_avg, exp_avg_sq }`.
 */
export interface OptimizerState {
  type: OptimizerType;
  step: number;
  slots: Record<string, Float32Array>[];
}

export interface Optimizer {
  /** Updates every `params[i]` in place from `grads[i]` at learning rate `lr`. */
  step(params: readonly Float32Array[], grads: readonly Float32Array[], lr: number): void;
  /** A copy of the state: later steps do not change it. */
  state(): OptimizerState;
  /** Replaces the state with a copy of `s` (same type, parameter count and sizes). */
  loadState(s: OptimizerState): void;
}

/**
 * Builds an optimizer for parameters of the given element counts.
 * `decayMask[i] === false` exempts parameter i from weight decay (biases, norm weights), like a
 * PyTorch parameter group with weight_decay = 0; absent means every parameter decays.
 */
export function createOptimizer(spec: OptimizerSpec, paramSizes: readonly number[], decayMask?: readonly boolean[]): Optimizer {
  for (const [i, n] of paramSizes.entries()) {
    if (!Number.isInteger(n) || n < 0) throw new UserError(`optimizer: parameter ${i} has invalid size ${n}`);
  }
  if (decayMask !== undefined && decayMask.length !== paramSizes.length) {
    throw new UserError(`optimizer: decayMask has ${decayMask.length} entries for ${paramSizes.length} parameters`);
  }
  // Copies: the optimizer must not change shape if the caller later edits its arrays.
  const sizes = [...paramSizes];
  const mask = decayMask ? [...decayMask] : sizes.map(() => true);
  switch (spec.type) {
    case 'sgd':
      return new Sgd(spec, sizes, mask);
    case 'adamw':
      return new AdamW(spec, sizes, mask);
    default:
      throw new UserError(`optimizer: unknown type '${(spec as { type: unknown }).type}' (expected sgd or adamw)`);
  }
}
