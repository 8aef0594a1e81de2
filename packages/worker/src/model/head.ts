/**
 * Classification heads for fine-tuning: find the linear layer that produces a model's class
 * scores and swap it for a freshly initialized one with a new number of classes ('replace'), or
 * put a new linear layer after an output such as pooled features ('append').
 *
 * Every function here returns a new Model and leaves its argument alone. Unchanged tensors are
 * shared with the input model, not copied (they can be gigabytes): treat both as immutable.
 */
import { DataType, type AttributeValue, type Dim, type Model, type Node, type TensorData, type ValueInfo, isDefaultDomain } from '../onnx/types.js';
import { nodeReads } from '../autodiff/graph-utils.js';
import { probeValueFacts } from '../autodiff/probe.js';
import { UserError } from '../errors.js';

export type HeadMode = 'replace' | 'append';

export interface AttachHeadOptions {
  /** Number of classes the new head scores. */
  numClasses: number;
  mode: HeadMode;
  /** Seeds the initialization: the same seed gives the same head, byte for byte. */
  seed: number;
  /** The model output to work on; the first graph output when absent. */
  output?: string;
}

export interface AttachedHead {
  model: Model;
  /** The new head's trainable initializers: the weight, then the bias when there is one. */
  headParams: string[];
  /** 'replace' only: the old head's initializers, removed from the model. */
  replaced?: string[];
  /** The graph output that carries the new class scores (the first output after 'append'). */
  output: string;
}

/** A linear layer that computes a graph output: Gemm, or MatMul (+ Add of a bias initializer). */
export interface ClassifierLayer {
  kind: 'gemm' | 'matmul';
  /** The Gemm or MatMul node. */
  node: Node;
  /** The Add that adds the bias to the MatMul's result. */
  biasAdd?: Node;
  /** The Transpose between the weight and the node (PyTorch exports Linear on N-D inputs as MatMul(x, Transpose(W)) + b). */
  weightTranspose?: Node;
  weight: string;
  bias?: string;
  /** True when the weight is stored [out, in] (PyTorch's layout), false for [in, out]. */
  outFirst: boolean;
  inFeatures: number;
  outFeatures: number;
  /** The layer's result, then the Identity/Flatten pass-throughs, ending with the graph output. */
  path: string[];
  output: string;
}

/** The layer's description, or why the output is not computed by a recognizable linear layer. */
export type ClassifierInspection = ClassifierLayer | { problem: string };

export async function attachHead(model: Model, options: AttachHeadOptions): Promise<AttachedHead> {
  const { numClasses, seed, mode } = options;
  if (!Number.isSafeInteger(numClasses) || numClasses < 1) throw new UserError(`head: numClasses must be a positive integer, got ${numClasses}`);
  if (!Number.isSafeInteger(seed)) throw new UserError(`head: seed must be an integer, got ${seed}`);
  const output = targetOutput(model, options.output);
  if (mode === 'replace') return replaceHead(model, findClassifier(model, output), numClasses, seed);
  if (mode === 'append') return appendHead(model, output, numClasses, seed);
  throw new UserError(`head: unknown mode '${String(mode)}' (expected 'replace' or 'append')`);
}

/** The classification layer behind `output` (default: the first graph output); a UserError when there is none. */
export function findClassifier(model: Model, output?: string): ClassifierLayer {
  const name = targetOutput(model, output);
  const found = inspectClassifier(model, name);
  if ('problem' in found) {
    throw new UserError(`cannot replace the classification head: ${found.problem}. Use head mode 'append' to add a new linear head after output '${name}' instead`);
  }
  return found;
}

export function targetOutput(model: Model, output: string | undefined): string {
  const outputs = model.graph.outputs.map((o) => o.name);
  const name = output ?? outputs[0];
  if (name === undefined) throw new UserError('the model has no outputs');
  if (!outputs.includes(name)) throw new UserError(`output '${name}': the model has no output of that name (outputs: ${outputs.join(', ')})`);
  return name;
}

