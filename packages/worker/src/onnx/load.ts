/** Loading and saving models: a path, a file:// or http(s):// URL, or bytes; external data included. */
import { readFileSync, openSync, readSync, closeSync, fstatSync, writeFileSync, renameSync, mkdirSync } from 'node:fs';
import { dirname, resolve, isAbsolute, normalize, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeModel, encodeModel, externalDataLocations, type ExternalDataReader, type ExternalPlacement } from './codec.js';
import { DataType, type Model } from './types.js';
import { valuesToBytes } from './tensor.js';
import { UserError } from '../errors.js';

export type ModelSource = string | URL | Uint8Array;

/** Loads a model and every external-data tensor it names. */
export async function loadModel(source: ModelSource): Promise<Model> {
  if (source instanceof Uint8Array) return decodeModel(source);
  const url = toUrl(source);
  if (url.protocol === 'file:') return loadModelFile(fileURLToPath(url));
  if (url.protocol === 'http:' || url.protocol === 'https:') return loadModelUrl(url);
  throw new UserError(`model source '${String(source)}': unsupported scheme '${url.protocol}' (expected a path, file://, http:// or https://)`);
}

function toUrl(source: string | URL): URL {
  if (source instanceof URL) return source;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
    try {
      return new URL(source);
    } catch {
      throw new UserError(`model source '${source}' is not a valid URL`);
    }
  }
  return new URL(`file://${resolve(source)}`);
}

export function loadModelFile(path: string): Model {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    throw new UserError(`cannot read model file '${path}': ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  try {
    return decodeModel(bytes, fileExternalReader(dirname(path)));
  } catch (err) {
    if (err instanceof UserError) throw new UserError(`model file '${path}': ${err.message}`);
    throw err;
  }
}

function fileExternalReader(baseDir: string): ExternalDataReader {
  return (location, offset, length, tensor) => {
    const path = safeJoin(baseDir, location, tensor);
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch (err) {
      throw new UserError(`tensor '${tensor}': cannot open external data file '${path}': ${(err as NodeJS.ErrnoException).code}`);
    }
    try {
      const size = fstatSync(fd).size;
      const n = length ?? size - offset;
      if (offset + n > size) throw new UserError(`tensor '${tensor}': external data '${location}' is ${size} bytes, too short for offset ${offset} + length ${n}`);
      const buf = Buffer.alloc(n);
      readSync(fd, buf, 0, n, offset);
      return buf;
    } finally {
      closeSync(fd);
    }
  };
}

/** External data must stay beside the model: refuse absolute paths and '..' escapes. */
function safeJoin(baseDir: string, location: string, tensor: string): string {
  const path = normalize(resolve(baseDir, location));
  if (isAbsolute(location) || !(path === baseDir || path.startsWith(baseDir + sep))) {
    throw new UserError(`tensor '${tensor}': external data location '${location}' points outside the model's folder`);
  }
  return path;
}

async function fetchBytes(url: URL, what: string): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(120_000) });
  } catch (err) {
    throw new UserError(`cannot download ${what} from ${url.href}: ${(err as Error).cause ?? (err as Error).message}`);
  }
  if (!res.ok) throw new UserError(`cannot download ${what} from ${url.href}: HTTP ${res.status} ${res.statusText}`);
  return new Uint8Array(await res.arrayBuffer());
}

async function loadModelUrl(url: URL): Promise<Model> {
  const bytes = await fetchBytes(url, 'model');
  const files = new Map<string, Uint8Array>();
  for (const location of externalDataLocations(bytes)) {
    const fileUrl = new URL(location, url);
    if (fileUrl.origin !== url.origin) throw new UserError(`model ${url.href}: external data location '${location}' points to another host`);
    files.set(location, await fetchBytes(fileUrl, `external data '${location}'`));
  }
  const reader: ExternalDataReader = (location, offset, length, tensor) => {
    const file = files.get(location)!;
    const n = length ?? file.byteLength - offset;
    if (offset + n > file.byteLength) throw new UserError(`tensor '${tensor}': external data '${location}' is too short`);
    return file.subarray(offset, offset + n);
  };
  try {
    return decodeModel(bytes, reader);
  } catch (err) {
    if (err instanceof UserError) throw new UserError(`model ${url.href}: ${err.message}`);
    throw err;
  }
}

/** Serializes a model; all tensors are stored inline. */
export function modelToBytes(model: Model): Uint8Array {
  return encodeModel(model);
}

export interface SaveOptions {
  /**
   * Store initializers of at least `externalThreshold` bytes in this file beside the model
   * (a name, not a path). Needed past protobuf's 2 GiB message limit.
   */
  externalDataFile?: string;
  externalThreshold?: number;
}

/** Writes a model atomically (temporary files, then rename), so a reader never sees half a file. */
export function saveModel(model: Model, path: string, options: SaveOptions = {}): void {
  const dir = dirname(resolve(path));
  mkdirSync(dir, { recursive: true });
  let placements: Map<string, ExternalPlacement> | undefined;
  if (options.externalDataFile) {
    const location = options.externalDataFile;
    if (location.includes('/') || location.includes(sep)) throw new UserError(`external data file '${location}' must be a plain file name`);
    placements = new Map();
    const chunks: Uint8Array[] = [];
    let offset = 0;
    for (const t of model.graph.initializers) {
      if (t.dataType === DataType.STRING) continue;
      const bytes = valuesToBytes(t.values);
      if (bytes.byteLength < (options.externalThreshold ?? 1024)) continue;
      const pad = (64 - (offset % 64)) % 64; // keep tensors aligned for memory mapping
      if (pad) chunks.push(new Uint8Array(pad));
      offset += pad;
      placements.set(t.name, { location, offset, length: bytes.byteLength });
      chunks.push(bytes);
      offset += bytes.byteLength;
    }
    const dataPath = resolve(dir, location);
    writeFileSync(`${dataPath}.tmp-${process.pid}`, Buffer.concat(chunks));
    renameSync(`${dataPath}.tmp-${process.pid}`, dataPath);
  }
  const tmp = `${path}.tmp-${process.pid}`;
  writeFileSync(tmp, encodeModel(model, placements));
  renameSync(tmp, path);
}
