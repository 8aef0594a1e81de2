/**
 * The contract between the differentiation engine and its per-op gradient rules. A rule receives
 * the forward node, the facts about its values and the gradients flowing into its outputs, and
 * emits standard-op nodes through the builder that compute the gradient for each input.
 */
import type { Node, AttributeValue } from '../onnx/types.js';
import type { GraphBuilder } from './builder.js';
import type { ValueFactsTable } from './facts.js';

export interface GradContext {
  readonly node: Node;
  readonly b: GraphBuilder;
  readonly facts: ValueFactsTable;
  /** The default-domain opset of the graph being built. */
  readonly opset: number;
  input(i: number): string;
  output(i: number): string;
  /** True when input `i` exists (optional inputs may be omitted). */
  hasInput(i: number): boolean;
  /** The gradient flowing into output `i`, or undefined when nothing downstream needs it. */
  gradOutput(i: number): string | undefined;
  /** Whether input `i` needs a gradient (it leads back to a trainable parameter). */
  needsGrad(i: number): boolean;
  /**
   * The name of forward output `i`, adding it to the forward node when the model omitted it
   * (e.g. MaxPool's Indices, LayerNormalization's Mean and InvStdDev).
   */
  requireOutput(i: number): string;
  attrInt(name: string, fallback: number): number;
  attrFloat(name: string, fallback: number): number;
  attrString(name: string, fallback: string): string;
  attrInts(name: string): number[] | undefined;
  attr(name: string): AttributeValue | undefined;
  /** Values of a small integer input computed from constants and shapes (axes, steps, pads). */
  constInts(i: number): number[] | undefined;
  /** Like constInts, but a user-facing error when the value is not known before training. */
  requireConstInts(i: number, what: string): number[];
  /** A user-facing error about this node (unsupported attribute combination and the like). */
  fail(message: string): never;
}

export interface GradientRule {
  /** Inputs a gradient can flow through; the rest (shapes, indices, masks) are constants to it. */
  readonly differentiable: readonly number[] | 'all';
  /** Gradients for each input index; undefined where none is needed or none exists. */
  backward(ctx: GradContext): (string | undefined)[];
}

/** Ops whose outputs carry no gradient (shape arithmetic, comparisons, index computations). */
export const NON_DIFFERENTIABLE: GradientRule = {
  differentiable: [],
  backward: () => [],
};
