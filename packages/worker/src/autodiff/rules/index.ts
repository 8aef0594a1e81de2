/** The table of gradient rules, by default-domain op type. Adding an op = adding one entry here. */
import { NON_DIFFERENTIABLE, type GradientRule } from '../rule.js';
import { elementwiseRules } from './elementwise.js';
import { linearRules } from './linear.js';
import { normalizationRules } from './normalization.js';
import { convRules } from './conv.js';
import { shapeRules } from './shape.js';

/** Ops that only compute shapes, indices, masks or comparisons: gradients stop here. */
const NON_DIFFERENTIABLE_OPS = [
  'Shape', 'Size', 'ConstantOfShape', 'Constant', 'Range', 'EyeLike', 'NonZero',
  'Equal', 'Less', 'LessOrEqual', 'Greater', 'GreaterOrEqual', 'Not', 'And', 'Or', 'Xor',
  'IsNaN', 'IsInf', 'Sign', 'Floor', 'Ceil', 'Round', 'ArgMax', 'ArgMin', 'OneHot',
  'RandomNormal', 'RandomUniform', 'RandomNormalLike', 'RandomUniformLike', 'Bernoulli',
];

const RULES = new Map<string, GradientRule>([
  ...NON_DIFFERENTIABLE_OPS.map((op): [string, GradientRule] => [op, NON_DIFFERENTIABLE]),
  ...Object.entries(elementwiseRules),
  ...Object.entries(linearRules),
  ...Object.entries(normalizationRules),
  ...Object.entries(convRules),
  ...Object.entries(shapeRules),
]);

export function ruleFor(opType: string): GradientRule | undefined {
  return RULES.get(opType);
}

export function supportedOps(): string[] {
  return [...RULES.keys()].sort();
}