// ---------------------------------------------------------------------------------------------
// Detection

interface GraphIndex {
  producer: Map<string, Node>;
  inits: Map<string, TensorData>;
}

function indexGraph(model: Model): GraphIndex {
  const producer = new Map<string, Node>();
  for (const n of model.graph.nodes) for (const o of n.outputs) if (o) producer.set(o, n);
  return { producer, inits: new Map(model.graph.initializers.map((t) => [t.name, t])) };
}

const describe = (n: Node) => `${n.opType} node '${n.name || n.outputs[0]}'`;

/**
 * Walks back from `output` through Identity and Flatten nodes only: anything that reshapes or
 * transforms the scores (Reshape, Softmax, ...) would no longer fit a layer with another class count.
 */
export function inspectClassifier(model: Model, output: string): ClassifierInspection {
  const g = indexGraph(model);
  const path = [output];
  const passes: Node[] = [];
  let value = output;
  for (;;) {
    const p = g.producer.get(value);
    if (!p || !isDefaultDomain(p.domain) || (p.opType !== 'Identity' && p.opType !== 'Flatten')) break;
    if (passes.includes(p)) return { problem: `output '${output}' is computed in a cycle` };
    passes.push(p);
    value = p.inputs[0] ?? '';
    path.unshift(value);
  }
  const via = passes.length > 0 ? ` (through ${passes.map(describe).join(', ')})` : '';
  const layer = g.producer.get(value);
  if (!layer) {
    const what = g.inits.has(value) ? 'an initializer' : 'a graph input';
    return { problem: `output '${output}' is ${what}${via}, not the result of a layer` };
  }
  let found: ClassifierInspection;
  if (isDefaultDomain(layer.domain) && layer.opType === 'Gemm') found = gemmLayer(g, layer, path, output);
  else if (isDefaultDomain(layer.domain) && (layer.opType === 'MatMul' || layer.opType === 'Add')) found = matMulLayer(g, layer, path, output);
  else {
    const op = isDefaultDomain(layer.domain) ? describe(layer) : `${layer.domain}.${describe(layer)}`;
    return { problem: `output '${output}' is produced by ${op}${via}; expected a linear layer (Gemm, or MatMul plus a bias Add)` };
  }
  if ('problem' in found) return found;
  // Flatten(axis=1) of Gemm's 2-D result changes nothing; any other Flatten merges the class axis.
  for (const f of passes.filter((p) => p.opType === 'Flatten')) {
    const axis = intAttr(f, 'axis', 1);
    if (found.kind !== 'gemm' || (axis !== 1 && axis !== -1)) {
      return { problem: `${describe(f)} between the ${describe(found.node)} and output '${output}' reshapes the class scores` };
    }
  }
  return found;
}

type WeightRef = { weight: string; transpose?: Node } | { problem: string };

/** A float32 2-D weight initializer, used directly or through a 2-D Transpose. */
function weightOf(g: GraphIndex, name: string | undefined, node: Node): WeightRef {
  let weight = name ?? '';
  let transpose: Node | undefined;
  const p = g.producer.get(weight);
  if (!g.inits.has(weight) && p?.opType === 'Transpose' && isDefaultDomain(p.domain) && g.inits.has(p.inputs[0] ?? '')) {
    const perm = p.attributes['perm'];
    if (perm && !(perm.type === 'ints' && perm.value.length === 2 && perm.value[0] === 1 && perm.value[1] === 0)) {
      return { problem: `the weight of ${describe(node)} goes through ${describe(p)} with an unexpected perm` };
    }
    transpose = p;
    weight = p.inputs[0]!;
  }
  const t = g.inits.get(weight);
  if (!t) return { problem: `${describe(node)} multiplies by a computed value ('${name}'), not a weight initializer` };
  if (t.dataType !== DataType.FLOAT) return { problem: `the weight '${t.name}' of ${describe(node)} is not float32` };
  if (t.dims.length !== 2) return { problem: `the weight '${t.name}' of ${describe(node)} has shape [${t.dims.join(', ')}], expected 2-D` };
  return transpose ? { weight, transpose } : { weight };
}

