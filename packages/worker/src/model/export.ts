/** Writing the fine-tuned inference model: trained values back into the initializers, provenance into metadata. */
import { DataType, type Model, dataTypeName, elementCount } from '../onnx/types.js';

/**
 * A new model whose initializers named in `values` hold those values. The values are copied, so
 * the trainer may keep updating its buffers. A name the model lacks, a non-float32 initializer or
 * a length that does not match the initializer's shape is a bug in the caller: a plain Error.
 */
export function withParameters(model: Model, values: ReadonlyMap<string, Float32Array>): Model {
  const byName = new Map(model.graph.initializers.map((t) => [t.name, t]));
  for (const [name, v] of values) {
    const t = byName.get(name);
    if (!t) throw new Error(`withParameters: the model has no initializer '${name}'`);
    if (t.dataType !== DataType.FLOAT) throw new Error(`withParameters: parameter '${name}' is ${dataTypeName(t.dataType)}, not float32`);
    const n = elementCount(t.dims);
    if (v.length !== n) throw new Error(`withParameters: parameter '${name}' has shape [${t.dims.join(', ')}] (${n} values), got ${v.length} values`);
  }
  const initializers = model.graph.initializers.map((t) => {
    const v = values.get(t.name);
    return v ? { ...t, dims: [...t.dims], values: v.slice() } : t;
  });
  return { ...model, graph: { ...model.graph, initializers } };
}

/** A new model with `entries` added to (or replacing keys of) its metadata_props. */
export function setMetadata(model: Model, entries: Record<string, string>): Model {
  for (const key of Object.keys(entries)) if (key === '') throw new Error('setMetadata: metadata keys must not be empty');
  return { ...model, metadata: { ...model.metadata, ...entries } };
}
