/**
 * Gradient rules for convolution and pooling: Conv, ConvTranspose, MaxPool, AveragePool,
 * GlobalAveragePool and GlobalMaxPool, all with standard ops only.
 *
 * - Conv: dX is the transposed convolution of dY with the same weight; dW is itself a convolution
 *   (of X with dY as the kernel, strides and dilations swapped), with batch and group folded into
 *   channels so one grouped Conv serves any group count; dB sums dY over all axes but 1.
 * - ConvTranspose: the mirror image (dX = Conv of dY with the weight, dW = the same kernel
 *   convolution with the roles of X and dY swapped).
 * - MaxPool: the forward node's Indices output (flat over N*C*spatial, as ONNX Runtime computes
 *   it) says where each dY goes; ScatterElements with reduction 'add' accumulates overlapping
 *   windows.
 * - AveragePool: dY divided by each window's element count, spread back by a transposed
 *   depthwise convolution with a kernel of ones.
 * - GlobalMaxPool: ties share the gradient evenly (every position equal to the maximum gets
 *   dY / number of such positions), a valid subgradient that is symmetric in the tied inputs.
 *
 * Window geometry (pads, output sizes) follows ONNX Runtime; batch and, where possible, spatial
 * sizes stay symbolic so one training graph serves every input size.
 */
import { attr } from '../builder.js';
import { DataType } from '../../onnx/types.js';
import type { GradContext, GradientRule } from '../rule.js';

/** The sliding-window geometry of a conv or pool node, per spatial axis, with explicit pads. */
interface Window {
  kernel: number[];
  strides: number[];
  dilations: number[];
  padBegin: number[];
  padEnd: number[];
}

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, i) => from + i);
}

function product(xs: number[]): number {
  return xs.reduce((p, q) => p * q, 1);
}

/** An ints attribute of length `n`, or `fallback` repeated; a user-facing error on a wrong length. */
function perAxis(ctx: GradContext, name: string, n: number, fallback: number): number[] {
  const v = ctx.attrInts(name);
  if (v === undefined) return Array(n).fill(fallback) as number[];
  if (v.length !== n) ctx.fail(`attribute ${name} has ${v.length} values, expected ${n} (one per spatial axis)`);
  return v;
}

/**
 * The static spatial sizes of `x`, or undefined when any of them varies with the inputs (or when
 * nothing is known about `x`: the probe records node outputs and initializers, not graph inputs).
 */
function staticSpatial(ctx: GradContext, x: string): number[] | undefined {
  if (!ctx.facts.has(x)) return undefined;
  const f = ctx.facts.get(x);
  return f.dynamic.slice(2).some(Boolean) ? undefined : f.dims.slice(2);
}

/** A static channel count (axis 1), which grouped and depthwise kernels need. */
function staticChannels(ctx: GradContext, x: string): number {
  const f = ctx.facts.get(x);
  if (f.dims.length < 3) ctx.fail(`input of rank ${f.dims.length} has no spatial axes (expected [N, C, spatial...])`);
  if (f.dynamic[1]) ctx.fail('the channel dimension (axis 1) must have a fixed size');
  return f.dims[1]!;
}

/** The kernel's spatial sizes from the (static) weight, cross-checked against kernel_shape. */
function weightKernel(ctx: GradContext, w: string): number[] {
  const f = ctx.facts.get(w);
  if (f.dynamic.some(Boolean)) ctx.fail('the weight must have a fixed shape');
  const kernel = f.dims.slice(2);
  const declared = ctx.attrInts('kernel_shape');
  if (declared && declared.join() !== kernel.join()) ctx.fail(`kernel_shape [${declared}] does not match the weight's spatial shape [${kernel}]`);
  return kernel;
}

/**
 * Explicit pads for the node's auto_pad mode. SAME_UPPER/SAME_LOWER follow ONNX Runtime
 * (pad_needed = (ceil(in / stride) - 1) * stride + extent - in, the odd unit at the end for
 * SAME_UPPER, at the start for SAME_LOWER) and need static spatial sizes.
 */
