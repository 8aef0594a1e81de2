/**
 * Element formats the all-reduce can put on the wire, and the conversions between them and
 * float32. The collective always accumulates in float32; a 16-bit wire format halves the bytes
 * sent at the cost of rounding every partial sum that crosses the wire (see ring.ts for the
 * resulting error bound).
 *
 * - 'f32':  IEEE binary32, sent as is (exact).
 * - 'bf16': bfloat16, the upper 16 bits of a binary32 after round-to-nearest-even: same exponent
 *           range as float32, 8 significant bits (unit roundoff 2^-8 = 3.9e-3).
 * - 'f16':  IEEE binary16, round-to-nearest-even, with subnormals, overflow to infinity (values
 *           from 65520 up), inf and NaN: 11 significant bits (unit roundoff 2^-11 = 4.9e-4),
 *           finite range ±65504, smallest subnormal 2^-24 (magnitudes up to 2^-25 become ±0).
 *
 * NaN stays NaN in every conversion (quieted, sign and the top payload bits kept). The loops work
 * on Uint32Array/Uint16Array views of the same memory, so no float is ever materialised where a
 * JavaScript number could change its bits.
 */

import type { WirePrecision } from '@finetune/api';

export type WireFormat = 'f32' | 'bf16' | 'f16';

export const WIRE_FORMATS: readonly WireFormat[] = ['f32', 'bf16', 'f16'];

/** The wire format of each spec.workers.allReduce.wirePrecision. */
export const WIRE_OF_PRECISION: Readonly<Record<WirePrecision, WireFormat>> = { float32: 'f32', bfloat16: 'bf16', float16: 'f16' };

/** Bytes one element takes on the wire. */
export function wireBytesPerElement(format: WireFormat): 2 | 4 {
  return format === 'f32' ? 4 : 2;
}

function bitsOf(src: Float32Array): Uint32Array {
  return new Uint32Array(src.buffer, src.byteOffset, src.length);
}

function checkLengths(src: ArrayLike<number>, dst: ArrayLike<number>, what: string): void {
  if (dst.length < src.length) throw new RangeError(`${what}: destination holds ${dst.length} elements, source ${src.length}`);
}

// ---- bfloat16 ---------------------------------------------------------------------------------

/** The bfloat16 bit pattern nearest to the float32 with bit pattern `x` (ties to even). */
export function bf16BitsFromF32Bits(x: number): number {
  x >>>= 0;
  if ((x & 0x7fffffff) > 0x7f800000) return (x >>> 16) | 0x0040; // NaN: keep sign and top payload, make it quiet
  // Adding 0x7fff plus the lowest kept bit rounds to nearest, ties to even; the carry may run into
  // the exponent (correctly giving the next binade, or infinity past the largest finite bf16).
  return ((x + 0x7fff + ((x >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Rounds float32 values to bfloat16 (round-to-nearest-even). Returns `dst`. */
export function f32ToBf16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkLengths(src, dst, 'f32ToBf16');
  const bits = bitsOf(src);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const x = bits[i]!;
    dst[i] = (x & 0x7fffffff) > 0x7f800000 ? (x >>> 16) | 0x0040 : (x + 0x7fff + ((x >>> 16) & 1)) >>> 16;
  }
  return dst;
}

/** Widens bfloat16 to float32 (exact). Returns `dst`. */
export function bf16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  checkLengths(src, dst, 'bf16ToF32');
  const out = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) out[i] = src[i]! << 16;
  return dst;
}

// ---- IEEE binary16 ----------------------------------------------------------------------------

/** The binary16 bit pattern nearest to the float32 with bit pattern `x` (ties to even). */
export function f16BitsFromF32Bits(x: number): number {
  x >>>= 0;
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  const mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // inf, or quiet NaN
  const e = exp - 127;
  if (e > 15) return sign | 0x7c00; // beyond 2^16: infinity
  if (e >= -14) {
    // Normal binary16: keep 10 of the 23 fraction bits, round the 13 dropped ones. A carry out of
    // the fraction bumps the exponent; out of exponent 30 it gives 0x7c00, infinity, as it should.
    let h = ((e + 15) << 10) | (mant >>> 13);
    const rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest === 0x1000 && (h & 1) !== 0)) h++;
    return sign | h;
  }
  if (e < -25) return sign; // below half the smallest subnormal (float32 subnormals included): ±0
  // Subnormal binary16: the value is m * 2^(e-23) with the implicit bit in m; in units of 2^-24
  // that is m >> (-e - 1), rounded. A carry into 0x400 gives the smallest normal, correctly.
  const m = mant | 0x800000;
  const shift = -e - 1; // 14 .. 24
  let h = m >>> shift;
  const rest = m & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  if (rest > half || (rest === half && (h & 1) !== 0)) h++;
  return sign | h;
}

