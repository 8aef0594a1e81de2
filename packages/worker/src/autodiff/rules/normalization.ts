/**
 * Gradient rules for softmax, normalization layers and reductions.
 *
 * Softmax/LogSoftmax use the opset-13 semantics (one `axis`, default -1): training graphs are only
 * built for models of opset 13 or newer (MIN_MODEL_OPSET in training-graph.ts), so the older
 * "flatten to 2-D at axis" semantics never reach these rules.
 */
import type { GradContext, GradientRule } from '../rule.js';
import { sumToShape } from './broadcast.js';

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

/** `axis` in [0, rank), accepting negative axes; a user-facing error when out of range. */
function normalizeAxis(ctx: GradContext, axis: number, rank: number, what = 'axis'): number {
  if (axis < -rank || axis >= rank) ctx.fail(`${what} ${axis} is out of range for an input of rank ${rank}`);
  return axis < 0 ? axis + rank : axis;
}

/** The gradient flowing into output 0; other outputs (statistics) carry no gradient in these rules. */
function onlyFirstOutputGrad(ctx: GradContext, what: string): string {
  for (let i = 1; i < ctx.node.outputs.length; i++) {
    if (ctx.gradOutput(i) !== undefined) ctx.fail(`gradients through its ${what} outputs are not supported; only output 0 (Y) may feed the loss`);
  }
  const dy = ctx.gradOutput(0);
  if (dy === undefined) return ctx.fail('internal: no gradient for output 0');
  return dy;
}

/**
 * The number of elements of `big` along `axes`, as a float32 scalar: a constant when those sizes
 * are static, else Size(big) / Size(small) at run time, where `small` is `big` reduced over `axes`.
 */
function reducedCount(ctx: GradContext, big: string, small: string, axes: number[]): string {
  const { b, facts } = ctx;
  const f = facts.get(big);
  if (axes.every((a) => !f.dynamic[a])) return b.f32(axes.reduce((p, a) => p * f.dims[a]!, 1));
  const ratio = b.div(b.op('Size', [big]), b.op('Size', [small]));
  return b.cast(ratio, facts.dataType(big));
}

/** The mean of `v` over `axes` (kept as size-1 axes), given the element count as a scalar. */
function meanOver(ctx: GradContext, v: string, axes: number[], count: string): string {
  return ctx.b.div(ctx.b.reduceSum(v, axes, true), count);
}

// --- Softmax ------------------------------------------------------------------------------------

function softmaxAxis(ctx: GradContext): number {
  return normalizeAxis(ctx, ctx.attrInt('axis', -1), ctx.facts.rank(ctx.input(0)));
}

/** y = softmax(x): dx = y * (dy - sum(dy * y)) along the axis. */
const softmax: GradientRule = {
  differentiable: [0],
  backward: (ctx) => {
    const { b } = ctx;
    const y = ctx.output(0);
    const dy = ctx.gradOutput(0)!;
    const dot = b.reduceSum(b.mul(dy, y), [softmaxAxis(ctx)], true);
    return [b.mul(y, b.sub(dy, dot))];
  },
};

/** y = log softmax(x): dx = dy - exp(y) * sum(dy) along the axis. */
const logSoftmax: GradientRule = {
  differentiable: [0],
  backward: (ctx) => {
    const { b } = ctx;
    const dy = ctx.gradOutput(0)!;
    const total = b.reduceSum(dy, [softmaxAxis(ctx)], true);
    return [b.sub(dy, b.mul(b.op('Exp', [ctx.output(0)]), total))];
  },
};

// --- LayerNormalization -------------------------------------------------------------------------

/**
 * LayerNormalization (opset 17): y = xhat * Scale + B with xhat = (x - mean) * invstd over the
 * axes from `axis` to the end. Mean and InvStdDev come from the forward node itself (ONNX Runtime
 * emits them with the reduced axes kept as 1), so they are not recomputed.
 */
function layerNorm(ctx: GradContext): (string | undefined)[] {
  const { b, facts } = ctx;
  const x = ctx.input(0);
  const scale = ctx.input(1);
  const y = ctx.output(0);
  const dy = onlyFirstOutputGrad(ctx, 'Mean/InvStdDev');
  const rank = facts.rank(x);
  const axes = range(normalizeAxis(ctx, ctx.attrInt('axis', -1), rank), rank);
  const mean = ctx.requireOutput(1);
  const invStd = ctx.requireOutput(2);
  const xhat = b.mul(b.sub(x, mean), invStd);

  let dx: string | undefined;
  if (ctx.needsGrad(0)) {
    // dx = invstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * Scale, means over the normalized axes.
    const g = b.mul(dy, scale);
    const count = reducedCount(ctx, x, mean, axes);
    const centered = b.sub(g, meanOver(ctx, g, axes, count));
    const projected = b.mul(xhat, meanOver(ctx, b.mul(g, xhat), axes, count));
    dx = b.mul(invStd, b.sub(centered, projected));
  }
  const dScale = ctx.needsGrad(1) ? sumToShape(ctx, b.mul(dy, xhat), y, scale) : undefined;
  const dBias = ctx.hasInput(2) && ctx.needsGrad(2) ? sumToShape(ctx, dy, y, ctx.input(2)) : undefined;
  return [dx, dScale, dBias];
}

// --- BatchNormalization -------------------------------------------------------------------------

/**
 * BatchNormalization in inference mode: y = scale * (x - mean) / sqrt(var + eps) + B, with the
 * per-channel vectors broadcast along axis 1. The running mean and variance are frozen statistics
 * by design (inputs 3 and 4 are not differentiable), so fine-tuning never trains them.
 */