function explicitPads(ctx: GradContext, x: string, kernel: number[], strides: number[], dilations: number[]): [number[], number[]] {
  const n = kernel.length;
  const autoPad = ctx.attrString('auto_pad', 'NOTSET');
  if (autoPad === 'NOTSET') {
    const pads = perAxis(ctx, 'pads', 2 * n, 0);
    if (pads.some((p) => p < 0)) ctx.fail(`negative pads [${pads}] are not supported`);
    return [pads.slice(0, n), pads.slice(n)];
  }
  if (autoPad === 'VALID') return [Array(n).fill(0) as number[], Array(n).fill(0) as number[]];
  if (autoPad !== 'SAME_UPPER' && autoPad !== 'SAME_LOWER') return ctx.fail(`auto_pad '${autoPad}' is not supported`);
  const sizes = staticSpatial(ctx, x);
  if (!sizes) return ctx.fail(`auto_pad ${autoPad} needs fixed, known spatial input sizes to place the padding; export the model with explicit pads`);
  const begin: number[] = [];
  const end: number[] = [];
  sizes.forEach((size, i) => {
    const extent = (kernel[i]! - 1) * dilations[i]! + 1;
    const needed = Math.max(0, (Math.ceil(size / strides[i]!) - 1) * strides[i]! + extent - size);
    const head = autoPad === 'SAME_LOWER' ? Math.ceil(needed / 2) : Math.floor(needed / 2);
    begin.push(head);
    end.push(needed - head);
  });
  return [begin, end];
}

function windowOf(ctx: GradContext, x: string, kernel: number[]): Window {
  const n = kernel.length;
  const strides = perAxis(ctx, 'strides', n, 1);
  const dilations = perAxis(ctx, 'dilations', n, 1);
  const [padBegin, padEnd] = explicitPads(ctx, x, kernel, strides, dilations);
  return { kernel, strides, dilations, padBegin, padEnd };
}

/** The spatial part of `x`'s runtime shape (axes 2..), as a 1-D int64 tensor. */
function spatialShape(ctx: GradContext, x: string, rank: number): string {
  const { b } = ctx;
  return b.op('Slice', [b.shape(x), b.i64([2]), b.i64([rank])]);
}

/** Slices the spatial axes of `v` to [0, ends) (ends a 1-D int64 value or static sizes). */
function sliceSpatial(ctx: GradContext, v: string, ends: string | number[], n: number): string {
  const { b } = ctx;
  const endValue = typeof ends === 'string' ? ends : b.i64(ends);
  return b.op('Slice', [v, b.i64(Array(n).fill(0) as number[]), endValue, b.i64(range(2, n + 2))]);
}

/**
 * Spreads `dy` (the gradient of a sliding-window op's output `y`) back onto the input `x` through
 * the transposed convolution with `weight`: dX[i] = sum over (o, k) with o*s + k*d - pad = i of
 * dY[o] * W[k]. The transposed convolution's raw extent s*(out-1) + (k-1)*d + 1 - pad_begin may
 * fall short of X (output_padding fills zeros: positions no window reads) or overrun it (ceil_mode
 * windows reaching past the end: cropped with the end pad). With dynamic spatial sizes it pads by
 * stride - 1 and slices to X's runtime shape instead.
 */
function spreadBack(ctx: GradContext, dy: string, weight: string, win: Window, group: number, x: string, y: string): string {
  const { b } = ctx;
  const n = win.kernel.length;
  const common = {
    strides: attr.ints(win.strides),
    dilations: attr.ints(win.dilations),
    group: attr.int(group),
  };
  const inSizes = staticSpatial(ctx, x);
  const outSizes = staticSpatial(ctx, y);
  if (inSizes && outSizes) {
    const padEnd: number[] = [];
    const outputPadding: number[] = [];
    inSizes.forEach((size, i) => {
      const extent = win.strides[i]! * (outSizes[i]! - 1) + (win.kernel[i]! - 1) * win.dilations[i]! + 1 - win.padBegin[i]!;
      padEnd.push(Math.max(0, extent - size));
      outputPadding.push(Math.max(0, size - extent));
    });
    return b.op('ConvTranspose', [dy, weight], {
      ...common,
      pads: attr.ints([...win.padBegin, ...padEnd]),
      output_padding: attr.ints(outputPadding),
    }, 'conv_grad_input');
  }
  const wide = b.op('ConvTranspose', [dy, weight], {
    ...common,
    pads: attr.ints([...win.padBegin, ...(Array(n).fill(0) as number[])]),
    output_padding: attr.ints(win.strides.map((s) => s - 1)),
  }, 'conv_grad_input');
  return sliceSpatial(ctx, wide, spatialShape(ctx, x, n + 2), n);
}

