/**
 * Learning-rate schedules, defined exactly as Hugging Face transformers' lr_lambda functions so a
 * run configured like a transformers Trainer run gets the same LR sequence:
 *   constant: get_constant_schedule
 *   linear:   get_linear_schedule_with_warmup
 *   cosine:   get_cosine_schedule_with_warmup (num_cycles = 0.5), or with minLrRatio,
 *             get_cosine_with_min_lr_schedule_with_warmup (min_lr_rate)
 * `step` is 0-based and the LR for step s drives the update of step s (transformers calls
 * scheduler.step() after optimizer.step(), so update s sees lr_lambda(s)). Hence with warmup the
 * first update has LR 0, as in transformers.
 */
import { UserError } from '../errors.js';

export type ScheduleSpec =
  | { type: 'constant' }
  /** Linear warmup 0 -> base over warmupSteps, then linear decay to 0 at totalSteps. */
  | { type: 'linear'; warmupSteps: number }
  /** Linear warmup 0 -> base over warmupSteps, then half a cosine to base * minLrRatio (default 0) at totalSteps. */
  | { type: 'cosine'; warmupSteps: number; minLrRatio?: number };

/** The multiplier of the base LR at `step` (transformers' lr_lambda). */
export function lrMultiplier(step: number, spec: ScheduleSpec, totalSteps: number): number {
  if (!Number.isInteger(step) || step < 0) throw new Error(`schedule: step must be a non-negative integer, got ${step}`);
  if (spec.type === 'constant') return 1;
  if (spec.type !== 'linear' && spec.type !== 'cosine') {
    throw new UserError(`schedule: unknown type '${(spec as { type: unknown }).type}' (expected constant, linear or cosine)`);
  }
  if (!Number.isInteger(totalSteps) || totalSteps < 1) throw new UserError(`schedule: totalSteps must be a positive integer, got ${totalSteps}`);
  const warmup = spec.warmupSteps;
  if (!Number.isInteger(warmup) || warmup < 0 || warmup > totalSteps) {
    throw new UserError(`schedule: warmupSteps must be an integer in [0, totalSteps = ${totalSteps}], got ${warmup}`);
  }
  const minRatio = spec.type === 'cosine' ? (spec.minLrRatio ?? 0) : 0;
  if (!(minRatio >= 0 && minRatio <= 1)) throw new UserError(`schedule: minLrRatio must be in [0, 1], got ${minRatio}`);
  // max(1, .) keeps warmupSteps = 0 and warmupSteps = totalSteps free of division by zero, as in transformers.
  if (step < warmup) return step / Math.max(1, warmup);
  const decaySteps = Math.max(1, totalSteps - warmup);
  switch (spec.type) {
    case 'linear':
      return Math.max(0, (totalSteps - step) / decaySteps);
    case 'cosine': {
      // Clamped at 1: transformers' cosine would rise again past totalSteps; we hold the minimum.
      const progress = Math.min(1, (step - warmup) / decaySteps);
      const cosine = 0.5 * (1 + Math.cos(Math.PI * progress));
      return Math.max(0, cosine * (1 - minRatio) + minRatio);
    }
  }
}

/** The learning rate for the update of (0-based) `step`: baseLr * lrMultiplier(step, spec, totalSteps). */
export function learningRateAt(step: number, spec: ScheduleSpec, totalSteps: number, baseLr: number): number {
  if (!(baseLr >= 0) || !Number.isFinite(baseLr)) throw new UserError(`schedule: base learning rate must be finite and >= 0, got ${baseLr}`);
  return baseLr * lrMultiplier(step, spec, totalSteps);
}