/** The float32 bit pattern of the binary16 with bit pattern `h` (exact). */
export function f32BitsFromF16Bits(h: number): number {
  const sign = (h & 0x8000) << 16;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0x1f) return (sign | 0x7f800000 | (mant << 13)) >>> 0;
  if (exp !== 0) return (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
  if (mant === 0) return sign >>> 0;
  // Subnormal: normalise. The leading one of mant sits at bit p (0..9); value = mant * 2^-24.
  const p = 31 - Math.clz32(mant);
  return (sign | ((p - 24 + 127) << 23) | ((mant << (23 - p)) & 0x7fffff)) >>> 0;
}

let f16Table: Uint32Array | undefined;
let f16TableF32: Float32Array | undefined;

/** float32 bit patterns of all 65536 binary16 values (256 KiB, built on first use). */
function f16ToF32Bits(): Uint32Array {
  if (!f16Table) {
    f16Table = new Uint32Array(65536);
    for (let h = 0; h < 65536; h++) f16Table[h] = f32BitsFromF16Bits(h);
    f16TableF32 = new Float32Array(f16Table.buffer);
  }
  return f16Table;
}

/** The same table viewed as float32 values, for loops that add decoded values. Shared: read it, never write it. */
export function f16DecodeTable(): Float32Array {
  f16ToF32Bits();
  return f16TableF32!;
}

/** Rounds float32 values to IEEE binary16 (round-to-nearest-even). Returns `dst`. */
export function f32ToF16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  checkLengths(src, dst, 'f32ToF16');
  const bits = bitsOf(src);
  const n = src.length;
  for (let i = 0; i < n; i++) {
    const x = bits[i]!;
    const a = x & 0x7fffffff;
    if (a >= 0x38800000 && a < 0x47800000) {
      // Normal binary16 range [2^-14, 2^16): rebias the exponent (127 -> 15), then round the 13
      // dropped bits to nearest-even without a branch (adding 0xfff plus the lowest kept bit
      // carries exactly when rounding up; a carry out of exponent 30 gives 0x7c00, infinity).
      dst[i] = ((x >>> 16) & 0x8000) | ((a - 0x38000000 + 0xfff + ((a >>> 13) & 1)) >>> 13);
    } else {
      dst[i] = f16BitsFromF32Bits(x);
    }
  }
  return dst;
}

/** Widens IEEE binary16 to float32 (exact, table lookup). Returns `dst`. */
export function f16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  checkLengths(src, dst, 'f16ToF32');
  const table = f16ToF32Bits();
  const out = bitsOf(dst);
  const n = src.length;
  for (let i = 0; i < n; i++) out[i] = table[src[i]!]!;
  return dst;
}

// ---- by format --------------------------------------------------------------------------------

/** Encodes float32 values into a 16-bit wire format. */
export function encodeWire16(format: 'bf16' | 'f16', src: Float32Array, dst: Uint16Array): void {
  if (format === 'bf16') f32ToBf16(src, dst);
  else f32ToF16(src, dst);
}

/** Decodes a 16-bit wire format into float32 values. */
export function decodeWire16(format: 'bf16' | 'f16', src: Uint16Array, dst: Float32Array): void {
  if (format === 'bf16') bf16ToF32(src, dst);
  else f16ToF32(src, dst);
}

/**
 * Rounds float32 values in place to the nearest value the wire format can represent, so that
 * sending them is exact. A no-op for 'f32'.
 */
export function roundToWire(format: WireFormat, data: Float32Array, scratch?: Uint16Array): void {
  if (format === 'f32' || data.length === 0) return;
  const tmp = scratch && scratch.length >= data.length ? scratch.subarray(0, data.length) : new Uint16Array(data.length);
  encodeWire16(format, data, tmp);
  decodeWire16(format, tmp, data);
}
