/**
 * Gradient rules for ops that move values around without arithmetic: reshapes, transposes,
 * slicing, concatenation, gathers and padding. Sizes stay symbolic (Shape of forward values) so
 * one training graph serves every batch and sequence length; only axes, steps and repeats (which
 * decide the structure of the emitted graph) must be known before training.
 */
import { attr } from '../builder.js';
import { DataType } from '../../onnx/types.js';
import type { GradContext, GradientRule } from '../rule.js';
import { sumToShape } from './broadcast.js';

// --- Small helpers ---------------------------------------------------------------------------

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

/** `axis` in [0, rank), or a user-facing error. */
function normalizeAxis(ctx: GradContext, axis: number, rank: number): number {
  const a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank) ctx.fail(`axis ${axis} is out of range for rank ${rank}`);
  return a;
}

function inversePerm(perm: number[]): number[] {
  const inv: number[] = new Array<number>(perm.length);
  perm.forEach((p, i) => (inv[p] = i));
  return inv;
}

function isIdentityPerm(perm: number[]): boolean {
  return perm.every((p, i) => p === i);
}

/** Transposes unless `perm` leaves the axes in place. */
function transposeIfNeeded(ctx: GradContext, x: string, perm: number[]): string {
  return isIdentityPerm(perm) ? x : ctx.b.transpose(x, perm);
}

/**
 * An integer tensor as int64 (Slice, Pad and Gather accept int32 too; our arithmetic mixes with
 * Shape's int64). Graph inputs have no facts, so their type is unknown: cast them to be sure.
 */
function asInt64(ctx: GradContext, v: string): string {
  const known = ctx.facts.has(v) && ctx.facts.dataType(v) === DataType.INT64;
  return known ? v : ctx.b.cast(v, DataType.INT64);
}

/** Element `i` of a 1-D int64 tensor, as a 1-element tensor (ready to Concat into shapes and pads). */
function element(ctx: GradContext, vec: string, i: number): string {
  return ctx.b.op('Gather', [vec, ctx.b.i64([i])], { axis: attr.int(0) });
}

/** True when `x`'s size along `axis` is the same for every input size (graph inputs have no facts: unknown). */
function isStaticDim(ctx: GradContext, x: string, axis: number): boolean {
  return ctx.facts.has(x) && !ctx.facts.get(x).dynamic[axis];
}

/** Dimension `axis` of `x` as a 1-element int64 tensor: a constant when static, else read at run time. */
function dimOf(ctx: GradContext, x: string, axis: number): string {
  return isStaticDim(ctx, x, axis) ? ctx.b.i64([ctx.facts.dims(x)[axis]!]) : element(ctx, ctx.b.shape(x), axis);
}

function min(ctx: GradContext, a: string, b: string): string {
  return ctx.b.op('Min', [a, b]);
}

function max(ctx: GradContext, a: string, b: string): string {
  return ctx.b.op('Max', [a, b]);
}

/** Index tensor with negatives counted from the end: Where(idx < 0, idx + size, idx), at run time. */
function wrapNegativeIndices(ctx: GradContext, indices: string, size: string): string {
  const { b } = ctx;
  const idx = asInt64(ctx, indices);
  return b.where(b.op('Less', [idx, b.i64([0], true)]), b.add(idx, size), idx);
}

/** The size of `data` along `axis` as an int64 scalar (broadcasts with index tensors of any rank). */
function scalarDim(ctx: GradContext, data: string, axis: number): string {
  return ctx.b.op('Gather', [ctx.b.shape(data), ctx.b.i64([axis], true)], { axis: attr.int(0) });
}

// --- Reshape-like and Transpose ----------------------------------------------------------------

/** Reshape, Flatten, Squeeze, Unsqueeze: the gradient takes the input's shape back. */
const RESHAPE_LIKE: GradientRule = {
  differentiable: [0],
  backward: (ctx) => [ctx.b.reshapeLike(ctx.gradOutput(0)!, ctx.input(0))],
};

function transposeGrad(ctx: GradContext): (string | undefined)[] {
  const rank = ctx.facts.rank(ctx.input(0));
  const perm = ctx.attrInts('perm') ?? range(0, rank).reverse();
  return [transposeIfNeeded(ctx, ctx.gradOutput(0)!, inversePerm(perm))];
}

// --- Slice -------------------------------------------------------------------------------------

/**
 * The first index Slice reads along an axis of size `d` (1-element int64 tensors), following the
 * ONNX clamping rules: negative starts count from the end; the result lies in [0, d] for positive
 * steps and [0, d-1] for negative ones. Clamping to [-d, d] first keeps INT64_MAX/MIN from overflowing.
 */
