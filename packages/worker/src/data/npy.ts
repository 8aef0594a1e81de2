/**
 * Reader for NumPy's .npy format (versions 1.0, 2.0 and 3.0): magic "\x93NUMPY", a version, the
 * header length, then a Python dict literal such as
 * {'descr': '<f4', 'fortran_order': False, 'shape': (3, 28, 28), } followed by the raw data.
 * Only plain little-endian numeric arrays in C order: what np.save writes for images and labels.
 */
import { readFile } from 'node:fs/promises';
import { UserError } from '../errors.js';

export type NpyDtype = 'bool' | 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'int64' | 'float32' | 'float64';
export type NpyData = Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | BigInt64Array | Float32Array | Float64Array;

export interface NpyArray {
  dtype: NpyDtype;
  shape: number[];
  data: NpyData;
}

type Ctor = { new (buffer: ArrayBuffer, byteOffset: number, length: number): NpyData; BYTES_PER_ELEMENT: number };

// Keyed by the descr type code without its byte-order character.
const DTYPES: Record<string, [NpyDtype, Ctor]> = {
  b1: ['bool', Uint8Array],
  u1: ['uint8', Uint8Array],
  i1: ['int8', Int8Array],
  u2: ['uint16', Uint16Array],
  i2: ['int16', Int16Array],
  u4: ['uint32', Uint32Array],
  i4: ['int32', Int32Array],
  i8: ['int64', BigInt64Array],
  f4: ['float32', Float32Array],
  f8: ['float64', Float64Array],
};

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

function headerValue(header: string, key: string): string | undefined {
  // Keys are quoted; values are a quoted string, a bare word or a parenthesized tuple.
  const m = new RegExp(`['"]${key}['"]\\s*:\\s*('[^']*'|"[^"]*"|\\([^)]*\\)|\\[|\\w+)`).exec(header);
  return m?.[1];
}

/** Parses .npy bytes; `source` names the file in errors. The data is copied (aligned, owned). */
export function parseNpy(bytes: Uint8Array, source: string): NpyArray {
  if (bytes.length < 10 || MAGIC.some((b, i) => bytes[i] !== b)) throw new UserError(`${source}: not a .npy file (no \\x93NUMPY magic)`);
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLen: number;
  let headerStart: number;
  if (major === 1) {
    headerLen = view.getUint16(8, true);
    headerStart = 10;
  } else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new UserError(`${source}: truncated .npy header`);
    headerLen = view.getUint32(8, true);
    headerStart = 12;
  } else {
    throw new UserError(`${source}: .npy format version ${major}.${bytes[7]} is not supported (1.0, 2.0 and 3.0 are)`);
  }
  const dataStart = headerStart + headerLen;
  if (dataStart > bytes.length) throw new UserError(`${source}: truncated .npy header`);
  const header = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, dataStart));

  const descr = headerValue(header, 'descr');
  if (descr !== undefined && !/^['"]/.test(descr)) {
    throw new UserError(`${source}: structured dtypes are not supported; save a plain numeric array`);
  }
  const fortran = headerValue(header, 'fortran_order');
  const shapeText = headerValue(header, 'shape');
  if (descr === undefined || fortran === undefined || shapeText === undefined) {
    throw new UserError(`${source}: .npy header lacks descr, fortran_order or shape: ${header.trim()}`);
  }
  const code = descr.slice(1, -1);
  if (fortran === 'True') {
    throw new UserError(`${source}: the array is in Fortran order; save a C-ordered copy: np.save(path, np.ascontiguousarray(a))`);
  }
  if (fortran !== 'False') throw new UserError(`${source}: bad fortran_order ${fortran} in the .npy header`);

  const order = code[0];
  const entry = DTYPES[code.slice(1)];
  if (!entry || !(order === '<' || order === '|' || order === '=' || (order === '>' && entry[1].BYTES_PER_ELEMENT === 1))) {
    const hint = order === '>' ? ' (big-endian; save with a little-endian dtype, e.g. a.astype("<f4"))' : '';
    throw new UserError(`${source}: dtype '${code}'${hint} is not supported; use float32, float64, uint8, bool or an integer type up to int64`);
  }
  const [dtype, ctor] = entry;

  const dims = shapeText.slice(1, -1).split(',').map((s) => s.trim()).filter((s) => s !== '');
  const shape = dims.map((d) => {
    const v = Number(d.replace(/L$/, '')); // Python 2 wrote longs as 3L
    if (!Number.isSafeInteger(v) || v < 0) throw new UserError(`${source}: bad shape ${shapeText} in the .npy header`);
    return v;
  });

  let count = 1;
  for (const d of shape) count *= d;
  const byteLen = count * ctor.BYTES_PER_ELEMENT;
  if (bytes.length - dataStart < byteLen) {
    throw new UserError(`${source}: truncated: shape (${shape.join(', ')}) of ${dtype} needs ${byteLen} bytes of data, the file has ${bytes.length - dataStart}`);
  }
  // Copy into a fresh buffer: a Buffer's slice() would be a view into Node's shared pool, and a
  // typed-array view needs an aligned offset anyway.
  const copy = new Uint8Array(byteLen);
  copy.set(bytes.subarray(dataStart, dataStart + byteLen));
  return { dtype, shape, data: new ctor(copy.buffer, 0, count) };
}

export async function readNpy(path: string): Promise<NpyArray> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new UserError(`${path}: cannot read: ${(err as Error).message}`);
  }
  return parseNpy(bytes, path);
}
