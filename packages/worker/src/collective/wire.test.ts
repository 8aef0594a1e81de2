import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rng } from '../testing/model-builder.js';
import {
  bf16BitsFromF32Bits,
  bf16ToF32,
  f16BitsFromF32Bits,
  f16ToF32,
  f32BitsFromF16Bits,
  f32ToBf16,
  f32ToF16,
  roundToWire,
} from './wire.js';

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0]!;
}
function fromBits(b: number): number {
  u32[0] = b >>> 0;
  return f32[0]!;
}
function floatsFromBits(bits: number[]): Float32Array {
  return new Float32Array(Uint32Array.from(bits).buffer);
}
const hex = (x: number, w = 4) => '0x' + (x >>> 0).toString(16).padStart(w, '0');

/** Encodes with the array function and checks against the scalar one too. */
function toF16(bits: number): number {
  const a = f32ToF16(floatsFromBits([bits]))[0]!;
  assert.equal(hex(f16BitsFromF32Bits(bits)), hex(a), `scalar vs array f16 for ${hex(bits, 8)}`);
  return a;
}
function toBf16(bits: number): number {
  const a = f32ToBf16(floatsFromBits([bits]))[0]!;
  assert.equal(hex(bf16BitsFromF32Bits(bits)), hex(a), `scalar vs array bf16 for ${hex(bits, 8)}`);
  return a;
}

test('f32 -> f16 on known bit patterns: rounding, ties to even, subnormals, overflow, inf, nan, signed zero', () => {
  const cases: [number, number, string][] = [
    [bitsOf(0), 0x0000, '+0'],
    [0x80000000, 0x8000, '-0'],
    [bitsOf(1), 0x3c00, '1'],
    [bitsOf(-2), 0xc000, '-2'],
    [bitsOf(0.5), 0x3800, '0.5'],
    [bitsOf(0.1), 0x2e66, '0.1 (rounds down)'],
    [bitsOf(1 / 3), 0x3555, '1/3'],
    [bitsOf(65504), 0x7bff, 'largest finite'],
    [bitsOf(65519.99609375), 0x7bff, 'just below the overflow midpoint'],
    [bitsOf(65520), 0x7c00, 'overflow midpoint rounds to even = inf'],
    [bitsOf(1e6), 0x7c00, 'overflow'],
    [bitsOf(-1e6), 0xfc00, 'negative overflow'],
    [0x7f800000, 0x7c00, '+inf'],
    [0xff800000, 0xfc00, '-inf'],
    [0x7fc00000, 0x7e00, 'quiet nan'],
    [0xffc00000, 0xfe00, 'negative nan'],
    [0x7f800001, 0x7e00, 'signalling nan with low payload stays nan'],
    [bitsOf(1 + 2 ** -11), 0x3c00, '1 + half ulp: tie to even (down)'],
    [bitsOf(1 + 3 * 2 ** -11), 0x3c02, '1 + 1.5 ulp: tie to even (up)'],
    [bitsOf(1 + 2 ** -11) + 1, 0x3c01, 'just above a tie rounds up'],
    [bitsOf(1 + 2 ** -11) - 1, 0x3c00, 'just below a tie rounds down'],
    [bitsOf(2 ** -14), 0x0400, 'smallest normal'],
    [bitsOf(2 ** -14 - 2 ** -25), 0x0400, 'largest-subnormal tie rounds up to the smallest normal (even)'],
    [bitsOf(1023 * 2 ** -24), 0x03ff, 'largest subnormal'],
    [bitsOf(2 ** -24), 0x0001, 'smallest subnormal'],
    [bitsOf(-(2 ** -24)), 0x8001, 'negative smallest subnormal'],
    [bitsOf(2 ** -25), 0x0000, 'half the smallest subnormal: tie to even = 0'],
    [bitsOf(2 ** -25) + 1, 0x0001, 'just above half the smallest subnormal'],
    [bitsOf(3 * 2 ** -25), 0x0002, '1.5 subnormal units: tie to even = 2'],
    [bitsOf(5 * 2 ** -25), 0x0002, '2.5 subnormal units: tie to even = 2'],
    [bitsOf(2 ** -26), 0x0000, 'underflow'],
    [0x80000001, 0x8000, 'negative float32 subnormal -> -0'],
    [0x00000001, 0x0000, 'float32 subnormal -> +0'],
  ];
  for (const [bits, want, what] of cases) assert.equal(hex(toF16(bits)), hex(want), `${what} (${hex(bits, 8)})`);
});

