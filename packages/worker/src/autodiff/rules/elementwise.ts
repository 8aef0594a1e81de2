/** Gradient rules for element-wise arithmetic and activations (with broadcasting where ONNX allows it). */
import { attr } from '../builder.js';
import type { GradContext, GradientRule } from '../rule.js';
import { sumToShape } from './broadcast.js';

/** Gradient of a unary op: dx = dy * f'(x), where `derivative` emits f' from the context. */
function unary(derivative: (ctx: GradContext) => string): GradientRule {
  return {
    differentiable: [0],
    backward: (ctx) => [ctx.b.mul(ctx.gradOutput(0)!, derivative(ctx))],
  };
}

/** For a binary op with broadcasting: each input's gradient is summed back to its own shape. */
function binary(grads: (ctx: GradContext, dy: string) => [string | undefined, string | undefined]): GradientRule {
  return {
    differentiable: [0, 1],
    backward: (ctx) => {
      const dy = ctx.gradOutput(0)!;
      const [ga, gb] = grads(ctx, dy);
      const y = ctx.output(0);
      return [
        ctx.needsGrad(0) && ga ? sumToShape(ctx, ga, y, ctx.input(0)) : undefined,
        ctx.needsGrad(1) && gb ? sumToShape(ctx, gb, y, ctx.input(1)) : undefined,
      ];
    },
  };
}