function gemmLayer(g: GraphIndex, node: Node, path: string[], output: string): ClassifierInspection {
  const w = weightOf(g, node.inputs[1], node);
  if ('problem' in w) return w;
  // Gemm multiplies by B^T when transB=1; a Transpose in front of B flips that once more.
  const transB = intAttr(node, 'transB', 0) === 1;
  const outFirst = w.transpose ? !transB : transB;
  const [d0, d1] = g.inits.get(w.weight)!.dims as [number, number];
  const layer: ClassifierLayer = {
    kind: 'gemm',
    node,
    weight: w.weight,
    outFirst,
    inFeatures: outFirst ? d1 : d0,
    outFeatures: outFirst ? d0 : d1,
    path,
    output,
  };
  if (w.transpose) layer.weightTranspose = w.transpose;
  const c = node.inputs[2];
  if (c) {
    const bias = g.inits.get(c);
    if (!bias || bias.dataType !== DataType.FLOAT) return { problem: `the bias input '${c}' of ${describe(node)} is not a float32 initializer` };
    layer.bias = c;
  }
  return layer;
}

function matMulLayer(g: GraphIndex, node: Node, path: string[], output: string): ClassifierInspection {
  let matMul = node;
  let biasAdd: Node | undefined;
  let bias: TensorData | undefined;
  if (node.opType === 'Add') {
    // PyTorch writes Add(bias, MatMul(...)); other exporters put the bias second.
    const side = [0, 1].find((i) => {
      const p = g.producer.get(node.inputs[i] ?? '');
      return p?.opType === 'MatMul' && isDefaultDomain(p.domain) && g.inits.get(node.inputs[1 - i] ?? '')?.dataType === DataType.FLOAT;
    });
    if (side === undefined) return { problem: `output '${output}' is produced by ${describe(node)}, which does not add a float32 bias initializer to a MatMul` };
    matMul = g.producer.get(node.inputs[side]!)!;
    biasAdd = node;
    bias = g.inits.get(node.inputs[1 - side]!)!;
  }
  const w = weightOf(g, matMul.inputs[1], matMul);
  if ('problem' in w) return w;
  const [d0, d1] = g.inits.get(w.weight)!.dims as [number, number];
  const outFirst = Boolean(w.transpose);
  const outFeatures = outFirst ? d0 : d1;
  if (bias) {
    // The bias must be one value per class, possibly with leading broadcast axes of size 1.
    const last = bias.dims.at(-1) ?? 1;
    if (bias.dims.slice(0, -1).some((d) => d !== 1) || (last !== outFeatures && last !== 1)) {
      return { problem: `the bias '${bias.name}' added by ${describe(node)} has shape [${bias.dims.join(', ')}], not one value per output (${outFeatures})` };
    }
  }
  const layer: ClassifierLayer = {
    kind: 'matmul',
    node: matMul,
    weight: w.weight,
    outFirst,
    inFeatures: outFirst ? d1 : d0,
    outFeatures,
    path: biasAdd ? [matMul.outputs[0]!, ...path] : path,
    output,
  };
  if (biasAdd) layer.biasAdd = biasAdd;
  if (bias) layer.bias = bias.name;
  if (w.transpose) layer.weightTranspose = w.transpose;
  return layer;
}

function intAttr(node: Node, name: string, fallback: number): number {
  const a = node.attributes[name];
  return a?.type === 'int' ? a.value : fallback;
}

// ---------------------------------------------------------------------------------------------
// Replace

