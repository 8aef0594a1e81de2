/**
 * Conversion between ONNX protobuf messages (the `onnx-proto` package, generated from the ONNX
 * schema) and the engine's plain graph objects. External-data tensors are resolved by the caller
 * through `ExternalDataReader`, so this module does no I/O.
 */
import onnxProto from 'onnx-proto';
import {
  DataType,
  type AttributeValue,
  type Dim,
  type Graph,
  type Model,
  type Node,
  type TensorData,
  type TensorValues,
  type ValueInfo,
  elementCount,
} from './types.js';
import { storageFor, valuesFromBytes, valuesToBytes } from './tensor.js';
import { UserError } from '../errors.js';

const { onnx } = onnxProto;
type Long = { toNumber(): number; toString(): string };
type Int64Like = number | Long;

/** Reads `length` bytes at `offset` of an external data file named relative to the model. */
export type ExternalDataReader = (location: string, offset: number, length: number | undefined, tensor: string) => Uint8Array;

function num(v: Int64Like | null | undefined): number {
  if (v === null || v === undefined) return 0;
  return typeof v === 'number' ? v : v.toNumber();
}

function big(v: Int64Like): bigint {
  return typeof v === 'number' ? BigInt(v) : BigInt(v.toString());
}

export function decodeModel(bytes: Uint8Array, readExternal?: ExternalDataReader): Model {
  let proto: onnxProto.onnx.ModelProto;
  try {
    proto = onnx.ModelProto.decode(bytes);
  } catch (err) {
    throw new UserError(`not an ONNX model (protobuf decoding failed: ${(err as Error).message})`);
  }
  if (!proto.graph || ((proto.graph.node?.length ?? 0) === 0 && (proto.graph.output?.length ?? 0) === 0)) {
    throw new UserError('not an ONNX model (it has no graph)');
  }
  const metadata: Record<string, string> = {};
  for (const p of proto.metadataProps) metadata[p.key ?? ''] = p.value ?? '';
  return {
    irVersion: num(proto.irVersion),
    opsetImports: proto.opsetImport.map((o) => ({ domain: o.domain ?? '', version: num(o.version) })),
    producerName: proto.producerName ?? '',
    producerVersion: proto.producerVersion ?? '',
    domain: proto.domain ?? '',
    modelVersion: num(proto.modelVersion),
    docString: proto.docString ?? '',
    metadata,
    graph: decodeGraph(proto.graph, readExternal),
    opaque: {
      ...(proto.functions.length > 0 ? { functions: proto.functions } : {}),
      ...(proto.trainingInfo.length > 0 ? { trainingInfo: proto.trainingInfo } : {}),
    },
  };
}

function decodeGraph(g: onnxProto.onnx.IGraphProto, readExternal?: ExternalDataReader): Graph {
  return {
    name: g.name ?? '',
    nodes: (g.node ?? []).map((n) => decodeNode(n, readExternal)),
    inputs: (g.input ?? []).map(decodeValueInfo),
    outputs: (g.output ?? []).map(decodeValueInfo),
    initializers: (g.initializer ?? []).map((t) => decodeTensor(t, readExternal)),
    valueInfo: (g.valueInfo ?? []).map(decodeValueInfo),
  };
}

function decodeValueInfo(v: onnxProto.onnx.IValueInfoProto): ValueInfo {
  const tensorType = v.type?.tensorType;
  const info: ValueInfo = { name: v.name ?? '', elemType: tensorType?.elemType ?? DataType.UNDEFINED };
  if (tensorType?.shape) {
    info.shape = (tensorType.shape.dim ?? []).map((d): Dim => {
      // `value` names the member of the dim's oneof that is set.
      const which = (d as { value?: string }).value;
      if (which === 'dimValue') return num(d.dimValue);
      if (which === 'dimParam' && d.dimParam) return d.dimParam;
      return null;
    });
  }
  return info;
}

function decodeNode(n: onnxProto.onnx.INodeProto, readExternal?: ExternalDataReader): Node {
  const attributes: Record<string, AttributeValue> = {};
  for (const a of n.attribute ?? []) attributes[a.name ?? ''] = decodeAttribute(a, readExternal);
  return {
    name: n.name ?? '',
    opType: n.opType ?? '',
    domain: n.domain ?? '',
    inputs: [...(n.input ?? [])],
    outputs: [...(n.output ?? [])],
    attributes,
  };
}

