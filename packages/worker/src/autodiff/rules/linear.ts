/** Gradient rules for MatMul (with batch broadcasting and 1-D operands) and Gemm. */
import { attr } from '../builder.js';
import type { GradContext, GradientRule } from '../rule.js';
import { sumToShape, type ShapeView } from './broadcast.js';

/** Swaps the last two axes of a value of rank `rank`. */
function swapLast(ctx: GradContext, x: string, rank: number): string {
  const perm = Array.from({ length: rank }, (_, i) => i);
  perm[rank - 2] = rank - 1;
  perm[rank - 1] = rank - 2;
  return ctx.b.transpose(x, perm);
}

/** The view of `y`'s batch axes followed by two trailing axes taken from `last2`. */
function batchedView(ctx: GradContext, y: string, last2: string): ShapeView {
  const fy = ctx.facts.get(y);
  const fl = ctx.facts.get(last2);
  const nb = fy.dims.length - 2;
  return {
    dims: [...fy.dims.slice(0, nb), ...fl.dims.slice(-2)],
    dynamic: [...fy.dynamic.slice(0, nb), ...fl.dynamic.slice(-2)],
  };
}

function matMul(ctx: GradContext): (string | undefined)[] {
  const { b, facts } = ctx;
  const a = ctx.input(0);
  const w = ctx.input(1);
  const y = ctx.output(0);
  const dy = ctx.gradOutput(0)!;
  const ra = facts.rank(a);
  const rw = facts.rank(w);

  if (ra === 1 && rw === 1) {
    return [ctx.needsGrad(0) ? b.mul(dy, w) : undefined, ctx.needsGrad(1) ? b.mul(dy, a) : undefined];
  }
  if (ra === 2 && rw === 2) {
    return [
      ctx.needsGrad(0) ? b.op('Gemm', [dy, w], { transB: attr.int(1) }, 'matmul_grad_a') : undefined,
      ctx.needsGrad(1) ? b.op('Gemm', [a, dy], { transA: attr.int(1) }, 'matmul_grad_b') : undefined,
    ];
  }
  if (ra === 1) {
    // a: [K] acts as [1, K]; y: batch + [N].
    const dy2 = b.unsqueeze(dy, [-2]);
    const da = ctx.needsGrad(0) ? b.reduceSum(b.op('MatMul', [dy2, swapLast(ctx, w, rw)]), range(rw - 1), false) : undefined;
    const db = ctx.needsGrad(1)
      ? sumToShape(ctx, b.op('MatMul', [b.unsqueeze(a, [-1]), dy2]), { dims: [...facts.dims(y).slice(0, -1), facts.dims(a)[0]!, facts.dims(y).at(-1)!], dynamic: [...facts.get(y).dynamic.slice(0, -1), false, facts.get(y).dynamic.at(-1)!] }, w)
      : undefined;
    return [da, db];
  }
  if (rw === 1) {
    // w: [K] acts as [K, 1]; y: batch + [M].
    const dy2 = b.unsqueeze(dy, [-1]);
    const da = ctx.needsGrad(0) ? b.op('MatMul', [dy2, b.unsqueeze(w, [0])]) : undefined;
    const db = ctx.needsGrad(1) ? b.reduceSum(b.op('MatMul', [swapLast(ctx, a, ra), dy2]), [...range(ra - 2), ra - 1], false) : undefined;
    return [da ? sumToShape(ctx, da, { dims: [...facts.dims(y), facts.dims(a).at(-1)!], dynamic: [...facts.get(y).dynamic, facts.get(a).dynamic.at(-1)!] }, a) : undefined, db];
  }
  // Both of rank >= 2, at least one batched.
  let da: string | undefined;
  let dw: string | undefined;
  if (ctx.needsGrad(0)) {
    da = sumToShape(ctx, b.op('MatMul', [dy, swapLast(ctx, w, rw)]), batchedView(ctx, y, a), a);
  }
  if (ctx.needsGrad(1)) {
    const wDims = facts.get(w);
    if (rw === 2 && !wDims.dynamic.some(Boolean)) {
      // A shared weight [K, N] under a batched input: fold the batch into the rows, one Gemm.
      const [k, n] = wDims.dims as [number, number];
      const a2 = b.reshape(a, b.i64([-1, k]));
      const dy2 = b.reshape(dy, b.i64([-1, n]));
      dw = b.op('Gemm', [a2, dy2], { transA: attr.int(1) }, 'matmul_grad_b');
    } else {
      dw = sumToShape(ctx, b.op('MatMul', [swapLast(ctx, a, ra), dy]), batchedView(ctx, y, w), w);
    }
  }
  return [da, dw];
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, i) => i);
}

/** Gemm: Y = alpha * op(A) @ op(B) + beta * C, with op() an optional transpose. */
function gemm(ctx: GradContext): (string | undefined)[] {
  const { b } = ctx;
  const a = ctx.input(0);
  const w = ctx.input(1);
  const dy = ctx.gradOutput(0)!;
  const alpha = ctx.attrFloat('alpha', 1);
  const beta = ctx.attrFloat('beta', 1);
  const transA = ctx.attrInt('transA', 0) === 1;
  const transB = ctx.attrInt('transB', 0) === 1;
  const g = (x: string, z: string, tx: boolean, tz: boolean) =>
    b.op('Gemm', [x, z], { alpha: attr.float(alpha), transA: attr.int(tx ? 1 : 0), transB: attr.int(tz ? 1 : 0) }, 'gemm_grad');
  let da: string | undefined;
  let dw: string | undefined;
  if (ctx.needsGrad(0)) {
    da = !transA ? g(dy, w, false, !transB) : g(w, dy, transB, true);
  }
  if (ctx.needsGrad(1)) {
    dw = !transB ? g(a, dy, !transA, false) : g(dy, a, true, transA);
  }
  let dc: string | undefined;
  if (ctx.hasInput(2) && ctx.needsGrad(2)) {
    const scaled = beta === 1 ? dy : b.mul(dy, b.f32(beta));
    dc = sumToShape(ctx, scaled, ctx.output(0), ctx.input(2));
  }
  return [da, dw, dc];
}

export const linearRules: Record<string, GradientRule> = {
  MatMul: { differentiable: [0, 1], backward: matMul },
  Gemm: { differentiable: [0, 1, 2], backward: gemm },
};
