/** Checks and copies shared by the optimizers: argument validation and state (de)serialization. */
import { UserError } from '../errors.js';
import type { OptimizerState, OptimizerType } from './optimizer.js';

/** A spec number, or its default; rejects values outside [lo, hi) (or [lo, hi] when `closed`). */
export function specNumber(name: string, value: number | undefined, fallback: number, lo: number, hi: number, closed = false): number {
  const v = value ?? fallback;
  const ok = typeof v === 'number' && Number.isFinite(v) && v >= lo && (closed ? v <= hi : v < hi);
  if (!ok) throw new UserError(`optimizer: ${name} must be in [${lo}, ${hi}${closed ? ']' : ')'}, got ${String(v)}`);
  return v;
}

/** Runs once per step, O(#parameters): a wrong array here would otherwise corrupt memory silently. */
export function checkStepArgs(sizes: readonly number[], params: readonly Float32Array[], grads: readonly Float32Array[], lr: number): void {
  if (!(lr >= 0) || !Number.isFinite(lr)) throw new UserError(`optimizer: learning rate must be finite and >= 0, got ${lr}`);
  if (params.length !== sizes.length || grads.length !== sizes.length) {
    throw new Error(`optimizer: expected ${sizes.length} parameters and gradients, got ${params.length} and ${grads.length}`);
  }
  for (let i = 0; i < sizes.length; i++) {
    if (params[i]!.length !== sizes[i] || grads[i]!.length !== sizes[i]) {
      throw new Error(`optimizer: parameter ${i} expects ${sizes[i]} values, got param ${params[i]!.length} and grad ${grads[i]!.length}`);
    }
  }
}

/** One zero-filled buffer per parameter. */
export function allocate(sizes: readonly number[]): Float32Array[] {
  return sizes.map((n) => new Float32Array(n));
}

/** Copies named per-parameter buffers into a detached state object. */
export function snapshot(type: OptimizerType, step: number, named: Record<string, Float32Array[]>, count: number): OptimizerState {
  const slots: Record<string, Float32Array>[] = [];
  for (let i = 0; i < count; i++) {
    const rec: Record<string, Float32Array> = {};
    for (const [name, buffers] of Object.entries(named)) rec[name] = buffers[i]!.slice();
    slots.push(rec);
  }
  return { type, step, slots };
}

/** Validates `s` fully before copying anything, so a bad state leaves the optimizer unchanged. */
export function restore(type: OptimizerType, s: OptimizerState, named: Record<string, Float32Array[]>, sizes: readonly number[]): number {
  if (s.type !== type) throw new UserError(`optimizer: state was written by '${s.type}', cannot load into '${type}'`);
  if (!Number.isInteger(s.step) || s.step < 0) throw new UserError(`optimizer: state step must be a non-negative integer, got ${s.step}`);
  if (s.slots.length !== sizes.length) throw new UserError(`optimizer: state has ${s.slots.length} parameters, expected ${sizes.length}`);
  const names = Object.keys(named);
  for (let i = 0; i < sizes.length; i++) {
    const rec = s.slots[i]!;
    const got = Object.keys(rec).sort().join(',');
    if (got !== [...names].sort().join(',')) throw new UserError(`optimizer: state of parameter ${i} has slots {${got}}, expected {${names.join(',')}}`);
    for (const name of names) {
      const v = rec[name]!;
      if (!(v instanceof Float32Array) || v.length !== sizes[i]) {
        throw new UserError(`optimizer: slot ${name} of parameter ${i} must be a Float32Array of ${sizes[i]} values`);
      }
    }
  }
  for (const name of names) for (let i = 0; i < sizes.length; i++) named[name]![i]!.set(s.slots[i]![name]!);
  return s.step;
}