export const elementwiseRules: Record<string, GradientRule> = {
  Identity: { differentiable: [0], backward: (ctx) => [ctx.gradOutput(0)] },
  Neg: { differentiable: [0], backward: (ctx) => [ctx.b.neg(ctx.gradOutput(0)!)] },

  Add: binary((_ctx, dy) => [dy, dy]),
  Sub: binary((ctx, dy) => [dy, ctx.needsGrad(1) ? ctx.b.neg(dy) : undefined]),
  Mul: binary((ctx, dy) => [
    ctx.needsGrad(0) ? ctx.b.mul(dy, ctx.input(1)) : undefined,
    ctx.needsGrad(1) ? ctx.b.mul(dy, ctx.input(0)) : undefined,
  ]),
  // y = a / b:  da = dy / b;  db = -dy * y / b
  Div: binary((ctx, dy) => {
    const da = ctx.b.div(dy, ctx.input(1));
    return [da, ctx.needsGrad(1) ? ctx.b.neg(ctx.b.mul(da, ctx.output(0))) : undefined];
  }),
  // y = x^p:  dx = dy * p * x^(p-1);  dp = dy * y * ln(x)
  Pow: binary((ctx, dy) => {
    const { b } = ctx;
    const x = ctx.input(0);
    const p = ctx.input(1);
    const pFloat = ctx.facts.dataType(p) === ctx.facts.dataType(x) ? p : b.cast(p, ctx.facts.dataType(x));
    const dx = ctx.needsGrad(0) ? b.mul(dy, b.mul(pFloat, b.op('Pow', [x, b.sub(pFloat, b.f32(1))]))) : undefined;
    const dp = ctx.needsGrad(1) ? b.mul(dy, b.mul(ctx.output(0), b.op('Log', [x]))) : undefined;
    return [dx, dp];
  }),

  Sqrt: unary((ctx) => ctx.b.div(ctx.b.f32(0.5), ctx.output(0))),
  Exp: unary((ctx) => ctx.output(0)),
  Log: unary((ctx) => ctx.b.div(ctx.b.f32(1), ctx.input(0))),
  Reciprocal: unary((ctx) => ctx.b.neg(ctx.b.mul(ctx.output(0), ctx.output(0)))),
  Abs: unary((ctx) => ctx.b.op('Sign', [ctx.input(0)])),
  Tanh: unary((ctx) => ctx.b.sub(ctx.b.f32(1), ctx.b.mul(ctx.output(0), ctx.output(0)))),
  Sigmoid: unary((ctx) => ctx.b.mul(ctx.output(0), ctx.b.sub(ctx.b.f32(1), ctx.output(0)))),
  Sin: unary((ctx) => ctx.b.op('Cos', [ctx.input(0)])),
  Cos: unary((ctx) => ctx.b.neg(ctx.b.op('Sin', [ctx.input(0)]))),
  // erf'(x) = 2/sqrt(pi) * exp(-x^2)
  Erf: unary((ctx) => {
    const { b } = ctx;
    const x = ctx.input(0);
    return b.mul(b.f32(2 / Math.sqrt(Math.PI)), b.op('Exp', [b.neg(b.mul(x, x))]));
  }),
  // PyTorch's convention: the gradient at exactly 0 is 0.
  Relu: unary((ctx) => ctx.b.cast(ctx.b.op('Greater', [ctx.output(0), ctx.b.f32(0)]), 1)),
  LeakyRelu: unary((ctx) => {
    const { b } = ctx;
    const alpha = ctx.attrFloat('alpha', 0.01);
    return b.where(b.op('Greater', [ctx.input(0), b.f32(0)]), b.f32(1), b.f32(alpha));
  }),
  Elu: unary((ctx) => {
    const { b } = ctx;
    const alpha = ctx.attrFloat('alpha', 1);
    // for x <= 0: y = alpha (e^x - 1), so y' = y + alpha
    return b.where(b.op('Greater', [ctx.input(0), b.f32(0)]), b.f32(1), b.add(ctx.output(0), b.f32(alpha)));
  }),
  Softplus: unary((ctx) => ctx.b.op('Sigmoid', [ctx.input(0)])),
  // HardSigmoid: y = max(0, min(1, alpha x + beta)); y' = alpha inside the linear part.
  HardSigmoid: unary((ctx) => {
    const { b } = ctx;
    const alpha = ctx.attrFloat('alpha', 0.2);
    const beta = ctx.attrFloat('beta', 0.5);
    const z = b.add(b.mul(ctx.input(0), b.f32(alpha)), b.f32(beta));
    const inside = b.op('And', [b.op('Greater', [z, b.f32(0)]), b.op('Less', [z, b.f32(1)])]);
    return b.where(inside, b.f32(alpha), b.f32(0));
  }),
  // HardSwish: y = x * hardsigmoid(x) with alpha 1/6, beta 0.5; y' = x/3 + 0.5 inside (-3, 3).
  HardSwish: unary((ctx) => {
    const { b } = ctx;
    const x = ctx.input(0);
    const slope = b.add(b.mul(x, b.f32(1 / 3)), b.f32(0.5));
    const above = b.where(b.op('GreaterOrEqual', [x, b.f32(3)]), b.f32(1), slope);
    return b.where(b.op('LessOrEqual', [x, b.f32(-3)]), b.f32(0), above);
  }),
  // Gelu (opset 20): exact y = x Phi(x) => y' = Phi(x) + x phi(x); tanh approximation likewise.
  Gelu: unary((ctx) => {
    const { b } = ctx;
    const x = ctx.input(0);
    if (ctx.attrString('approximate', 'none') === 'tanh') {
      const k = Math.sqrt(2 / Math.PI);
      const x2 = b.mul(x, x);
      const inner = b.mul(b.f32(k), b.add(x, b.mul(b.f32(0.044715), b.mul(x2, x))));
      const t = b.op('Tanh', [inner]);
      const dInner = b.mul(b.f32(k), b.add(b.f32(1), b.mul(b.f32(3 * 0.044715), x2)));
      const sech2 = b.sub(b.f32(1), b.mul(t, t));
      return b.add(b.mul(b.f32(0.5), b.add(b.f32(1), t)), b.mul(b.mul(b.f32(0.5), x), b.mul(sech2, dInner)));
    }
    const cdf = b.mul(b.f32(0.5), b.add(b.f32(1), b.op('Erf', [b.mul(x, b.f32(Math.SQRT1_2))])));
    const pdf = b.mul(b.f32(1 / Math.sqrt(2 * Math.PI)), b.op('Exp', [b.mul(b.f32(-0.5), b.mul(x, x))]));
    return b.add(cdf, b.mul(x, pdf));
  }),
  // Clip: the gradient passes where min <= x <= max (PyTorch's clamp convention).
  Clip: {
    differentiable: [0],
    backward: (ctx) => {
      const { b } = ctx;
      const x = ctx.input(0);
      let pass: string | undefined;
      if (ctx.hasInput(1)) pass = b.op('GreaterOrEqual', [x, ctx.input(1)]);
      if (ctx.hasInput(2)) {
        const upper = b.op('LessOrEqual', [x, ctx.input(2)]);
        pass = pass ? b.op('And', [pass, upper]) : upper;
      }
      // Opset < 11 keeps the bounds in attributes.
      if (ctx.opset < 11 || (!ctx.hasInput(1) && !ctx.hasInput(2))) {
        const min = ctx.attrFloat('min', -Infinity);
        const max = ctx.attrFloat('max', Infinity);
        if (Number.isFinite(min)) pass = b.op('GreaterOrEqual', [x, b.f32(min)]);
        if (Number.isFinite(max)) {
          const upper = b.op('LessOrEqual', [x, b.f32(max)]);
          pass = pass ? b.op('And', [pass, upper]) : upper;
        }
      }
      const dy = ctx.gradOutput(0)!;
      return [pass ? b.where(pass, dy, b.f32(0)) : dy];
    },
  },
  // Where(cond, a, b): the gradient goes to the branch that was selected.
  Where: {
    differentiable: [1, 2],
    backward: (ctx) => {
      const { b } = ctx;
      const dy = ctx.gradOutput(0)!;
      const cond = ctx.input(0);
      const y = ctx.output(0);
      const zero = b.f32(0);
      return [
        undefined,
        ctx.needsGrad(1) ? sumToShape(ctx, b.where(cond, dy, zero), y, ctx.input(1)) : undefined,
        ctx.needsGrad(2) ? sumToShape(ctx, b.where(cond, zero, dy), y, ctx.input(2)) : undefined,
      ];
    },
  },
  // Dropout in inference mode is the identity (training_mode must be false or absent).
  Dropout: {
    differentiable: [0],
    backward: (ctx) => {
      if (ctx.hasInput(2)) {
        const training = ctx.requireConstInts(2, 'training_mode');
        if (training[0] !== 0) ctx.fail('Dropout in training mode is not supported; export the model in eval mode');
      }
      return [ctx.gradOutput(0)];
    },
  },
  // Sum of several inputs (with broadcasting).
  Sum: {
    differentiable: 'all',
    backward: (ctx) => ctx.node.inputs.map((name, i) => (ctx.needsGrad(i) ? sumToShape(ctx, ctx.gradOutput(0)!, ctx.output(0), name) : undefined)),
  },
  // Cast between float types passes the gradient back in the source type.
  Cast: {
    differentiable: [0],
    backward: (ctx) => [ctx.b.op('Cast', [ctx.gradOutput(0)!], { to: attr.int(ctx.facts.dataType(ctx.input(0))) })],
  },
};