function sliceBegin(ctx: GradContext, start: string, d: string, step: number): string {
  const { b } = ctx;
  const bounded = min(ctx, max(ctx, start, b.neg(d)), d);
  const wrapped = b.where(b.op('Less', [bounded, b.i64([0])]), b.add(bounded, d), bounded);
  return step > 0 ? wrapped : min(ctx, wrapped, b.sub(d, b.i64([1])));
}

/** `g` reversed along `axis`. */
function reverseAxis(ctx: GradContext, g: string, axis: number): string {
  const { b } = ctx;
  return b.op('Slice', [g, b.i64([-1]), b.i64([Number.MIN_SAFE_INTEGER]), b.i64([axis]), b.i64([-1])]);
}

/** `shape` (a 1-D int64 shape of rank `rank`) with entry `axis` replaced by `value` (1 element). */
function replaceDim(ctx: GradContext, shape: string, rank: number, axis: number, value: string): string {
  const { b } = ctx;
  const parts: string[] = [];
  if (axis > 0) parts.push(b.op('Slice', [shape, b.i64([0]), b.i64([axis])]));
  parts.push(value);
  if (axis < rank - 1) parts.push(b.op('Slice', [shape, b.i64([axis + 1]), b.i64([rank])]));
  return b.concat(parts, 0);
}

/**
 * Spreads `g` along `axis` by `step`: element j moves to j*step, zeros in between (length n*step).
 * Done as Unsqueeze a new axis after `axis`, pad it to `step`, and merge the two axes.
 */
function interleaveZeros(ctx: GradContext, g: string, rank: number, axis: number, step: number, n: string): string {
  const { b } = ctx;
  const widened = b.unsqueeze(g, [axis + 1]);
  const pads = new Array<number>(2 * (rank + 1)).fill(0);
  pads[rank + 1 + axis + 1] = step - 1;
  const padded = b.op('Pad', [widened, b.i64(pads)]);
  const merged = replaceDim(ctx, b.shape(g), rank, axis, b.mul(n, b.i64([step])));
  return b.reshape(padded, merged);
}

/** How many axes Slice's `starts` covers (the default axes are the first that many). */
function startsLength(ctx: GradContext): number {
  const starts = ctx.input(1);
  if (!ctx.facts.has(starts)) ctx.fail('Slice without axes needs starts whose length is known before training');
  return ctx.facts.dims(starts)[0] ?? 1;
}

/**
 * Slice: the gradient is dY placed back where it was read, zeros elsewhere: per sliced axis,
 * reverse it (negative steps), spread it by the step, then one Pad puts it at its offset. All
 * offsets are computed in the graph from `starts` and the runtime sizes of X and Y, so starts
 * may be runtime values (x[:, :seq]); `ends` is not needed since Y's size says how much was read.
 */
function sliceGrad(ctx: GradContext): (string | undefined)[] {
  const { b, facts } = ctx;
  const x = ctx.input(0);
  const y = ctx.output(0);
  const rank = facts.rank(x);
  const starts = asInt64(ctx, ctx.input(1));
  const axes = ctx.hasInput(3) ? ctx.requireConstInts(3, 'axes').map((a) => normalizeAxis(ctx, a, rank)) : range(0, startsLength(ctx));
  const steps = ctx.hasInput(4) ? ctx.requireConstInts(4, 'steps') : axes.map(() => 1);
  if (steps.some((s) => s === 0)) ctx.fail('Slice with a step of 0 is invalid');

  const zero = b.i64([0]);
  const padBegin = new Array<string>(rank).fill(zero);
  const padEnd = new Array<string>(rank).fill(zero);
  let g = ctx.gradOutput(0)!;
  axes.forEach((axis, i) => {
    const step = steps[i]!;
    const stride = Math.abs(step);
    const d = dimOf(ctx, x, axis);
    const n = dimOf(ctx, y, axis);
    let first = sliceBegin(ctx, element(ctx, starts, i), d, step);
    if (step < 0) {
      // Read backwards from `first`: reversed, dY starts at first - (n-1)*stride (at most d when n = 0).
      g = reverseAxis(ctx, g, axis);
      first = min(ctx, b.sub(first, b.mul(b.sub(n, b.i64([1])), b.i64([stride]))), d);
    }
    let length = n;
    if (stride > 1) {
      g = interleaveZeros(ctx, g, rank, axis, stride, n);
      // The zeros after the last element may run past the end of X: keep what fits.
      length = min(ctx, b.mul(n, b.i64([stride])), b.sub(d, first));
      g = b.op('Slice', [g, zero, length, b.i64([axis])]);
    }
    padBegin[axis] = first;
    padEnd[axis] = b.sub(b.sub(d, first), length);
  });
  return [b.op('Pad', [g, b.concat([...padBegin, ...padEnd], 0)])];
}

