import type { GradientRule } from '../rule.js';

export const normalizationRules: Record<string, GradientRule> = {};