/**
 * The kernel gradient of a grouped sliding-window product, as one grouped Conv:
 *   K[g*Og + o, c, k] = sum over n, p of image[n, g*Cg + c, p*s + k*d - pad] * grad[n, g*Og + o, p].
 * image [N, G*Cg, S] becomes [Cg, G*N, S] and grad [N, G*Og, P] becomes the kernel [G*Og, N, P];
 * their Conv (group G, strides = d, dilations = s, same pads) gives [Cg, G*Og, k'] with k' >= k,
 * sliced to k and transposed to [G*Og, Cg, k]. The batch size stays symbolic (Reshape 0 / -1).
 */
function kernelGrad(ctx: GradContext, image: string, imageChannels: number, grad: string, gradChannels: number, win: Window, group: number): string {
  const { b } = ctx;
  const n = win.kernel.length;
  const rank = n + 2;
  const swap01 = [1, 0, ...range(2, rank)];
  let imageT: string;
  let gradT: string;
  if (group === 1) {
    imageT = b.transpose(image, swap01);
    gradT = b.transpose(grad, swap01);
  } else {
    const cg = imageChannels / group;
    const og = gradChannels / group;
    const image4 = b.transpose(b.reshape(image, b.i64([0, group, cg, -1])), [2, 1, 0, 3]);
    imageT = b.reshape(image4, b.concat([b.i64([cg, -1]), spatialShape(ctx, image, rank)], 0));
    const grad4 = b.transpose(b.reshape(grad, b.i64([0, group, og, -1])), [1, 2, 0, 3]);
    gradT = b.reshape(grad4, b.concat([b.i64([gradChannels, -1]), spatialShape(ctx, grad, rank)], 0));
  }
  const full = b.op('Conv', [imageT, gradT], {
    strides: attr.ints(win.dilations),
    dilations: attr.ints(win.strides),
    pads: attr.ints([...win.padBegin, ...win.padEnd]),
    group: attr.int(group),
  }, 'conv_grad_weight');
  return b.transpose(sliceSpatial(ctx, full, win.kernel, n), swap01);
}

/** Bias gradient: dY summed over every axis but the channel axis. */
function biasGrad(ctx: GradContext, dy: string, rank: number): string {
  return ctx.b.reduceSum(dy, [0, ...range(2, rank)], false);
}

function checkGroups(ctx: GradContext, group: number, ...channels: number[]): void {
  if (group < 1) ctx.fail(`group ${group} must be at least 1`);
  for (const c of channels) if (c % group !== 0) ctx.fail(`${c} channels do not split into ${group} groups`);
}

// --- Conv ----------------------------------------------------------------------------------------

function conv(ctx: GradContext): (string | undefined)[] {
  const x = ctx.input(0);
  const w = ctx.input(1);
  const y = ctx.output(0);
  const dy = ctx.gradOutput(0)!;
  // Shapes come from the weight: X may be a graph input, which has no probe facts.
  const rank = ctx.facts.rank(w);
  const group = ctx.attrInt('group', 1);
  const kernel = weightKernel(ctx, w);
  const inChannels = ctx.facts.dims(w)[1]! * group;
  const outChannels = ctx.facts.dims(w)[0]!;
  checkGroups(ctx, group, outChannels);
  const win = windowOf(ctx, x, kernel);
  return [
    ctx.needsGrad(0) ? spreadBack(ctx, dy, w, win, group, x, y) : undefined,
    ctx.needsGrad(1) ? kernelGrad(ctx, x, inChannels, dy, outChannels, win, group) : undefined,
    ctx.hasInput(2) && ctx.needsGrad(2) ? biasGrad(ctx, dy, rank) : undefined,
  ];
}

// --- ConvTranspose -------------------------------------------------------------------------------

/**
 * y = ConvTranspose(x, w [C, M/G, k]): y[j] collects x[i] * w[k] at j = i*s + k*d - pad_begin.
 * dX = Conv(dY, W) with the same attributes; dW is kernelGrad with dY as the image and X as the
 * gradient. Only explicit pads (or VALID) without output_shape are supported.
 */