// --- Concat and Split --------------------------------------------------------------------------

/** Concat: split dY back along the axis by each input's runtime size. */
function concatGrad(ctx: GradContext): (string | undefined)[] {
  const { b, facts } = ctx;
  const inputs = ctx.node.inputs;
  const rank = facts.rank(ctx.output(0));
  const axis = normalizeAxis(ctx, ctx.attrInt('axis', 0), rank);
  const dy = ctx.gradOutput(0)!;
  if (inputs.length === 1) return [dy];
  const allStatic = inputs.every((x) => isStaticDim(ctx, x, axis));
  const sizes = allStatic
    ? b.i64(inputs.map((x) => facts.dims(x)[axis]!))
    : b.concat(inputs.map((x) => dimOf(ctx, x, axis)), 0);
  const parts = b.opN('Split', [dy, sizes], inputs.length, { axis: attr.int(axis) }, 'concat_grad');
  return inputs.map((_, i) => (ctx.needsGrad(i) ? parts[i] : undefined));
}

/** Split (any form: split input, attribute, equal parts, num_outputs): concatenate the output gradients. */
function splitGrad(ctx: GradContext): (string | undefined)[] {
  const grads = ctx.node.outputs.map((out, i) => ctx.gradOutput(i) ?? ctx.b.zerosLike(out || ctx.fail(`output ${i} is missing`)));
  return [ctx.b.concat(grads, ctx.attrInt('axis', 0))];
}

// --- Gather family -----------------------------------------------------------------------------

/**
 * Gather: scatter-add dY into zeros shaped like the data, so repeated indices (the same token
 * twice in an embedding lookup) accumulate. ScatterND indexes leading axes, so the gathered axis
 * moves to the front (of the zeros and of dY's matching axes) and back afterwards.
 */
function gatherGrad(ctx: GradContext): (string | undefined)[] {
  const { b, facts } = ctx;
  const data = ctx.input(0);
  const indices = ctx.input(1);
  const rank = facts.rank(data);
  // dY is [data[:axis], indices..., data[axis+1:]] (indices may be a graph input, without facts).
  const q = facts.rank(ctx.output(0)) - rank + 1;
  const axis = normalizeAxis(ctx, ctx.attrInt('axis', 0), rank);

  const idx = b.unsqueeze(wrapNegativeIndices(ctx, indices, scalarDim(ctx, data, axis)), [-1]);
  // Zeros laid out as [data[axis], data[:axis], data[axis+1:]].
  const front = [axis, ...range(0, axis), ...range(axis + 1, rank)];
  const zeros = b.op('ConstantOfShape', [b.op('Gather', [b.shape(data), b.i64(front)], { axis: attr.int(0) })], {
    value: attr.tensor({ name: 'value', dataType: DataType.FLOAT, dims: [1], values: new Float32Array([0]) }),
  });
  // ScatterND wants [indices..., data[:axis], data[axis+1:]].
  const yPerm = [...range(axis, axis + q), ...range(0, axis), ...range(axis + q, rank - 1 + q)];
  const updates = transposeIfNeeded(ctx, ctx.gradOutput(0)!, yPerm);
  const scattered = b.op('ScatterND', [zeros, idx, updates], { reduction: attr.string('add') });
  return [transposeIfNeeded(ctx, scattered, inversePerm(front))];
}

/** GatherElements: scatter-add dY to the positions it was read from. */
function gatherElementsGrad(ctx: GradContext): (string | undefined)[] {
  const { b, facts } = ctx;
  const data = ctx.input(0);
  const axis = normalizeAxis(ctx, ctx.attrInt('axis', 0), facts.rank(data));
  const idx = wrapNegativeIndices(ctx, ctx.input(1), scalarDim(ctx, data, axis));
  const dx = b.op('ScatterElements', [b.zerosLike(data), idx, ctx.gradOutput(0)!], { axis: attr.int(axis), reduction: attr.string('add') });
  return [dx];
}

// --- Expand, Tile, Trilu, Pad ------------------------------------------------------------------

function expandGrad(ctx: GradContext): (string | undefined)[] {
  return [sumToShape(ctx, ctx.gradOutput(0)!, ctx.output(0), ctx.input(0))];
}

