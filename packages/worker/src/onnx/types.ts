/**
 * The project's own in-memory ONNX graph: plain objects with numbers (never Long) and typed
 * arrays, converted from and to protobuf only at the I/O edge (codec.ts).
 */

/** ONNX TensorProto.DataType values. */
export enum DataType {
  UNDEFINED = 0,
  FLOAT = 1,
  UINT8 = 2,
  INT8 = 3,
  UINT16 = 4,
  INT16 = 5,
  INT32 = 6,
  INT64 = 7,
  STRING = 8,
  BOOL = 9,
  FLOAT16 = 10,
  DOUBLE = 11,
  UINT32 = 12,
  UINT64 = 13,
  COMPLEX64 = 14,
  COMPLEX128 = 15,
  BFLOAT16 = 16,
}

/** onnxruntime's element type names (tensor `type`, session metadata) as ONNX element types. */
export const ORT_ELEMENT_TYPES: Readonly<Record<string, DataType>> = {
  float32: DataType.FLOAT,
  float64: DataType.DOUBLE,
  float16: DataType.FLOAT16,
  int8: DataType.INT8,
  uint8: DataType.UINT8,
  int16: DataType.INT16,
  uint16: DataType.UINT16,
  int32: DataType.INT32,
  uint32: DataType.UINT32,
  int64: DataType.INT64,
  uint64: DataType.UINT64,
  bool: DataType.BOOL,
  string: DataType.STRING,
};

export type TensorValues =
  | Float32Array
  | Float64Array
  | Int8Array
  | Uint8Array
  | Int16Array
  | Uint16Array
  | Int32Array
  | Uint32Array
  | BigInt64Array
  | BigUint64Array
  | string[];

/** A constant tensor: an initializer or a Constant node's value. */
export interface TensorData {
  name: string;
  dataType: DataType;
  dims: number[];
  /** Row-major values; FLOAT16/BFLOAT16 as raw bits, BOOL as 0/1 bytes. */
  values: TensorValues;
}

/** A dimension: a fixed size, a named symbolic size, or unknown. */
export type Dim = number | string | null;

export interface ValueInfo {
  name: string;
  elemType: DataType;
  /** Absent when the model does not state a shape (not even a rank). */
  shape?: Dim[];
}

export type AttributeValue =
  | { type: 'float'; value: number }
  | { type: 'int'; value: number }
  | { type: 'string'; value: string }
  | { type: 'tensor'; value: TensorData }
  | { type: 'graph'; value: Graph }
  | { type: 'floats'; value: number[] }
  | { type: 'ints'; value: number[] }
  | { type: 'strings'; value: string[] }
  /** Attribute kinds the engine never interprets are carried through untouched. */
  | { type: 'opaque'; value: unknown };

export interface Node {
  name: string;
  opType: string;
  /** '' (or 'ai.onnx') is the default ONNX domain. */
  domain: string;
  /** '' marks an omitted optional input or output. */
  inputs: string[];
  outputs: string[];
  attributes: Record<string, AttributeValue>;
}

export interface Graph {
  name: string;
  nodes: Node[];
  inputs: ValueInfo[];
  outputs: ValueInfo[];
  initializers: TensorData[];
  valueInfo: ValueInfo[];
}

export interface OpsetImport {
  domain: string;
  version: number;
}

export interface Model {
  irVersion: number;
  opsetImports: OpsetImport[];
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  metadata: Record<string, string>;
  graph: Graph;
  /** Model-local functions and training info are preserved as decoded protobuf objects. */
  opaque: { functions?: unknown[]; trainingInfo?: unknown[] };
}

export function isDefaultDomain(domain: string): boolean {
  return domain === '' || domain === 'ai.onnx';
}

/** The default-domain opset version the model imports (ONNX requires one for default ops). */
export function defaultOpset(model: Model): number {
  const entry = model.opsetImports.find((o) => isDefaultDomain(o.domain));
  return entry?.version ?? 0;
}

export function isFloatType(t: DataType): boolean {
  return t === DataType.FLOAT || t === DataType.DOUBLE || t === DataType.FLOAT16 || t === DataType.BFLOAT16;
}

export function dataTypeName(t: DataType): string {
  return DataType[t]?.toLowerCase() ?? `type ${t}`;
}

export function elementCount(dims: readonly number[]): number {
  let n = 1;
  for (const d of dims) n *= d;
  return n;
}
