/**
 * Reverse-mode differentiation of an ONNX graph: from the loss back to each trainable
 * initializer, through the per-op rules in rules/. Only nodes on a float path from a trainable
 * parameter to the loss are differentiated; shape arithmetic, integer math and frozen branches
 * are left to the forward graph (where ONNX Runtime folds what is constant).
 */
import { type Node, type AttributeValue, isDefaultDomain, isFloatType } from '../onnx/types.js';
import { GraphBuilder } from './builder.js';
import { ValueFactsTable } from './facts.js';
import type { GradContext, GradientRule } from './rule.js';
import { ruleFor } from './rules/index.js';
import { nodeReads } from './graph-utils.js';
import { UserError } from '../errors.js';

export interface BackwardInput {
  /** Forward nodes in topological order (copies: rules may add outputs to them). */
  nodes: Node[];
  facts: ValueFactsTable;
  opset: number;
  /** Trainable parameter names. */
  params: readonly string[];
  /** The value whose gradient seeds the backward pass, and that gradient. */
  seed: { value: string; grad: string };
  builder: GraphBuilder;
}

/** Emits the backward pass; returns each parameter's gradient value. */
export function emitBackward(input: BackwardInput): Map<string, string> {
  const { nodes, facts, opset, params, seed, builder: b } = input;
  const paramSet = new Set(params);

  // 1. Forward: values that depend on a trainable parameter through differentiable inputs.
  const active = new Set<string>(params);
  for (const node of nodes) {
    const rule = ruleForNode(node);
    const carries = differentiableInputs(node, rule).some((i) => active.has(node.inputs[i]!));
    if (!carries) continue;
    for (const out of node.outputs) if (out && facts.has(out) && isFloatType(facts.dataType(out))) active.add(out);
  }

  // 2. Backward: values the seed depends on.
  const needed = new Set<string>([seed.value]);
  for (let k = nodes.length - 1; k >= 0; k--) {
    const node = nodes[k]!;
    if (node.outputs.some((o) => needed.has(o))) for (const r of nodeReads(node)) needed.add(r);
  }

  const onPath = (node: Node) => node.outputs.some((o) => active.has(o) && needed.has(o));
  const unsupported = nodes.filter((n) => onPath(n) && !ruleForNode(n));
  if (unsupported.length > 0) throw unsupportedError(unsupported, nodes, paramSet, active);

  // 3. Reverse sweep.
  const contributions = new Map<string, string[]>([[seed.value, [seed.grad]]]);
  const gradOf = (value: string): string | undefined => {
    const parts = contributions.get(value);
    if (!parts || parts.length === 0) return undefined;
    if (parts.length === 1) return parts[0];
    const sum = b.op('Sum', parts, {}, 'grad_sum');
    contributions.set(value, [sum]);
    return sum;
  };

  for (let k = nodes.length - 1; k >= 0; k--) {
    const node = nodes[k]!;
    if (!onPath(node)) continue;
    const rule = ruleForNode(node)!;
    const outputGrads = node.outputs.map((o) => (o && active.has(o) ? gradOf(o) : undefined));
    if (outputGrads.every((g) => g === undefined)) continue;
    const diffInputs = new Set(differentiableInputs(node, rule));
    const needsGrad = node.inputs.map((name, i) => diffInputs.has(i) && name !== '' && active.has(name));
    const ctx = makeContext(node, b, facts, opset, outputGrads, needsGrad);
    const inputGrads = rule.backward(ctx);
    node.inputs.forEach((name, i) => {
      const g = inputGrads[i];
      if (!needsGrad[i] || g === undefined) return;
      const list = contributions.get(name) ?? [];
      list.push(g);
      contributions.set(name, list);
    });
  }

  const grads = new Map<string, string>();
  for (const p of params) {
    const g = gradOf(p);
    if (g !== undefined) grads.set(p, g);
  }
  return grads;
}

function ruleForNode(node: Node): GradientRule | undefined {
  return isDefaultDomain(node.domain) ? ruleFor(node.opType) : undefined;
}