function batchNorm(ctx: GradContext): (string | undefined)[] {
  const { b, facts } = ctx;
  if (ctx.attrInt('training_mode', 0) !== 0 || ctx.node.outputs.slice(1).some(Boolean)) {
    ctx.fail('BatchNormalization in training mode (batch statistics) is not supported; export the model in eval mode');
  }
  const x = ctx.input(0);
  const dy = onlyFirstOutputGrad(ctx, 'running statistics');
  const rank = facts.rank(x);
  if (rank < 2) ctx.fail(`input X must have rank 2 or more (N x C x ...), got rank ${rank}`);
  // [C] -> [C, 1, ..., 1], which broadcasts against [N, C, D1, ...] along axis 1.
  const perChannel = (v: string) => (rank > 2 ? b.unsqueeze(v, range(1, rank - 1)) : v);
  const eps = ctx.attrFloat('epsilon', 1e-5);
  const invStd = b.div(b.f32(1), b.op('Sqrt', [b.add(ctx.input(4), b.f32(eps))]));
  const otherAxes = [0, ...range(2, rank)];

  const dx = ctx.needsGrad(0) ? b.mul(dy, perChannel(b.mul(ctx.input(1), invStd))) : undefined;
  let dScale: string | undefined;
  if (ctx.needsGrad(1)) {
    const xhat = b.mul(b.sub(x, perChannel(ctx.input(3))), perChannel(invStd));
    dScale = b.reduceSum(b.mul(dy, xhat), otherAxes, false);
  }
  const dBias = ctx.needsGrad(2) ? b.reduceSum(dy, otherAxes, false) : undefined;
  return [dx, dScale, dBias];
}

// --- Reductions ---------------------------------------------------------------------------------

/**
 * The sorted, normalized axes a Reduce* node reduces over, or undefined when it is the identity
 * (empty axes with noop_with_empty_axes = 1). Axes are an attribute before opset 18 (ReduceSum:
 * before 13) and an input after, so both places are checked.
 */
function reductionAxes(ctx: GradContext): number[] | undefined {
  const rank = ctx.facts.rank(ctx.input(0));
  let axes = ctx.attrInts('axes');
  if (axes === undefined && ctx.hasInput(1)) axes = ctx.requireConstInts(1, 'axes');
  if (axes === undefined || axes.length === 0) {
    return ctx.attrInt('noop_with_empty_axes', 0) === 1 ? undefined : range(0, rank);
  }
  const normalized = new Set(axes.map((a) => normalizeAxis(ctx, a, rank, 'reduction axis')));
  return [...normalized].sort((p, q) => p - q);
}

/** A value shaped like the reduce output, broadcast back to the input's (run-time) shape. */
function expandToInput(ctx: GradContext, v: string, axes: number[]): string {
  const keep = ctx.attrInt('keepdims', 1) === 1;
  const kept = keep || axes.length === 0 ? v : ctx.b.unsqueeze(v, axes);
  return ctx.b.expandLike(kept, ctx.input(0));
}

/**
 * A reduce rule: `local` gives dx from dy and y already broadcast to x's shape. The identity case
 * (noop_with_empty_axes) passes dy through.
 */
function reduce(local: (ctx: GradContext, dy: string, y: () => string, axes: number[]) => string): GradientRule {
  return {
    differentiable: [0],
    backward: (ctx) => {
      const dy = ctx.gradOutput(0)!;
      const axes = reductionAxes(ctx);
      if (axes === undefined) return [dy];
      const y = () => expandToInput(ctx, ctx.output(0), axes);
      return [local(ctx, expandToInput(ctx, dy, axes), y, axes)];
    },
  };
}

/** ReduceMax/ReduceMin: the gradient is shared equally by the positions equal to the extreme. */
const reduceExtreme = reduce((ctx, dy, y, axes) => {
  const { b } = ctx;
  const x = ctx.input(0);
  const hit = b.cast(b.op('Equal', [x, y()]), ctx.facts.dataType(x));
  const ties = b.reduceSum(hit, axes, true);
  return b.div(b.mul(dy, hit), ties);
});

export const normalizationRules: Record<string, GradientRule> = {
  Softmax: softmax,
  LogSoftmax: logSoftmax,
  LayerNormalization: { differentiable: [0, 1, 2], backward: layerNorm },
  // Running mean (3) and variance (4) are frozen statistics: no gradient flows to them.
  BatchNormalization: { differentiable: [0, 1, 2], backward: batchNorm },

  ReduceSum: reduce((_ctx, dy) => dy),
  ReduceMean: reduce((ctx, dy, _y, axes) => ctx.b.div(dy, reducedCount(ctx, ctx.input(0), ctx.output(0), axes))),
  // y = sum x^2: dx = 2 x dy
  ReduceSumSquare: reduce((ctx, dy) => ctx.b.mul(dy, ctx.b.mul(ctx.b.f32(2), ctx.input(0)))),
  // y = sum |x|: dx = sign(x) dy
  ReduceL1: reduce((ctx, dy) => ctx.b.mul(dy, ctx.b.op('Sign', [ctx.input(0)]))),
  // y = sqrt(sum x^2): dx = x / y dy, and 0 where y = 0 (PyTorch's convention for norms at 0).
  ReduceL2: reduce((ctx, dy, y) => {
    const { b } = ctx;
    const yb = y();
    const ratio = b.where(b.op('Equal', [yb, b.f32(0)]), b.f32(0), b.div(ctx.input(0), yb));
    return b.mul(dy, ratio);
  }),
  // y = log sum exp x: dx = exp(x - y) dy
  ReduceLogSumExp: reduce((ctx, dy, y) => ctx.b.mul(dy, ctx.b.op('Exp', [ctx.b.sub(ctx.input(0), y())]))),
  ReduceMax: reduceExtreme,
  ReduceMin: reduceExtreme,
};