function replaceHead(model: Model, layer: ClassifierLayer, numClasses: number, seed: number): AttachedHead {
  const graph = model.graph;
  const used = usedNames(model);
  const nodeNames = new Set(graph.nodes.map((n) => n.name));
  // Never reuse the old names: a checkpoint, optimizer state or export keyed by 'fc.weight' must not
  // be mistaken for the new head. 'head.*' when free (the usual nn.Module name), else '<old>_ft'.
  const useHeadNames = !used.has('head.weight') && !(layer.bias && used.has('head.bias'));
  const weightName = claim(used, useHeadNames ? 'head.weight' : `${layer.weight}_ft`);
  const biasName = layer.bias ? claim(used, useHeadNames ? 'head.bias' : `${layer.bias}_ft`) : undefined;

  const init = linearInit(seed, layer.inFeatures);
  const weight: TensorData = {
    name: weightName,
    dataType: DataType.FLOAT,
    dims: layer.outFirst ? [numClasses, layer.inFeatures] : [layer.inFeatures, numClasses],
    values: init(numClasses * layer.inFeatures),
  };
  const added: TensorData[] = [weight];
  if (biasName) {
    const old = graph.initializers.find((t) => t.name === layer.bias)!;
    // Gemm's C broadcasts to [N, classes]; after a MatMul keep the old bias's leading 1-axes.
    const dims = layer.kind === 'gemm' || old.dims.length === 0 ? [numClasses] : [...old.dims.slice(0, -1), numClasses];
    added.push({ name: biasName, dataType: DataType.FLOAT, dims, values: init(numClasses) });
  }

  // Same structure, new tensors: a weight that came through a Transpose gets its own Transpose,
  // so that anything else reading the old one keeps working.
  let weightFeed = weightName;
  let newTranspose: Node | undefined;
  if (layer.weightTranspose) {
    weightFeed = claim(used, `${weightName}_transposed`);
    newTranspose = { ...layer.weightTranspose, name: claim(nodeNames, `${weightName}/Transpose`), inputs: [weightName], outputs: [weightFeed] };
  }
  const nodes: Node[] = [];
  for (const n of graph.nodes) {
    if (n === layer.node) {
      if (newTranspose) nodes.push(newTranspose);
      const inputs = [...n.inputs];
      inputs[1] = weightFeed;
      if (layer.kind === 'gemm' && biasName) inputs[2] = biasName;
      // A fresh nn.Linear has no extra scaling: alpha and beta go back to 1.
      const attributes: Record<string, AttributeValue> =
        layer.kind === 'gemm' ? { ...n.attributes, alpha: { type: 'float', value: 1 }, beta: { type: 'float', value: 1 } } : n.attributes;
      nodes.push({ ...n, inputs, attributes });
    } else if (n === layer.biasAdd) {
      nodes.push({ ...n, inputs: n.inputs.map((i) => (i === layer.bias ? biasName! : i)) });
    } else {
      nodes.push(n);
    }
  }

  // Drop the old Transpose and initializers unless something else (tied weights) still reads them.
  const outputNames = new Set(graph.outputs.map((o) => o.name));
  const stillRead = (ns: Node[]) => new Set(ns.flatMap(nodeReads));
  let read = stillRead(nodes);
  const keptNodes = nodes.filter((n) => n !== layer.weightTranspose || n.outputs.some((o) => read.has(o) || outputNames.has(o)));
  read = stillRead(keptNodes);
  const candidates = [layer.weight, ...(layer.bias ? [layer.bias] : [])];
  const replaced = candidates.filter((name) => !read.has(name) && !outputNames.has(name));
  const removed = new Set([...replaced, ...(keptNodes.length < nodes.length ? layer.weightTranspose!.outputs : [])]);

  // Declared shapes: the layer's result and its pass-throughs now end in numClasses; shapes
  // further downstream (a Softmax's probabilities, ...) are left for ONNX Runtime to infer.
  const onPath = new Set(layer.path);
  const downstream = downstreamOf(keptNodes, layer.path);
  const reshape = (v: ValueInfo): ValueInfo =>
    onPath.has(v.name) && v.shape && v.shape.length > 0 ? { ...v, shape: [...v.shape.slice(0, -1), numClasses] } : v;
  const outputs = graph.outputs.map((v) => (onPath.has(v.name) ? reshape(v) : downstream.has(v.name) ? withoutShape(v) : v));
  const valueInfo = graph.valueInfo.filter((v) => !removed.has(v.name) && (onPath.has(v.name) || !downstream.has(v.name))).map(reshape);

  const result: Model = {
    ...model,
    graph: {
      ...graph,
      nodes: keptNodes,
      inputs: [...graph.inputs.filter((i) => !removed.has(i.name)), ...oldIrInputs(model, added)],
      outputs,
      initializers: [...graph.initializers.filter((t) => !removed.has(t.name)), ...added],
      valueInfo,
    },
  };
  return { model: result, headParams: added.map((t) => t.name), replaced, output: layer.output };
}

