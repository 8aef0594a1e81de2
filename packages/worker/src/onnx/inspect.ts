/** A readable summary of a model: inputs, outputs, opsets, initializers and op counts. */
import { type Dim, type Model, dataTypeName, elementCount } from './types.js';

export interface ModelSummary {
  producer: string;
  opsets: string[];
  inputs: { name: string; type: string; shape: Dim[] | undefined }[];
  outputs: { name: string; type: string; shape: Dim[] | undefined }[];
  initializers: { name: string; type: string; dims: number[]; elements: number }[];
  ops: Record<string, number>;
  parameters: number;
}

export function summarizeModel(model: Model): ModelSummary {
  const g = model.graph;
  const inits = new Set(g.initializers.map((t) => t.name));
  const ops: Record<string, number> = {};
  for (const n of g.nodes) {
    const key = n.domain && n.domain !== 'ai.onnx' ? `${n.domain}.${n.opType}` : n.opType;
    ops[key] = (ops[key] ?? 0) + 1;
  }
  const initializers = g.initializers.map((t) => ({ name: t.name, type: dataTypeName(t.dataType), dims: t.dims, elements: elementCount(t.dims) }));
  return {
    producer: `${model.producerName} ${model.producerVersion}`.trim(),
    opsets: model.opsetImports.map((o) => `${o.domain || 'ai.onnx'}:${o.version}`),
    inputs: g.inputs.filter((i) => !inits.has(i.name)).map((i) => ({ name: i.name, type: dataTypeName(i.elemType), shape: i.shape })),
    outputs: g.outputs.map((o) => ({ name: o.name, type: dataTypeName(o.elemType), shape: o.shape })),
    initializers,
    ops,
    parameters: initializers.filter((t) => t.type === 'float').reduce((s, t) => s + t.elements, 0),
  };
}
