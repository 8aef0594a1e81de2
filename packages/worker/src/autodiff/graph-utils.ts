/** Graph walking helpers shared by the differentiation engine and artifact writers. */
import type { Graph, Node } from '../onnx/types.js';
import { UserError } from '../errors.js';

/** Names a node reads, including outer-scope values its subgraphs (If/Loop/Scan bodies) read. */
export function nodeReads(node: Node): string[] {
  const reads = node.inputs.filter((i) => i !== '');
  for (const a of Object.values(node.attributes)) {
    if (a.type === 'graph') reads.push(...graphOuterReads(a.value));
  }
  return reads;
}

function graphOuterReads(g: Graph): string[] {
  const local = new Set<string>([...g.inputs.map((i) => i.name), ...g.initializers.map((t) => t.name)]);
  for (const n of g.nodes) for (const o of n.outputs) local.add(o);
  return g.nodes.flatMap(nodeReads).filter((name) => !local.has(name));
}

/** Nodes in an order where every value is produced before it is read (Kahn's algorithm, stable). */
export function topologicalOrder(nodes: Node[], available: Iterable<string>): Node[] {
  const ready = new Set(available);
  ready.add('');
  const producer = new Map<string, number>();
  nodes.forEach((n, i) => n.outputs.forEach((o) => o && producer.set(o, i)));
  // Dependencies are producer nodes, deduplicated: a node may read several outputs of one producer.
  const remaining = nodes.map((n) => new Set(nodeReads(n).filter((r) => !ready.has(r) && producer.has(r)).map((r) => producer.get(r)!)));
  const consumers = new Map<number, number[]>();
  remaining.forEach((deps, i) => {
    for (const p of deps) consumers.set(p, [...(consumers.get(p) ?? []), i]);
  });
  const queue: number[] = [];
  remaining.forEach((deps, i) => deps.size === 0 && queue.push(i));
  const order: Node[] = [];
  const emitted = new Set<number>();
  while (queue.length > 0) {
    queue.sort((a, b) => a - b);
    const i = queue.shift()!;
    emitted.add(i);
    order.push(nodes[i]!);
    for (const c of consumers.get(i) ?? []) {
      remaining[c]!.delete(i);
      if (remaining[c]!.size === 0 && !emitted.has(c)) queue.push(c);
    }
  }
  if (order.length !== nodes.length) {
    const stuck = nodes.filter((_, i) => !emitted.has(i)).map((n) => n.name || n.opType);
    throw new UserError(`the graph has a cycle through node(s) ${stuck.slice(0, 5).join(', ')}`);
  }
  return order;
}

/** Keeps only the nodes that contribute to `outputs`. */
export function pruneDeadNodes(nodes: Node[], outputs: Iterable<string>): Node[] {
  const needed = new Set(outputs);
  const kept: Node[] = [];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const node = nodes[i]!;
    if (node.outputs.some((o) => needed.has(o))) {
      kept.push(node);
      for (const r of nodeReads(node)) needed.add(r);
    }
  }
  return kept.reverse();
}

/** Every value name read by `nodes`. */
export function valuesRead(nodes: Node[]): Set<string> {
  const names = new Set<string>();
  for (const n of nodes) for (const r of nodeReads(n)) names.add(r);
  return names;
}