/** Before IR version 4 every initializer also had to be declared as a graph input. */
function oldIrInputs(model: Model, added: TensorData[]): ValueInfo[] {
  return model.irVersion < 4 ? added.map((t) => ({ name: t.name, elemType: t.dataType, shape: [...t.dims] })) : [];
}

function withoutShape(v: ValueInfo): ValueInfo {
  const { shape: _dropped, ...rest } = v;
  return rest;
}

/** Values computed from `roots` (excluding the roots themselves). */
function downstreamOf(nodes: Node[], roots: string[]): Set<string> {
  const reached = new Set(roots);
  const out = new Set<string>();
  let grew = true;
  while (grew) {
    grew = false;
    for (const n of nodes) {
      if (!nodeReads(n).some((r) => reached.has(r))) continue;
      for (const o of n.outputs) {
        if (o && !reached.has(o)) {
          reached.add(o);
          out.add(o);
          grew = true;
        }
      }
    }
  }
  for (const r of roots) out.delete(r);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Append

async function appendHead(model: Model, output: string, numClasses: number, seed: number): Promise<AttachedHead> {
  const graph = model.graph;
  const declared = graph.outputs.find((o) => o.name === output)!;
  if (declared.elemType !== DataType.FLOAT && declared.elemType !== DataType.UNDEFINED) {
    throw new UserError(`head: output '${output}' is ${DataType[declared.elemType]?.toLowerCase()}; a linear head needs float32 features`);
  }
  const shape = await featureShape(model, declared);
  const features = shape.at(-1) as number;

  const used = usedNames(model);
  const nodeNames = new Set(graph.nodes.map((n) => n.name));
  const newOutput = claim(used, used.has('logits') ? `${output}_head` : 'logits');
  const useHeadNames = !used.has('head.weight') && !used.has('head.bias');
  const weightName = claim(used, useHeadNames ? 'head.weight' : `${newOutput}.weight`);
  const biasName = claim(used, useHeadNames ? 'head.bias' : `${newOutput}.bias`);

  const init = linearInit(seed, features);
  // nn.Linear's layout, [classes, features], whichever node computes it.
  const weight: TensorData = { name: weightName, dataType: DataType.FLOAT, dims: [numClasses, features], values: init(numClasses * features) };
  const bias: TensorData = { name: biasName, dataType: DataType.FLOAT, dims: [numClasses], values: init(numClasses) };

  const nodes: Node[] = [];
  if (shape.length === 2) {
    nodes.push({
      name: claim(nodeNames, 'head/Gemm'),
      opType: 'Gemm',
      domain: '',
      inputs: [output, weightName, biasName],
      outputs: [newOutput],
      attributes: { alpha: { type: 'float', value: 1 }, beta: { type: 'float', value: 1 }, transB: { type: 'int', value: 1 } },
    });
  } else {
    // Gemm is 2-D only; other ranks get PyTorch's own pattern for Linear: x @ W^T + b.
    const transposed = claim(used, `${weightName}_transposed`);
    const product = claim(used, `${newOutput}_matmul`);
    nodes.push(
      { name: claim(nodeNames, 'head/Transpose'), opType: 'Transpose', domain: '', inputs: [weightName], outputs: [transposed], attributes: { perm: { type: 'ints', value: [1, 0] } } },
      { name: claim(nodeNames, 'head/MatMul'), opType: 'MatMul', domain: '', inputs: [output, transposed], outputs: [product], attributes: {} },
      { name: claim(nodeNames, 'head/Add'), opType: 'Add', domain: '', inputs: [product, biasName], outputs: [newOutput], attributes: {} },
    );
  }
  const headOutput: ValueInfo = { name: newOutput, elemType: DataType.FLOAT, shape: [...shape.slice(0, -1), numClasses] };
  const result: Model = {
    ...model,
    graph: {
      ...graph,
      nodes: [...graph.nodes, ...nodes],
      inputs: [...graph.inputs, ...oldIrInputs(model, [weight, bias])],
      // The head's scores come first (training reads the first output by default); the
      // original outputs stay available.
      outputs: [headOutput, ...graph.outputs],
      initializers: [...graph.initializers, weight, bias],
    },
  };
  return { model: result, headParams: [weightName, biasName], output: newOutput };
}

/** The output's shape with a fixed last (feature) dimension: as declared, or seen by running the model once. */
async function featureShape(model: Model, declared: ValueInfo): Promise<Dim[]> {
  const last = declared.shape?.at(-1);
  if (declared.elemType === DataType.FLOAT && typeof last === 'number') return declared.shape!;
  const facts = (await probeValueFacts(model)).get(declared.name);
  if (!facts) throw new Error(`internal: the probe did not report output '${declared.name}'`);
  if (facts.dataType !== DataType.FLOAT) throw new UserError(`head: output '${declared.name}' is ${DataType[facts.dataType]?.toLowerCase()}; a linear head needs float32 features`);
  if (facts.dims.length === 0) throw new UserError(`head: output '${declared.name}' is a scalar; a linear head needs a feature axis`);
  if (facts.dynamic.at(-1)) throw new UserError(`head: the last dimension of output '${declared.name}' changes with the input sizes, so it cannot be the feature axis of a linear head`);
  const sameRank = declared.shape?.length === facts.dims.length;
  return facts.dims.map((d, i) => (facts.dynamic[i] ? (sameRank ? declared.shape![i]! : null) : d));
}

// ---------------------------------------------------------------------------------------------
// Names and initialization

/** Every value and initializer name in the model (node names are a separate namespace). */
function usedNames(model: Model): Set<string> {
  const g = model.graph;
  const names = new Set<string>();
  for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo, ...g.initializers]) names.add(v.name);
  for (const n of g.nodes) for (const v of [...nodeReads(n), ...n.outputs]) names.add(v);
  return names;
}

