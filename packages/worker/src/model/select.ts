/**
 * Turns a job's fine-tuning spec (train the head only, freeze everything below a layer, or name
 * parameters) into the `trainable` list that buildTrainingArtifacts resolves.
 */
import { DataType, type Model, type Node, isDefaultDomain } from '../onnx/types.js';
import { nodeReads, topologicalOrder } from '../autodiff/graph-utils.js';
import { realInputs } from '../autodiff/probe.js';
import { ruleFor } from '../autodiff/rules/index.js';
import { inspectClassifier, targetOutput } from './head.js';
import { UserError } from '../errors.js';

export interface TrainableSpec {
  /** Exact initializer names or globs, passed through. */
  patterns?: string[];
  /** A node name, an initializer name or a parameter-name prefix: everything computed before it stays frozen. */
  freezeBelow?: string;
  /** Train the classification head only. */
  headOnly?: boolean;
  /** The output the loss reads; the first graph output when absent. */
  output?: string;
}

/**
 * The `trainable` option for buildTrainingArtifacts: exact names or globs, or undefined for
 * "every float32 initializer". When several modes are set (upstream validation should prevent
 * it) headOnly wins over freezeBelow, which wins over patterns.
 *
 * `headParams` are the initializers of a head attachHead just created: they are always trained,
 * because a randomly initialized head that stays frozen is useless.
 */
export function resolveTrainable(model: Model, spec: TrainableSpec | undefined, headParams?: readonly string[]): string[] | undefined {
  const head = [...(headParams ?? [])];
  if (!spec) return undefined;
  if (spec.headOnly) return head.length > 0 ? head : detectedHead(model, spec.output);
  if (spec.freezeBelow !== undefined) return union(freezeBelow(model, spec.freezeBelow, targetOutput(model, spec.output)), head);
  if (spec.patterns && spec.patterns.length > 0) return union(spec.patterns, head);
  return undefined;
}

function union(a: readonly string[], b: readonly string[]): string[] {
  return [...a, ...b.filter((x) => !a.includes(x))];
}

function detectedHead(model: Model, output: string | undefined): string[] {
  const name = targetOutput(model, output);
  const layer = inspectClassifier(model, name);
  if ('problem' in layer) {
    throw new UserError(`spec.trainable.headOnly: cannot tell which layer is the classification head: ${layer.problem}. Attach a head, or name the parameters to train instead`);
  }
  return layer.bias ? [layer.weight, layer.bias] : [layer.weight];
}

/** Characters that end a component of a parameter name ('encoder.linear1' + '.weight'). */
const SEPARATORS = ['.', '/', ':', '_'];

function hasPrefix(name: string, prefix: string): boolean {
  if (prefix === '' || name.length <= prefix.length || !name.startsWith(prefix)) return false;
  return SEPARATORS.includes(name[prefix.length]!) || SEPARATORS.includes(prefix.at(-1)!);
}

/**
 * Freezes every float initializer that only nodes before the first layer `x` names read.
 * Positions come from a topological order, with one adjustment: nodes that compute from
 * parameters alone (PyTorch's Transpose(W) in front of a MatMul, Constants) count as part of the
 * node that uses their result, so "below /encoder/linear1/MatMul" does not freeze linear1.weight.
 */
