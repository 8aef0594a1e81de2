/** Shared by the optimizer tests: comparing float32 results with float64 references. */
import assert from 'node:assert/strict';

// Parameters and state are float32, the references float64; a few steps of float32 rounding stay
// far below this. Updates are ~0.1, so a wrong rule misses it by orders of magnitude.
export const RTOL = 1e-6;
export const ATOL = 1e-7;

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.ok(Math.abs(a - e) <= RTOL * Math.abs(e) + ATOL, `${what}[${i}]: got ${a}, expected ${e}`);
  }
}