/** `base` if free, else base_2, base_3, ...; the result is marked as taken. */
function claim(taken: Set<string>, base: string): string {
  let name = base;
  for (let i = 2; taken.has(name); i++) name = `${base}_${i}`;
  taken.add(name);
  return name;
}

/**
 * PyTorch's nn.Linear default: kaiming_uniform_(a=sqrt(5)) for the weight and U(±1/sqrt(fan_in))
 * for the bias, both of which are U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Weight first, then bias,
 * from one stream, as PyTorch draws them.
 */
function linearInit(seed: number, fanIn: number): (count: number) => Float32Array {
  const random = seededUniform(seed);
  const bound = 1 / Math.sqrt(fanIn);
  return (count) => {
    const out = new Float32Array(count);
    for (let i = 0; i < count; i++) out[i] = (2 * random() - 1) * bound;
    return out;
  };
}

/**
 * Uniform [0, 1) numbers from a 32-bit Weyl sequence passed through MurmurHash3's finalizer:
 * tiny, portable and the same on every machine, which is what a reproducible head needs.
 */
function seededUniform(seed: number): () => number {
  let state = (seed ^ Math.floor(seed / 2 ** 32)) >>> 0;
  return () => {
    state = (state + 0x9e3779b9) >>> 0;
    let z = state;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return ((z ^ (z >>> 16)) >>> 0) / 2 ** 32;
  };
}
