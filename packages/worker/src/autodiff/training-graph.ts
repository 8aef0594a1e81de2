/**
 * Builds the training artifacts from a forward model:
 * - training.onnx: inputs = model inputs, `labels`, one input per trainable parameter (same name);
 *   outputs = `loss` and `<parameter>_grad` for each trainable parameter;
 * - eval.onnx: same inputs; outputs = `loss` and the model's own outputs.
 * Both contain default-domain ONNX nodes only (plus whatever the forward model itself used).
 */
import { DataType, type Dim, type Model, type Node, type TensorData, type ValueInfo, defaultOpset, isDefaultDomain } from '../onnx/types.js';
import { GraphBuilder } from './builder.js';
import { ValueFactsTable } from './facts.js';
import { probeValueFacts, realInputs, type ProbeOptions } from './probe.js';
import { emitBackward } from './gradient.js';
import { emitLoss, labelsSpec, type LossKind } from './loss.js';
import { selectTrainable } from './trainable.js';
import { pruneDeadNodes, topologicalOrder } from './graph-utils.js';
import { UserError } from '../errors.js';

/** Oldest opset whose op signatures the emitted nodes use (axes as inputs: 13; Scatter reductions: 16). */
export const MIN_MODEL_OPSET = 13;
const MIN_EMITTED_OPSET = 16;

export const LOSS_OUTPUT = 'loss';
export const LABELS_INPUT = 'labels';
export const gradName = (param: string) => `${param}_grad`;

export interface TrainingGraphOptions {
  loss: LossKind;
  /** Exact initializer names or globs; all float32 initializers when absent or empty. */
  trainable?: readonly string[];
  /** The model output the loss reads; the first output when absent. */
  output?: string;
  probe?: ProbeOptions;
}

export interface ParameterInfo {
  name: string;
  dims: number[];
}

export interface TrainingArtifacts {
  training: Model;
  eval: Model;
  /** Parameters that train, in the order of training.onnx's inputs. */
  params: ParameterInfo[];
  /** Initializers that stay constant: frozen by choice, non-float, or not connected to the loss. */
  frozen: string[];
  /** Selected parameters that do not influence the loss (left frozen). */
  disconnected: string[];
  /** The model output the loss reads. */
  prediction: string;
  /** Its shape in the probe run (for cross_entropy the last axis is the class count). */
  predictionDims: number[];
}