test('f16 -> f32 on known bit patterns', () => {
  const cases: [number, number][] = [
    [0x0000, 0x00000000],
    [0x8000, 0x80000000],
    [0x3c00, bitsOf(1)],
    [0xc000, bitsOf(-2)],
    [0x7bff, bitsOf(65504)],
    [0x0400, bitsOf(2 ** -14)],
    [0x03ff, bitsOf(1023 * 2 ** -24)],
    [0x0001, bitsOf(2 ** -24)],
    [0x8001, bitsOf(-(2 ** -24))],
    [0x0200, bitsOf(2 ** -15)],
    [0x7c00, 0x7f800000],
    [0xfc00, 0xff800000],
    [0x7e00, 0x7fc00000],
    [0x7c01, 0x7f802000],
  ];
  const out = new Uint32Array(f16ToF32(Uint16Array.from(cases.map((c) => c[0]))).buffer);
  cases.forEach(([h, want], i) => {
    assert.equal(hex(out[i]!, 8), hex(want, 8), `f16 ${hex(h)}`);
    assert.equal(hex(f32BitsFromF16Bits(h), 8), hex(want, 8), `scalar f16 ${hex(h)}`);
  });
});

test('f32 -> bf16 on known bit patterns', () => {
  const cases: [number, number, string][] = [
    [bitsOf(1), 0x3f80, '1'],
    [bitsOf(-1), 0xbf80, '-1'],
    [0x80000000, 0x8000, '-0'],
    [0x3f808000, 0x3f80, 'tie to even (down)'],
    [0x3f818000, 0x3f82, 'tie to even (up)'],
    [0x3f808001, 0x3f81, 'just above a tie'],
    [0x3f807fff, 0x3f80, 'just below a tie'],
    [bitsOf(3.14159274), 0x4049, 'pi'],
    [0x7f7fffff, 0x7f80, 'float32 max rounds to inf'],
    [0x7f7f7fff, 0x7f7f, 'below the overflow midpoint stays finite'],
    [0x7f7f8000, 0x7f80, 'overflow midpoint: tie to even = inf'],
    [0x7f800000, 0x7f80, '+inf'],
    [0xff800000, 0xff80, '-inf'],
    [0x7fc00000, 0x7fc0, 'quiet nan'],
    [0x7f800001, 0x7fc0, 'signalling nan with low payload stays nan'],
    [0xffffffff, 0xffff, 'all-ones nan'],
    [0x00000001, 0x0000, 'smallest float32 subnormal'],
    [0x00008000, 0x0000, 'subnormal tie to even (down)'],
    [0x00018000, 0x0002, 'subnormal tie to even (up)'],
    [0x007fffff, 0x0080, 'largest subnormal rounds up into the smallest normal'],
  ];
  for (const [bits, want, what] of cases) assert.equal(hex(toBf16(bits)), hex(want), `${what} (${hex(bits, 8)})`);
  const back = new Uint32Array(bf16ToF32(Uint16Array.of(0x3f80, 0x8000, 0x7f80, 0xffff, 0x0001)).buffer);
  assert.deepEqual([...back].map((b) => hex(b, 8)), ['0x3f800000', '0x80000000', '0x7f800000', '0xffff0000', '0x00010000']);
});

test('every f16 and bf16 value survives widening and narrowing unchanged (NaN stays NaN)', () => {
  const all = new Uint16Array(65536).map((_, i) => i);
  for (const [widen, narrow] of [
    [f16ToF32, f32ToF16],
    [bf16ToF32, f32ToBf16],
  ] as const) {
    const wide = widen(all);
    const back = narrow(wide);
    for (let h = 0; h < 65536; h++) {
      if (Number.isNaN(wide[h]!)) {
        assert.ok(Number.isNaN(fromBits(new Uint32Array(wide.buffer)[h]!)), `${hex(h)} is NaN`);
        assert.ok(Number.isNaN(widen(Uint16Array.of(back[h]!))[0]!), `${hex(h)} narrows to a NaN`);
      } else {
        assert.equal(back[h], h, `${widen.name} then ${narrow.name} of ${hex(h)}`);
      }
    }
  }
});

