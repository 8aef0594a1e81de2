/**
 * Gradient buckets, as in PyTorch DDP: parameters grouped in the order the backward pass
 * finishes their gradients (the last layers first), so the first bucket can be all-reduced while
 * the backward pass is still computing the earlier layers' gradients.
 */
import type { Graph } from '../onnx/types.js';
import { gradName, type ParameterInfo } from '../autodiff/training-graph.js';

/** Default bucket size: a bucket closes once it holds at least this many gradient bytes. */
export const DEFAULT_BUCKET_BYTES = 4 << 20;

/** A last bucket under this fraction of the cap joins the one before (not worth its own stage and all-reduce). */
const MERGE_TAIL_FRACTION = 1 / 16;

/**
 * The indices of `params` in the order the training graph finishes their gradients: by the
 * position of the node that computes each `<param>_grad` output, through the Identity that
 * renames it (the order of the graph's nodes is a valid execution order).
 */
export function gradientReadyOrder(graph: Graph, params: readonly ParameterInfo[]): number[] {
  const producerIndex = new Map<string, number>();
  graph.nodes.forEach((node, i) => node.outputs.forEach((o) => o && producerIndex.set(o, i)));
  const position = (name: string): number => {
    let at = producerIndex.get(name);
    if (at === undefined) throw new Error(`the training graph has no node computing '${name}'`);
    // Follow renames back to the node that actually computes the value.
    for (let node = graph.nodes[at]!; node.opType === 'Identity' && producerIndex.has(node.inputs[0]!); node = graph.nodes[at]!) {
      at = producerIndex.get(node.inputs[0]!)!;
    }
    return at;
  };
  const positions = params.map((p) => position(gradName(p.name)));
  return params.map((_, i) => i).sort((a, b) => positions[a]! - positions[b]! || a - b);
}

/**
 * Groups parameter indices into buckets in gradient-ready order: a bucket closes once it holds
 * at least `capBytes` of float32 gradients; a last bucket under 1/16 of that joins the one before.
 */
export function planBuckets(order: readonly number[], params: readonly ParameterInfo[], capBytes = DEFAULT_BUCKET_BYTES): number[][] {
  if (!(capBytes > 0)) throw new Error(`bucket size must be > 0 bytes, got ${capBytes}`);
  const bytes = (i: number): number => 4 * params[i]!.dims.reduce((a, b) => a * b, 1);
  const buckets: number[][] = [];
  let current: number[] = [];
  let size = 0;
  for (const i of order) {
    current.push(i);
    size += bytes(i);
    if (size >= capBytes) {
      buckets.push(current);
      current = [];
      size = 0;
    }
  }
  if (current.length > 0) buckets.push(current);
  const last = buckets.at(-1);
  if (buckets.length > 1 && last!.reduce((sum, i) => sum + bytes(i), 0) < capBytes * MERGE_TAIL_FRACTION) {
    buckets.pop();
    buckets.at(-1)!.push(...last!);
  }
  return buckets;
}