export async function buildTrainingArtifacts(model: Model, options: TrainingGraphOptions): Promise<TrainingArtifacts> {
  const opset = defaultOpset(model);
  if (opset < MIN_MODEL_OPSET) {
    throw new UserError(`the model imports ONNX opset ${opset}; training graphs need opset ${MIN_MODEL_OPSET} or newer (re-export the model with a newer opset)`);
  }
  const graph = model.graph;
  const prediction = options.output ?? graph.outputs[0]?.name;
  if (!prediction || !graph.outputs.some((o) => o.name === prediction)) {
    throw new UserError(`--output ${options.output}: the model has no output of that name (outputs: ${graph.outputs.map((o) => o.name).join(', ')})`);
  }
  const usedNames = allNames(model);
  for (const reserved of [LOSS_OUTPUT, LABELS_INPUT]) {
    if (usedNames.has(reserved)) throw new UserError(`the model already has a value named '${reserved}', which the training graph reserves`);
  }

  const selection = selectTrainable(model, options.trainable);
  const facts = new ValueFactsTable(await probeValueFacts(model, options.probe));
  const initializers = new Map(graph.initializers.map((t) => [t.name, t]));
  const inputs = realInputs(model);
  const forward = topologicalOrder(
    graph.nodes.map((n) => ({ ...n, outputs: [...n.outputs] })),
    [...inputs.map((i) => i.name), ...initializers.keys()],
  );

  const lossBuilder = new GraphBuilder(usedNames, 'loss');
  const { gradPrediction } = emitLoss(options.loss, lossBuilder, prediction, LABELS_INPUT, facts, LOSS_OUTPUT);

  const backward = new GraphBuilder([...usedNames, ...lossBuilder.nodes.flatMap((n) => [n.name, ...n.outputs]), ...lossBuilder.constants.map((c) => c.name)], 'grad');
  const grads = emitBackward({
    nodes: forward,
    facts,
    opset: Math.max(opset, MIN_EMITTED_OPSET),
    params: selection.trainable,
    seed: { value: prediction, grad: gradPrediction },
    builder: backward,
  });

  const explicit = new Set((options.trainable ?? []).filter((p) => initializers.has(p)));
  const disconnected = selection.trainable.filter((p) => !grads.has(p));
  const named = disconnected.filter((p) => explicit.has(p));
  if (named.length > 0) {
    throw new UserError(`--trainable ${named.join(', ')}: does not influence the loss through differentiable ops (nothing to train)`);
  }
  const trained = selection.trainable.filter((p) => grads.has(p));
  if (trained.length === 0) throw new UserError('no trainable parameter influences the loss; check --trainable');

  const renames: Node[] = trained.map((p) => ({
    name: `${gradName(p)}_node`,
    opType: 'Identity',
    domain: '',
    inputs: [grads.get(p)!],
    outputs: [gradName(p)],
    attributes: {},
  }));

  const params: ParameterInfo[] = trained.map((name) => ({ name, dims: [...initializers.get(name)!.dims] }));
  const trainedSet = new Set(trained);
  const frozenInits = graph.initializers.filter((t) => !trainedSet.has(t.name));
  const labelsInput = labelsValueInfo(options.loss, model, prediction, facts);
  const paramInputs: ValueInfo[] = params.map((p) => ({ name: p.name, elemType: DataType.FLOAT, shape: p.dims }));
  const modelInputs = inputs.map((i) => ({ ...i }));
  const emittedOpset = Math.max(opset, MIN_EMITTED_OPSET);

  const trainingOutputs: ValueInfo[] = [
    { name: LOSS_OUTPUT, elemType: DataType.FLOAT, shape: [] },
    ...params.map((p) => ({ name: gradName(p.name), elemType: DataType.FLOAT, shape: p.dims })),
  ];
  const training = assemble(model, emittedOpset, 'training', {
    nodes: [...forward, ...lossBuilder.nodes, ...backward.nodes, ...renames],
    constants: [...frozenInits, ...lossBuilder.constants, ...backward.constants],
    inputs: [...modelInputs, labelsInput, ...paramInputs],
    outputs: trainingOutputs,
  });

  // The eval graph uses the model's forward nodes as given (not the copies rules may have extended).
  const evalOutputs: ValueInfo[] = [{ name: LOSS_OUTPUT, elemType: DataType.FLOAT, shape: [] }, ...graph.outputs];
  const evalModel = assemble(model, emittedOpset, 'eval', {
    nodes: [...graph.nodes, ...lossBuilder.nodes],
    constants: [...frozenInits, ...lossBuilder.constants],
    inputs: [...modelInputs, labelsInput, ...paramInputs],
    outputs: evalOutputs,
  });

  return {
    training,
    eval: evalModel,
    params,
    frozen: graph.initializers.filter((t) => !trainedSet.has(t.name)).map((t) => t.name),
    disconnected,
    prediction,
    predictionDims: facts.dims(prediction),
  };
}

interface GraphParts {
  nodes: Node[];
  constants: TensorData[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
}

function assemble(model: Model, opset: number, purpose: string, parts: GraphParts): Model {
  const nodes = pruneDeadNodes(parts.nodes, parts.outputs.map((o) => o.name));
  const read = new Set(nodes.flatMap((n) => n.inputs));
  const constants = parts.constants.filter((c) => read.has(c.name) || parts.outputs.some((o) => o.name === c.name));
  return {
    ...model,
    opsetImports: model.opsetImports.map((o) => (isDefaultDomain(o.domain) ? { domain: o.domain, version: opset } : o)),
    producerName: 'finetune-operator',
    producerVersion: '0.1.0',
    docString: `${purpose} graph generated by finetune-operator from ${model.producerName || 'an ONNX model'}`,
    graph: {
      name: `${model.graph.name || 'model'}_${purpose}`,
      nodes,
      inputs: parts.inputs,
      outputs: parts.outputs,
      initializers: constants,
      valueInfo: [],
    },
  };
}

function labelsValueInfo(kind: LossKind, model: Model, prediction: string, facts: ValueFactsTable): ValueInfo {
  const spec = labelsSpec(kind, prediction, facts);
  const declared = model.graph.outputs.find((o) => o.name === prediction)?.shape;
  const predFacts = facts.get(prediction);
  const shape: Dim[] = Array.from({ length: spec.rank }, (_, axis) => {
    if (!predFacts.dynamic[axis]) return predFacts.dims[axis]!;
    const d = declared?.[axis];
    return typeof d === 'string' ? d : `labels_dim${axis}`;
  });
  return { name: LABELS_INPUT, elemType: spec.elemType, shape };
}

function allNames(model: Model): Set<string> {
  const names = new Set<string>();
  const g = model.graph;
  for (const v of [...g.inputs, ...g.outputs, ...g.valueInfo]) names.add(v.name);
  for (const t of g.initializers) names.add(t.name);
  for (const n of g.nodes) {
    names.add(n.name);
    for (const o of n.outputs) names.add(o);
    for (const i of n.inputs) names.add(i);
  }
  return names;
}