function differentiableInputs(node: Node, rule: GradientRule | undefined): number[] {
  if (!rule) return node.inputs.map((_, i) => i);
  if (rule.differentiable === 'all') return node.inputs.map((_, i) => i);
  return rule.differentiable.filter((i) => i < node.inputs.length);
}

function unsupportedError(unsupported: Node[], nodes: Node[], params: Set<string>, active: Set<string>): UserError {
  const producer = new Map<string, Node>();
  for (const n of nodes) for (const o of n.outputs) producer.set(o, n);
  const lines = unsupported.slice(0, 5).map((node) => {
    const upstream = paramsUpstream(node, producer, params, active);
    const shown = upstream.slice(0, 6).join(', ') + (upstream.length > 6 ? `, … (${upstream.length} in all)` : '');
    const domain = isDefaultDomain(node.domain) ? '' : `${node.domain}.`;
    return `op ${domain}${node.opType} (node '${node.name || node.outputs[0]}') has no gradient rule; parameters that need it: ${shown}`;
  });
  const more = unsupported.length > 5 ? `; and ${unsupported.length - 5} more node(s)` : '';
  return new UserError(`${lines.join('; ')}${more}. Freeze those parameters (leave them out of --trainable) to train the rest.`);
}

/** Trainable parameters that reach `node` along values that carry gradients. */
function paramsUpstream(node: Node, producer: Map<string, Node>, params: Set<string>, active: Set<string>): string[] {
  const found = new Set<string>();
  const seen = new Set<string>();
  const stack = nodeReads(node).filter((v) => active.has(v));
  while (stack.length > 0) {
    const v = stack.pop()!;
    if (seen.has(v)) continue;
    seen.add(v);
    if (params.has(v)) found.add(v);
    const p = producer.get(v);
    if (p) stack.push(...nodeReads(p).filter((r) => active.has(r)));
  }
  return [...found].sort();
}

function makeContext(
  node: Node,
  b: GraphBuilder,
  facts: ValueFactsTable,
  opset: number,
  outputGrads: (string | undefined)[],
  needsGrad: boolean[],
): GradContext {
  const where = `node '${node.name || node.outputs[0]}' (${node.opType})`;
  const fail = (message: string): never => {
    throw new UserError(`${where}: ${message}`);
  };
  const attrOf = (name: string): AttributeValue | undefined => node.attributes[name];
  const ctx: GradContext = {
    node,
    b,
    facts,
    opset,
    input: (i) => {
      const name = node.inputs[i];
      if (!name) return fail(`input ${i} is missing`);
      return name;
    },
    output: (i) => {
      const name = node.outputs[i];
      if (!name) return fail(`output ${i} is missing`);
      return name;
    },
    hasInput: (i) => Boolean(node.inputs[i]),
    gradOutput: (i) => outputGrads[i],
    needsGrad: (i) => needsGrad[i] ?? false,
    requireOutput: (i) => {
      while (node.outputs.length <= i) node.outputs.push('');
      if (!node.outputs[i]) node.outputs[i] = b.fresh(`${node.name || node.opType}_out${i}`);
      return node.outputs[i]!;
    },
    attr: attrOf,
    attrInt: (name, fallback) => {
      const a = attrOf(name);
      return a?.type === 'int' ? a.value : fallback;
    },
    attrFloat: (name, fallback) => {
      const a = attrOf(name);
      return a?.type === 'float' ? a.value : a?.type === 'int' ? a.value : fallback;
    },
    attrString: (name, fallback) => {
      const a = attrOf(name);
      return a?.type === 'string' ? a.value : fallback;
    },
    attrInts: (name) => {
      const a = attrOf(name);
      return a?.type === 'ints' ? a.value : undefined;
    },
    constInts: (i) => {
      const name = node.inputs[i];
      return name ? facts.ints(name) : undefined;
    },
    requireConstInts: (i, what) => {
      const name = node.inputs[i];
      const v = name ? facts.ints(name) : undefined;
      if (!v) return fail(`its ${what} (input ${i}) must be known before training (a constant or computed from shapes)`);
      return v;
    },
    fail,
  };
  return ctx;
}