function decodeAttribute(a: onnxProto.onnx.IAttributeProto, readExternal?: ExternalDataReader): AttributeValue {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case T.FLOAT:
      return { type: 'float', value: a.f ?? 0 };
    case T.INT:
      return { type: 'int', value: num(a.i) };
    case T.STRING:
      return { type: 'string', value: Buffer.from(a.s ?? new Uint8Array()).toString('utf8') };
    case T.TENSOR:
      return { type: 'tensor', value: decodeTensor(a.t ?? {}, readExternal) };
    case T.GRAPH:
      return { type: 'graph', value: decodeGraph(a.g ?? {}, readExternal) };
    case T.FLOATS:
      return { type: 'floats', value: [...(a.floats ?? [])] };
    case T.INTS:
      return { type: 'ints', value: (a.ints ?? []).map(num) };
    case T.STRINGS:
      return { type: 'strings', value: (a.strings ?? []).map((s) => Buffer.from(s).toString('utf8')) };
    default:
      return { type: 'opaque', value: a };
  }
}

export function decodeTensor(t: onnxProto.onnx.ITensorProto, readExternal?: ExternalDataReader): TensorData {
  const name = t.name ?? '';
  const dataType = (t.dataType ?? DataType.UNDEFINED) as DataType;
  const dims = (t.dims ?? []).map(num);
  const count = elementCount(dims);
  const what = `tensor '${name}'`;
  let values: TensorValues;
  if (dataType === DataType.STRING) {
    values = (t.stringData ?? []).map((s) => Buffer.from(s).toString('utf8'));
  } else if (t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL) {
    const entries = new Map((t.externalData ?? []).map((e) => [e.key ?? '', e.value ?? '']));
    const location = entries.get('location');
    if (!location) throw new UserError(`${what}: external data has no 'location'`);
    if (!readExternal) throw new UserError(`${what}: stored in external file '${location}', but the model was given as bytes without a directory`);
    const offset = Number(entries.get('offset') ?? 0);
    const length = entries.has('length') ? Number(entries.get('length')) : undefined;
    values = valuesFromBytes(dataType, readExternal(location, offset, length, name), count, what);
  } else if (t.rawData && t.rawData.length > 0) {
    values = valuesFromBytes(dataType, t.rawData, count, what);
  } else {
    values = valuesFromFields(t, dataType, count, what);
  }
  return { name, dataType, dims, values };
}

/** Typed fields: float_data, int32_data (also small ints, bool and 16-bit floats), int64_data, ... */
function valuesFromFields(t: onnxProto.onnx.ITensorProto, dataType: DataType, count: number, what: string): TensorValues {
  const ctor = storageFor(dataType);
  let source: ArrayLike<number | bigint>;
  switch (dataType) {
    case DataType.FLOAT:
      source = t.floatData ?? [];
      break;
    case DataType.DOUBLE:
      source = t.doubleData ?? [];
      break;
    case DataType.INT64:
      source = (t.int64Data ?? []).map(big);
      break;
    case DataType.UINT64:
    case DataType.UINT32:
      source = dataType === DataType.UINT64 ? (t.uint64Data ?? []).map(big) : (t.uint64Data ?? []).map(num);
      break;
    default:
      source = t.int32Data ?? [];
  }
  if (source.length !== count) {
    throw new UserError(`${what}: holds ${source.length} values, but its shape ${JSON.stringify(t.dims?.map(num) ?? [])} needs ${count}`);
  }
  const out = new ctor(count);
  for (let i = 0; i < count; i++) (out as unknown as Array<number | bigint>)[i] = source[i]!;
  return out;
}

/** Locations of the external data files a serialized model refers to (to fetch them up front). */
export function externalDataLocations(bytes: Uint8Array): string[] {
  const locations = new Set<string>();
  const visitTensor = (t: onnxProto.onnx.ITensorProto | null | undefined) => {
    if (t?.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) return;
    const location = t.externalData?.find((e) => e.key === 'location')?.value;
    if (location) locations.add(location);
  };
  const visitGraph = (g: onnxProto.onnx.IGraphProto | null | undefined) => {
    for (const t of g?.initializer ?? []) visitTensor(t);
    for (const n of g?.node ?? []) {
      for (const a of n.attribute ?? []) {
        visitTensor(a.t);
        visitGraph(a.g);
      }
    }
  };
  try {
    visitGraph(onnx.ModelProto.decode(bytes).graph);
  } catch {
    // decodeModel reports undecodable bytes with a proper message.
  }
  return [...locations];
}