test('f16 widening agrees with the IEEE definition computed in float64', () => {
  const wide = f16ToF32(new Uint16Array(65536).map((_, i) => i));
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >> 10) & 0x1f;
    const m = h & 0x3ff;
    const want = e === 0 ? s * m * 2 ** -24 : e === 31 ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
    assert.ok(Object.is(wide[h], want), `${hex(h)}: ${wide[h]} vs ${want}`);
  }
});

/**
 * Reference rounding in float64: the nearest of the sorted non-negative values of the format
 * (`top` is the bit pattern of +inf, standing in as the next power of two), ties to the even
 * pattern; magnitudes at or past that power of two are infinity.
 */
function referenceRound(x: number, values: Float64Array, top: number): number {
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a >= values[top]!) return sign | top;
  let lo = 0;
  let hi = top; // values[lo] <= a < values[hi]
  while (hi - lo > 1) {
    const mid = (lo + hi) >> 1;
    if (values[mid]! <= a) lo = mid;
    else hi = mid;
  }
  const dl = a - values[lo]!;
  const dh = values[hi]! - a;
  return sign | (dl < dh ? lo : dh < dl ? hi : lo % 2 === 0 ? lo : hi);
}

function formatValues(top: number, widen: (h: Uint16Array) => Float32Array, nextPow2: number): Float64Array {
  const v = Float64Array.from(widen(new Uint16Array(top + 1).map((_, i) => i)));
  v[top] = nextPow2;
  return v;
}

test('f32 -> f16 and f32 -> bf16 equal a float64 round-to-nearest-even reference on random values and all midpoints', () => {
  const random = rng(7);
  for (const [narrow, widen, top, pow] of [
    [f32ToF16, f16ToF32, 0x7c00, 65536],
    [f32ToBf16, bf16ToF32, 0x7f80, 2 ** 128],
  ] as const) {
    const values = formatValues(top, widen, pow);
    const inputs: number[] = [];
    // Midpoints between neighbours (exact ties in float32) and their float32 neighbours.
    for (let h = 0; h < top; h++) {
      const mid = (values[h]! + values[h + 1]!) / 2;
      const b = bitsOf(mid);
      if (fromBits(b) === mid) inputs.push(b, b - 1, b + 1, (b | 0x80000000) >>> 0);
    }
    // Random finite float32 bit patterns, biased towards the format's range.
    for (let i = 0; i < 200_000; i++) {
      const b = Math.floor(random() * 2 ** 32);
      if (((b >>> 23) & 0xff) !== 0xff) inputs.push(b);
      const v = (random() * 2 - 1) * 2 ** Math.floor(random() * 48 - 30);
      inputs.push(bitsOf(v));
    }
    const got = narrow(floatsFromBits(inputs));
    for (let i = 0; i < inputs.length; i++) {
      const want = referenceRound(fromBits(inputs[i]!), values, top);
      if (got[i] !== want) assert.fail(`${narrow.name}(${hex(inputs[i]!, 8)} = ${fromBits(inputs[i]!)}): got ${hex(got[i]!)}, want ${hex(want)}`);
    }
  }
});

test('roundToWire rounds in place to representable values and leaves f32 alone', () => {
  const x = Float32Array.of(1 + 2 ** -9, 0.1, -3.3, 70000, 1e-8);
  const f16 = x.slice();
  roundToWire('f16', f16);
  assert.deepEqual([...f16], [...f16ToF32(f32ToF16(x))]);
  const bf = x.slice();
  roundToWire('bf16', bf);
  assert.deepEqual([...bf], [...bf16ToF32(f32ToBf16(x))]);
  assert.equal(bf[0], 1); // 1 + 2^-9 is below bf16's half ulp 2^-8
  const same = x.slice();
  roundToWire('f32', same);
  assert.deepEqual(same, x);
});