function freezeBelow(model: Model, x: string, output: string): string[] {
  const g = model.graph;
  const inits = new Map(g.initializers.map((t) => [t.name, t]));
  const order = topologicalOrder(g.nodes, [...realInputs(model).map((i) => i.name), ...inits.keys()]);
  const position = effectivePositions(order, realInputs(model).map((i) => i.name));
  const readers = new Map<string, Node[]>();
  for (const n of order) for (const r of new Set(nodeReads(n))) push(readers, r, n);
  const firstReader = (names: string[]) => Math.min(...names.flatMap((p) => (readers.get(p) ?? []).map((n) => position.get(n)!)));

  let boundary: number | undefined;
  const node = order.find((n) => n.name === x);
  if (node) {
    boundary = position.get(node)!;
  } else {
    const params = inits.has(x) ? [x] : [...inits.keys()].filter((p) => hasPrefix(p, x));
    const nodes = order.filter((n) => hasPrefix(n.name, x));
    if (params.length > 0) boundary = firstReader(params);
    else if (nodes.length > 0) boundary = Math.min(...nodes.map((n) => position.get(n)!));
    if (boundary === Infinity) throw new UserError(`spec.trainable.freezeBelow '${x}': no node reads ${params.length === 1 ? 'this parameter' : 'these parameters'}`);
  }
  if (boundary === undefined) throw new UserError(`spec.trainable.freezeBelow '${x}': no node, parameter or parameter prefix has this name${known(model, order)}`);

  const reachable = differentiableReads(order, output);
  const trainable = g.initializers
    .filter((t) => t.dataType === DataType.FLOAT && reachable.has(t.name))
    .filter((t) => (readers.get(t.name) ?? []).some((n) => position.get(n)! >= boundary!))
    .map((t) => t.name);
  if (trainable.length === 0) throw new UserError(`spec.trainable.freezeBelow '${x}': no trainable parameter is used at or after it; nothing would train`);
  return trainable;
}

/**
 * Each node's index in `order`, except that a node computed without input data takes the
 * earliest position of the nodes that use its results.
 */
function effectivePositions(order: Node[], inputs: string[]): Map<Node, number> {
  const dataDependent = new Set(inputs);
  const fromData = order.map((n) => {
    const dependent = nodeReads(n).some((r) => dataDependent.has(r));
    if (dependent) for (const o of n.outputs) if (o) dataDependent.add(o);
    return dependent;
  });
  const readers = new Map<string, number[]>();
  order.forEach((n, k) => nodeReads(n).forEach((r) => push(readers, r, k)));
  const position = new Array<number>(order.length);
  for (let k = order.length - 1; k >= 0; k--) {
    const users = fromData[k] ? [] : order[k]!.outputs.flatMap((o) => readers.get(o) ?? []).map((u) => position[u]!);
    position[k] = users.length > 0 ? Math.min(...users) : k;
  }
  return new Map(order.map((n, k) => [n, position[k]!]));
}

/**
 * Values that `output` depends on through inputs a gradient rule can differentiate. Listing a
 * parameter outside this set by name (BatchNorm's running statistics, say) would make
 * buildTrainingArtifacts reject it as "does not influence the loss".
 */
function differentiableReads(order: Node[], output: string): Set<string> {
  const needed = new Set([output]);
  for (let k = order.length - 1; k >= 0; k--) {
    const node = order[k]!;
    if (!node.outputs.some((o) => needed.has(o))) continue;
    const rule = isDefaultDomain(node.domain) ? ruleFor(node.opType) : undefined;
    // Ops without a rule keep every input: the engine then names the op that blocks training.
    const diff = !rule || rule.differentiable === 'all' ? node.inputs.map((_, i) => i) : rule.differentiable;
    for (const i of diff) if (node.inputs[i]) needed.add(node.inputs[i]!);
    const own = new Set(node.inputs);
    for (const r of nodeReads(node)) if (!own.has(r)) needed.add(r); // subgraph reads
  }
  return needed;
}

function push<T>(map: Map<string, T[]>, key: string, value: T): void {
  const list = map.get(key);
  if (list) list.push(value);
  else map.set(key, [value]);
}

function known(model: Model, order: Node[]): string {
  const floats = model.graph.initializers.filter((t) => t.dataType === DataType.FLOAT).map((t) => t.name);
  const floatSet = new Set(floats);
  const nodes = order.filter((n) => n.name && nodeReads(n).some((r) => floatSet.has(r))).map((n) => n.name);
  const prefixes = [...new Set(floats.map((p) => p.replace(/[./:_][^./:_]*$/, '')))];
  const list = (xs: string[], n: number) => xs.slice(0, n).join(', ') + (xs.length > n ? ', …' : '');
  const parts = [nodes.length > 0 ? `nodes include: ${list(nodes, 5)}` : '', prefixes.length > 0 ? `parameter prefixes include: ${list(prefixes, 8)}` : ''];
  const shown = parts.filter(Boolean).join('; ');
  return shown ? ` (${shown})` : '';
}