/** Where an initializer's bytes live when the model is saved with external data. */
export interface ExternalPlacement {
  location: string;
  offset: number;
  length: number;
}

export function encodeModel(model: Model, external?: ReadonlyMap<string, ExternalPlacement>): Uint8Array {
  const message = onnx.ModelProto.create({
    irVersion: model.irVersion,
    opsetImport: model.opsetImports.map((o) => ({ domain: o.domain, version: o.version })),
    producerName: model.producerName,
    producerVersion: model.producerVersion,
    domain: model.domain,
    modelVersion: model.modelVersion,
    docString: model.docString,
    metadataProps: Object.entries(model.metadata).map(([key, value]) => ({ key, value })),
    graph: encodeGraph(model.graph, external),
    functions: (model.opaque.functions ?? []) as onnxProto.onnx.IFunctionProto[],
    trainingInfo: (model.opaque.trainingInfo ?? []) as onnxProto.onnx.ITrainingInfoProto[],
  });
  return onnx.ModelProto.encode(message).finish();
}

function encodeGraph(g: Graph, external?: ReadonlyMap<string, ExternalPlacement>): onnxProto.onnx.IGraphProto {
  const initializer = (t: TensorData): onnxProto.onnx.ITensorProto => {
    const placement = external?.get(t.name);
    if (!placement) return encodeTensor(t);
    return {
      name: t.name,
      dataType: t.dataType,
      dims: t.dims,
      dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
      externalData: Object.entries(placement).map(([key, value]) => ({ key, value: String(value) })),
    };
  };
  return {
    name: g.name,
    node: g.nodes.map(encodeNode),
    input: g.inputs.map(encodeValueInfo),
    output: g.outputs.map(encodeValueInfo),
    initializer: g.initializers.map(initializer),
    valueInfo: g.valueInfo.map(encodeValueInfo),
  };
}

function encodeValueInfo(v: ValueInfo): onnxProto.onnx.IValueInfoProto {
  if (v.elemType === DataType.UNDEFINED) return { name: v.name };
  return {
    name: v.name,
    type: {
      tensorType: {
        elemType: v.elemType,
        ...(v.shape
          ? {
              shape: {
                dim: v.shape.map((d) => (typeof d === 'number' ? { dimValue: d } : typeof d === 'string' ? { dimParam: d } : {})),
              },
            }
          : {}),
      },
    },
  };
}

function encodeNode(n: Node): onnxProto.onnx.INodeProto {
  return {
    name: n.name,
    opType: n.opType,
    domain: n.domain,
    input: n.inputs,
    output: n.outputs,
    attribute: Object.entries(n.attributes).map(([name, a]) => encodeAttribute(name, a)),
  };
}

function encodeAttribute(name: string, a: AttributeValue): onnxProto.onnx.IAttributeProto {
  const T = onnx.AttributeProto.AttributeType;
  switch (a.type) {
    case 'float':
      return { name, type: T.FLOAT, f: a.value };
    case 'int':
      return { name, type: T.INT, i: a.value };
    case 'string':
      return { name, type: T.STRING, s: Buffer.from(a.value, 'utf8') };
    case 'tensor':
      return { name, type: T.TENSOR, t: encodeTensor(a.value) };
    case 'graph':
      return { name, type: T.GRAPH, g: encodeGraph(a.value) };
    case 'floats':
      return { name, type: T.FLOATS, floats: a.value };
    case 'ints':
      return { name, type: T.INTS, ints: a.value };
    case 'strings':
      return { name, type: T.STRINGS, strings: a.value.map((s) => Buffer.from(s, 'utf8')) };
    case 'opaque':
      return { ...(a.value as onnxProto.onnx.IAttributeProto), name };
  }
}

export function encodeTensor(t: TensorData): onnxProto.onnx.ITensorProto {
  if (t.dataType === DataType.STRING) {
    return { name: t.name, dataType: t.dataType, dims: t.dims, stringData: (t.values as string[]).map((s) => Buffer.from(s, 'utf8')) };
  }
  return { name: t.name, dataType: t.dataType, dims: t.dims, rawData: valuesToBytes(t.values) };
}