/** Tile: view dY as [r0, d0, r1, d1, ...] and sum over the repeat axes. */
function tileGrad(ctx: GradContext): (string | undefined)[] {
  const { b, facts } = ctx;
  const x = ctx.input(0);
  const repeats = ctx.requireConstInts(1, 'repeats');
  const dy = ctx.gradOutput(0)!;
  if (repeats.every((r) => r === 1)) return [dy];
  const f = facts.get(x);
  const pieces: string[] = [];
  const staticDims: number[] = [];
  const repeatAxes: number[] = [];
  repeats.forEach((r, i) => {
    if (r !== 1) {
      repeatAxes.push(pieces.length);
      pieces.push(b.i64([r]));
      staticDims.push(r);
    }
    pieces.push(dimOf(ctx, x, i));
    staticDims.push(f.dims[i]!);
  });
  const target = f.dynamic.some(Boolean) ? b.concat(pieces, 0) : b.i64(staticDims);
  return [b.reduceSum(b.reshape(dy, target), repeatAxes, false)];
}

function triluGrad(ctx: GradContext): (string | undefined)[] {
  const inputs = [ctx.gradOutput(0)!, ...(ctx.hasInput(1) ? [ctx.input(1)] : [])];
  return [ctx.b.op('Trilu', inputs, { upper: attr.int(ctx.attrInt('upper', 1)) })];
}

/** Pads for every axis ([begins..., ends...], int64) from Pad's inputs, expanding the opset-18 `axes` input. */
function fullPads(ctx: GradContext, rank: number): string {
  const { b } = ctx;
  const pads = asInt64(ctx, ctx.input(1));
  if (!ctx.hasInput(3)) return pads;
  const axes = ctx.requireConstInts(3, 'axes').map((a) => normalizeAxis(ctx, a, rank));
  const zero = b.i64([0]);
  const begins = range(0, rank).map((a) => (axes.includes(a) ? element(ctx, pads, axes.indexOf(a)) : zero));
  const ends = range(0, rank).map((a) => (axes.includes(a) ? element(ctx, pads, axes.indexOf(a) + axes.length) : zero));
  return b.concat([...begins, ...ends], 0);
}

/**
 * Pad (constant mode): dX is the part of dY where X landed, sliced out. Negative pads crop X; the
 * cropped part gets zeros, by first padding dY by the cropped amounts. The padding value's
 * gradient is the sum of dY over the padded border.
 */
function padGrad(ctx: GradContext): (string | undefined)[] {
  const { b, facts } = ctx;
  const mode = ctx.attrString('mode', 'constant');
  if (mode !== 'constant') ctx.fail(`Pad in '${mode}' mode is not supported (only 'constant')`);
  const x = ctx.input(0);
  const rank = facts.rank(x);
  const pads = fullPads(ctx, rank);
  const known = ctx.hasInput(3) ? undefined : ctx.constInts(1);
  const zero = b.i64([0], true);
  let g = ctx.gradOutput(0)!;
  let begins = b.op('Slice', [pads, b.i64([0]), b.i64([rank])]);
  if (!known || known.some((p) => p < 0)) {
    g = b.op('Pad', [g, max(ctx, b.neg(pads), zero)]);
    begins = max(ctx, begins, zero);
  }
  const dx = b.op('Slice', [g, begins, b.add(begins, b.shape(x))]);
  let dValue: string | undefined;
  if (ctx.hasInput(2) && ctx.needsGrad(2)) {
    const total = (v: string) => b.op('ReduceSum', [v], { keepdims: attr.int(0) });
    dValue = b.reshapeLike(b.sub(total(ctx.gradOutput(0)!), total(dx)), ctx.input(2));
  }
  return [ctx.needsGrad(0) ? dx : undefined, undefined, dValue];
}

export const shapeRules: Record<string, GradientRule> = {
  Reshape: RESHAPE_LIKE,
  Flatten: RESHAPE_LIKE,
  Squeeze: RESHAPE_LIKE,
  Unsqueeze: RESHAPE_LIKE,
  Transpose: { differentiable: [0], backward: transposeGrad },
  Expand: { differentiable: [0], backward: expandGrad },
  Slice: { differentiable: [0], backward: sliceGrad },
  Concat: { differentiable: 'all', backward: concatGrad },
  Split: { differentiable: [0], backward: splitGrad },
  Gather: { differentiable: [0], backward: gatherGrad },
  GatherElements: { differentiable: [0], backward: gatherElementsGrad },
  Pad: { differentiable: [0, 2], backward: padGrad },
  Tile: { differentiable: [0], backward: tileGrad },
  Trilu: { differentiable: [0], backward: triluGrad },
};
