/**
 * Splits a training graph into stages that run one after another, so that a bucket's gradients
 * leave onnxruntime (and can be all-reduced) while the next stage computes the rest.
 * onnxruntime-node returns all of a run's outputs at once; cutting the graph is how the backward
 * pass hands out gradients early, as PyTorch DDP's autograd hooks do.
 *
 * Stage s holds every node needed for its requested outputs that no earlier stage holds. Values
 * an earlier stage computed and a later one reads are "carried": outputs of the first, inputs of
 * the second. Every node runs exactly once, with the same inputs, so the results equal the whole
 * graph's. Constant-like nodes (no inputs) are copied into each stage that reads them rather
 * than carried.
 */
import { DataType, type AttributeValue, type Graph, type Model, type Node, type ValueInfo } from '../onnx/types.js';

export interface StagePlan {
  /** The nodes this stage runs, in the graph's order. */
  nodes: Node[];
  /** Graph inputs it reads (model inputs, labels, parameters), in the graph's input order. */
  graphInputs: string[];
  /** Values an earlier stage computed that it reads. */
  carriedIn: string[];
  /** Initializers its nodes read. */
  initializers: string[];
  /** The outputs it was asked for (gradients, the loss). */
  outputs: string[];
  /** Values it computes that later stages read. */
  carriedOut: string[];
}

/** Whether a graph can be cut: subgraph attributes (If, Loop, Scan) read outer values implicitly. */
export function canSplit(graph: Graph): boolean {
  const hasGraphs = (a: AttributeValue): boolean =>
    a.type === 'graph' || (a.type === 'opaque' && ((a.value as { graphs?: unknown[] } | null)?.graphs?.length ?? 0) > 0);
  return !graph.nodes.some((n) => Object.values(n.attributes).some(hasGraphs));
}

/** Plans one stage per entry of `stageOutputs` (names of graph outputs), in that order. */
export function planStages(graph: Graph, stageOutputs: readonly (readonly string[])[]): StagePlan[] {
  if (!canSplit(graph)) throw new Error('planStages: the graph has subgraph attributes; run it whole');
  const producer = new Map<string, number>();
  graph.nodes.forEach((node, i) => node.outputs.forEach((o) => o && producer.set(o, i)));
  const graphInputs = new Set(graph.inputs.map((i) => i.name));
  const initializers = new Set(graph.initializers.map((t) => t.name));
  const outputs = new Set(graph.outputs.map((o) => o.name));

  const stageOf = new Int32Array(graph.nodes.length).fill(-1);
  const constantsIn = stageOutputs.map(() => new Set<number>());
  stageOutputs.forEach((wanted, s) => {
    const stack: string[] = [];
    for (const name of wanted) {
      if (!outputs.has(name)) throw new Error(`planStages: '${name}' is not an output of the graph`);
      stack.push(name);
    }
    while (stack.length > 0) {
      const at = producer.get(stack.pop()!);
      if (at === undefined) continue; // a graph input or an initializer
      const node = graph.nodes[at]!;
      if (node.inputs.every((i) => i === '')) constantsIn[s]!.add(at);
      else if (stageOf[at] === -1) {
        stageOf[at] = s;
        for (const input of node.inputs) if (input) stack.push(input);
      }
    }
  });

  const plans: StagePlan[] = stageOutputs.map((wanted) => ({ nodes: [], graphInputs: [], carriedIn: [], initializers: [], outputs: [...wanted], carriedOut: [] }));
  const carriedOut = plans.map(() => new Set<string>());
  stageOutputs.forEach((_, s) => {
    const plan = plans[s]!;
    const inside = (at: number | undefined) => at !== undefined && (stageOf[at] === s || constantsIn[s]!.has(at));
    const reads = new Set<string>();
    graph.nodes.forEach((node, at) => {
      if (!inside(at)) return;
      plan.nodes.push(node);
      for (const input of node.inputs) if (input) reads.add(input);
    });
    // An output computed by an earlier stage is passed through this one.
    for (const name of plan.outputs) if (!inside(producer.get(name))) reads.add(name);
    const carriedIn = new Set<string>();
    for (const name of reads) {
      const at = producer.get(name);
      if (inside(at)) continue;
      if (at !== undefined) {
        const from = stageOf[at]!;
        if (from < 0 || from >= s) throw new Error(`planStages: '${name}' is needed by stage ${s} but computed by no earlier stage`);
        carriedIn.add(name);
        carriedOut[from]!.add(name);
      } else if (graphInputs.has(name)) {
        // collected below, in the graph's input order
      } else if (initializers.has(name)) {
        plan.initializers.push(name);
      } else {
        throw new Error(`planStages: stage ${s} reads '${name}', which nothing defines`);
      }
    }
    plan.graphInputs = graph.inputs.map((i) => i.name).filter((n) => reads.has(n));
    plan.carriedIn = [...carriedIn];
  });
  plans.forEach((plan, s) => (plan.carriedOut = [...carriedOut[s]!].filter((n) => !plan.outputs.includes(n))));
  return plans;
}

/**
 * The ONNX model of one stage. `carriedTypes` gives the element type of each carried input
 * (known from the earlier stage's session); carried outputs are left untyped for onnxruntime to infer.
 */
export function stageModel(whole: Model, plan: StagePlan, carriedTypes: ReadonlyMap<string, DataType>, index: number): Model {
  const g = whole.graph;
  const inputInfo = new Map(g.inputs.map((i) => [i.name, i]));
  const outputInfo = new Map(g.outputs.map((o) => [o.name, o]));
  const keepInit = new Set(plan.initializers);
  const defined = new Set(plan.nodes.flatMap((n) => n.outputs));
  const carriedIn: ValueInfo[] = plan.carriedIn.map((name) => {
    const elemType = carriedTypes.get(name);
    if (elemType === undefined || elemType === DataType.UNDEFINED) throw new Error(`stageModel: no element type for carried value '${name}'`);
    return { name, elemType };
  });
  const graph: Graph = {
    name: `${g.name}_stage${index}`,
    nodes: plan.nodes,
    inputs: [...plan.graphInputs.map((n) => inputInfo.get(n)!), ...carriedIn],
    outputs: [
      ...plan.outputs.map((n) => outputInfo.get(n)!),
      ...plan.carriedOut.map((name): ValueInfo => ({ name, elemType: DataType.UNDEFINED })),
    ],
    initializers: g.initializers.filter((t) => keepInit.has(t.name)),
    valueInfo: g.valueInfo.filter((v) => defined.has(v.name) && !plan.carriedOut.includes(v.name)),
  };
  return { ...whole, graph };
}
