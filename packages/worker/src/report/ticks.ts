/** Axis ticks at round numbers: the step is 1, 2, 2.5 or 5 times a power of ten, so labels read easily. */

export interface Ticks {
  /** Axis domain; equals the first and last tick, and always min < max. */
  min: number;
  max: number;
  step: number;
  values: number[];
}

const NICE = [1, 2, 2.5, 5, 10];
// Beyond this, hi - lo could overflow; no loss or learning rate worth plotting gets near it.
const LIMIT = 1e300;

/** Drops float noise such as 0.30000000000000004 so labels and comparisons stay clean. */
export function cleanNumber(x: number): number {
  return x === 0 ? 0 : Number(x.toPrecision(12));
}

/** The smallest nice step >= rough (rough > 0). */
export function niceStep(rough: number): number {
  if (!(rough > 0) || !Number.isFinite(rough)) return 1;
  const mag = 10 ** Math.floor(Math.log10(rough));
  const r = rough / mag;
  const f = NICE.find((n) => n >= r * (1 - 1e-9)) ?? 10;
  return cleanNumber(f * mag);
}

export interface TickOptions {
  /** Roughly how many intervals to aim for (the result has at most target + 2). */
  target?: number;
  /** Integer data (steps): never a fractional step. */
  integer?: boolean;
}

/**
 * Ticks covering [lo, hi]. Non-finite bounds fall back to [0, 1]; an empty or constant range is
 * widened around its value so the caller never divides by zero.
 */
export function niceTicks(lo: number, hi: number, options: TickOptions = {}): Ticks {
  const target = Math.max(1, Math.floor(options.target ?? 5));
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) [lo, hi] = [0, 1];
  if (lo > hi) [lo, hi] = [hi, lo];
  lo = Math.max(-LIMIT, lo);
  hi = Math.min(LIMIT, hi);
  // A span this small relative to the values cannot get distinct, readable labels: treat as constant.
  if (hi - lo <= Math.max(Math.abs(lo), Math.abs(hi)) * 1e-9) {
    const v = (lo + hi) / 2;
    const d = v === 0 ? 0 : Math.abs(v) / 2;
    [lo, hi] = v === 0 ? [0, 1] : [v - d, v + d]; // stays on the value's side of zero
  }
  let step = niceStep((hi - lo) / target);
  if (options.integer) step = Math.max(1, step);
  const first = Math.floor(lo / step + 1e-9);
  const last = Math.ceil(hi / step - 1e-9);
  const values: number[] = [];
  for (let k = first; k <= last; k++) values.push(cleanNumber(k * step));
  if (values.length < 2) values.push(cleanNumber((last + 1) * step));
  return { min: values[0]!, max: values[values.length - 1]!, step, values };
}

/**
 * A tick label with as many decimals as the step needs (0.25 -> 2), so labels on one axis line up.
 * Very small or large numbers use exponent form (2.5e-5), which is how learning rates are written.
 */
export function formatTick(value: number, step: number): string {
  if (!Number.isFinite(value)) return '';
  if (value === 0) return '0';
  const useExp = step < 1e-3 || Math.abs(value) >= 1e6;
  if (!useExp) {
    const s = String(cleanNumber(step));
    const dot = s.indexOf('.');
    return value.toFixed(dot < 0 ? 0 : s.length - dot - 1);
  }
  const stepExp = Math.floor(Math.log10(step) + 1e-9);
  const stepDigits = cleanNumber(step / 10 ** stepExp) % 1 === 0 ? 0 : 1; // 2.5 needs one more digit
  const digits = Math.min(15, Math.max(0, Math.floor(Math.log10(Math.abs(value)) + 1e-9) - stepExp + stepDigits));
  const [mantissa, exp] = value.toExponential(digits).split('e') as [string, string];
  const m = mantissa.includes('.') ? mantissa.replace(/\.?0+$/, '') : mantissa;
  return `${m}e${exp.replace('+', '')}`;
}