function convTranspose(ctx: GradContext): (string | undefined)[] {
  const { b } = ctx;
  const x = ctx.input(0);
  const w = ctx.input(1);
  const dy = ctx.gradOutput(0)!;
  // Shapes come from the weight: X may be a graph input, which has no probe facts.
  const rank = ctx.facts.rank(w);
  const group = ctx.attrInt('group', 1);
  const autoPad = ctx.attrString('auto_pad', 'NOTSET');
  if (autoPad !== 'NOTSET' && autoPad !== 'VALID') ctx.fail(`auto_pad ${autoPad} is not supported for ConvTranspose gradients; export the model with explicit pads`);
  if (ctx.attrInts('output_shape')) ctx.fail('the output_shape attribute is not supported for ConvTranspose gradients; export the model with explicit pads and output_padding');
  const kernel = weightKernel(ctx, w);
  const inChannels = ctx.facts.dims(w)[0]!;
  const outChannels = ctx.facts.dims(w)[1]! * group;
  checkGroups(ctx, group, inChannels);
  const win = windowOf(ctx, x, kernel);
  const outputPadding = perAxis(ctx, 'output_padding', kernel.length, 0);

  let dx: string | undefined;
  if (ctx.needsGrad(0)) {
    dx = b.op('Conv', [dy, w], {
      strides: attr.ints(win.strides),
      dilations: attr.ints(win.dilations),
      pads: attr.ints([...win.padBegin, ...win.padEnd]),
      group: attr.int(group),
    }, 'conv_transpose_grad_input');
    // output_padding >= stride leaves whole extra windows at the end: drop them.
    if (outputPadding.some((p, i) => p >= win.strides[i]!)) dx = sliceSpatial(ctx, dx, spatialShape(ctx, x, rank), kernel.length);
  }
  return [
    dx,
    ctx.needsGrad(1) ? kernelGrad(ctx, dy, outChannels, x, inChannels, win, group) : undefined,
    ctx.hasInput(2) && ctx.needsGrad(2) ? biasGrad(ctx, dy, rank) : undefined,
  ];
}

// --- Pooling -------------------------------------------------------------------------------------

/** The pooling kernel from kernel_shape, and a window geometry (SAME pads only without dilation). */
function poolWindow(ctx: GradContext, x: string): Window {
  const kernel = ctx.attrInts('kernel_shape');
  if (!kernel) return ctx.fail('attribute kernel_shape is missing');
  if (kernel.length !== ctx.facts.rank(x) - 2) ctx.fail(`kernel_shape [${kernel}] does not match an input of rank ${ctx.facts.rank(x)}`);
  const win = windowOf(ctx, x, kernel);
  if (ctx.attrString('auto_pad', 'NOTSET').startsWith('SAME') && win.dilations.some((d) => d !== 1)) {
    ctx.fail('auto_pad SAME with dilations other than 1 is not supported; export the model with explicit pads');
  }
  return win;
}

/**
 * y = MaxPool(x): each output takes the input element its Indices output names (flat over
 * N*C*spatial), so dX = ScatterElements(zeros, indices, dY, reduction 'add') on the flattened
 * input; overlapping windows that pick the same element accumulate.
 */
function maxPool(ctx: GradContext): (string | undefined)[] {
  const { b } = ctx;
  if (ctx.attrInt('storage_order', 0) !== 0) ctx.fail('storage_order 1 (column-major indices) is not supported');
  const x = ctx.input(0);
  const dy = ctx.gradOutput(0)!;
  if (ctx.node.outputs.length > 1 && ctx.gradOutput(1) !== undefined) ctx.fail('internal: Indices carry no gradient');
  const indices = ctx.requireOutput(1);
  const flat = b.i64([-1]);
  const zeros = b.zerosLike(b.reshape(x, flat));
  const scattered = b.op('ScatterElements', [zeros, b.reshape(indices, flat), b.reshape(dy, flat)], {
    axis: attr.int(0),
    reduction: attr.string('add'),
  }, 'max_pool_grad');
  return [b.reshapeLike(scattered, x)];
}

