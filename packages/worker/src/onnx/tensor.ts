/** Typed-array storage for each ONNX element type, and tensor construction helpers. */
import { DataType, type TensorData, type TensorValues, elementCount, dataTypeName } from './types.js';
import { UserError } from '../errors.js';

type NumericArrayCtor =
  | Float32ArrayConstructor
  | Float64ArrayConstructor
  | Int8ArrayConstructor
  | Uint8ArrayConstructor
  | Int16ArrayConstructor
  | Uint16ArrayConstructor
  | Int32ArrayConstructor
  | Uint32ArrayConstructor
  | BigInt64ArrayConstructor
  | BigUint64ArrayConstructor;

const STORAGE: Partial<Record<DataType, NumericArrayCtor>> = {
  [DataType.FLOAT]: Float32Array,
  [DataType.DOUBLE]: Float64Array,
  [DataType.INT8]: Int8Array,
  [DataType.UINT8]: Uint8Array,
  [DataType.BOOL]: Uint8Array,
  [DataType.INT16]: Int16Array,
  [DataType.UINT16]: Uint16Array,
  [DataType.FLOAT16]: Uint16Array,
  [DataType.BFLOAT16]: Uint16Array,
  [DataType.INT32]: Int32Array,
  [DataType.UINT32]: Uint32Array,
  [DataType.INT64]: BigInt64Array,
  [DataType.UINT64]: BigUint64Array,
};

export function storageFor(dataType: DataType): NumericArrayCtor {
  const ctor = STORAGE[dataType];
  if (!ctor) throw new UserError(`tensors of type ${dataTypeName(dataType)} are not supported`);
  return ctor;
}

/** Copies little-endian bytes into a fresh, aligned typed array of the tensor's element type. */
export function valuesFromBytes(dataType: DataType, bytes: Uint8Array, count: number, what: string): TensorValues {
  const ctor = storageFor(dataType);
  const expected = count * ctor.BYTES_PER_ELEMENT;
  if (bytes.byteLength !== expected) {
    throw new UserError(`${what}: holds ${bytes.byteLength} bytes, but its shape and type need ${expected}`);
  }
  const copy = new Uint8Array(expected);
  copy.set(bytes);
  return new ctor(copy.buffer, 0, count);
}

export function valuesToBytes(values: TensorValues): Uint8Array {
  if (Array.isArray(values)) throw new Error('string tensors have no raw byte form');
  return new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
}

export function floatTensor(name: string, dims: number[], values: ArrayLike<number>): TensorData {
  return { name, dataType: DataType.FLOAT, dims: [...dims], values: Float32Array.from(values) };
}

export function int64Tensor(name: string, dims: number[], values: ArrayLike<number>): TensorData {
  const out = new BigInt64Array(values.length);
  for (let i = 0; i < values.length; i++) out[i] = BigInt(values[i]!);
  return { name, dataType: DataType.INT64, dims: [...dims], values: out };
}

export function tensorSize(t: TensorData): number {
  return elementCount(t.dims);
}

/** Reads a small integer tensor (shape, axes, pads) as plain numbers. */
export function tensorToNumbers(t: TensorData): number[] {
  if (Array.isArray(t.values)) throw new UserError(`tensor '${t.name}' holds strings, expected numbers`);
  return Array.from(t.values as ArrayLike<number | bigint>, (v) => Number(v));
}
