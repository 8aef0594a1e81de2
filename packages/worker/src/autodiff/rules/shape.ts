import type { GradientRule } from '../rule.js';

export const shapeRules: Record<string, GradientRule> = {};