/**
 * The element count of each AveragePool window, shaped [1, 1, out...]: a constant kernel volume
 * when every window lies inside the (padded) input, else a Conv of a ones image with a ones
 * kernel: the image covers the input (count_include_pad 0) or the padded input (1), with zero
 * padding where windows may reach past it (ceil_mode), sliced to the pool's output size.
 */
function windowCounts(ctx: GradContext, x: string, y: string, win: Window, includePad: boolean, ceilMode: boolean): string {
  const { b } = ctx;
  const n = win.kernel.length;
  const rank = n + 2;
  const padded = win.padBegin.some((p) => p > 0) || win.padEnd.some((p) => p > 0);
  if (!ceilMode && (includePad || !padded)) return b.f32(product(win.kernel));

  let sizes = spatialShape(ctx, x, rank);
  if (includePad) sizes = b.add(sizes, b.i64(win.padBegin.map((p, i) => p + win.padEnd[i]!)));
  const image = b.op('ConstantOfShape', [b.concat([b.i64([1, 1]), sizes], 0)], {
    value: attr.tensor({ name: 'value', dataType: DataType.FLOAT, dims: [1], values: new Float32Array([1]) }),
  });
  const overrun = win.strides.map((s) => s - 1);
  const pads = includePad ? [...(Array(n).fill(0) as number[]), ...overrun] : [...win.padBegin, ...win.padEnd.map((p, i) => p + overrun[i]!)];
  const ones = b.f32(Array(product(win.kernel)).fill(1) as number[], [1, 1, ...win.kernel]);
  const counts = b.op('Conv', [image, ones], {
    strides: attr.ints(win.strides),
    dilations: attr.ints(win.dilations),
    pads: attr.ints(pads),
  }, 'avg_pool_counts');
  // A window wholly in the padding would count 0; never divide by it.
  return b.op('Max', [sliceSpatial(ctx, counts, spatialShape(ctx, y, rank), n), b.f32(1)]);
}

/** y = AveragePool(x): dX = ConvTranspose(dY / count, ones [C, 1, k], group C). */
function averagePool(ctx: GradContext): (string | undefined)[] {
  const { b } = ctx;
  const x = ctx.input(0);
  const y = ctx.output(0);
  const dy = ctx.gradOutput(0)!;
  const channels = staticChannels(ctx, x);
  const win = poolWindow(ctx, x);
  const includePad = ctx.attrInt('count_include_pad', 0) === 1;
  const ceilMode = ctx.attrInt('ceil_mode', 0) === 1;
  const scaled = b.div(dy, windowCounts(ctx, x, y, win, includePad, ceilMode));
  const ones = b.f32(Array(channels * product(win.kernel)).fill(1) as number[], [channels, 1, ...win.kernel]);
  return [spreadBack(ctx, scaled, ones, win, channels, x, y)];
}

/** y = mean of x over the spatial axes: dX = dY / (spatial size), broadcast over them. */
function globalAveragePool(ctx: GradContext): (string | undefined)[] {
  const { b } = ctx;
  const x = ctx.input(0);
  const dy = ctx.gradOutput(0)!;
  const sizes = staticSpatial(ctx, x);
  const count = sizes ? b.f32(product(sizes)) : b.div(b.sizeAsFloat(x), b.sizeAsFloat(ctx.output(0)));
  return [b.expandLike(b.div(dy, count), x)];
}

/** y = max of x over the spatial axes: dY goes to the maximal positions, split evenly among ties. */
function globalMaxPool(ctx: GradContext): (string | undefined)[] {
  const { b } = ctx;
  const x = ctx.input(0);
  const dy = ctx.gradOutput(0)!;
  const rank = ctx.facts.rank(x);
  const mask = b.cast(b.op('Equal', [x, ctx.output(0)]), DataType.FLOAT);
  const ties = b.reduceSum(mask, range(2, rank), true);
  return [b.mul(mask, b.div(dy, ties))];
}

export const convRules: Record<string, GradientRule> = {
  Conv: { differentiable: [0, 1, 2], backward: conv },
  ConvTranspose: { differentiable: [0, 1, 2], backward: convTranspose },
  MaxPool: { differentiable: [0], backward: maxPool },
  AveragePool: { differentiable: [0], backward: averagePool },
  GlobalAveragePool: { differentiable: [0], backward: globalAveragePool },
  GlobalMaxPool: { differentiable: [0], backward: globalMaxPool },
};
