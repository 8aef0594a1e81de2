/** Test helpers for the data layer (not exported from the package). */

/**
 * Builds .npy bytes by hand from the format spec, independently of the reader: magic, version,
 * little-endian header length, then the dict literal padded with spaces and ended by \n so that
 * the data starts on a 64-byte boundary.
 */
export function npyBytes(descr: string, shape: number[], data: ArrayBufferView, opts: { version?: 1 | 2; fortran?: boolean } = {}): Uint8Array {
  const version = opts.version ?? 1;
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let header = `{'descr': '${descr}', 'fortran_order': ${opts.fortran ? 'True' : 'False'}, 'shape': ${tuple}, }`;
  const prefix = version === 1 ? 10 : 12;
  header += ' '.repeat((64 - ((prefix + header.length + 1) % 64)) % 64) + '\n';
  const out = new Uint8Array(prefix + header.length + data.byteLength);
  out.set([0x93, ...Buffer.from('NUMPY'), version, 0]);
  const view = new DataView(out.buffer);
  if (version === 1) view.setUint16(8, header.length, true);
  else view.setUint32(8, header.length, true);
  out.set(Buffer.from(header, 'latin1'), prefix);
  out.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), prefix + header.length);
  return out;
}
