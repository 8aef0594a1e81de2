import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseNpy, readNpy } from './npy.js';
import { UserError } from '../errors.js';
import { npyBytes } from './fixtures.js';

test('reads hand-made v1.0 and v2.0 files of each supported dtype', () => {
  const f4 = parseNpy(npyBytes('<f4', [2, 3], Float32Array.from([1, 2, 3, 4, 5, 6.5])), 'a.npy');
  assert.deepEqual(f4.shape, [2, 3]);
  assert.equal(f4.dtype, 'float32');
  assert.deepEqual(Array.from(f4.data as Float32Array), [1, 2, 3, 4, 5, 6.5]);
  const i8 = parseNpy(npyBytes('<i8', [3], BigInt64Array.from([7n, -1n, 2n ** 40n]), { version: 2 }), 'b.npy');
  assert.deepEqual(Array.from(i8.data as BigInt64Array), [7n, -1n, 2n ** 40n]);
  const u1 = parseNpy(npyBytes('|u1', [1, 2, 2], Uint8Array.from([0, 128, 255, 1])), 'c.npy');
  assert.equal(u1.dtype, 'uint8');
  assert.deepEqual(u1.shape, [1, 2, 2]);
  const scalar = parseNpy(npyBytes('<f8', [], Float64Array.from([Math.PI])), 'd.npy');
  assert.deepEqual(scalar.shape, []);
  assert.equal((scalar.data as Float64Array)[0], Math.PI);
  const i4 = parseNpy(npyBytes('<i4', [2], Int32Array.from([-5, 9])), 'e.npy');
  assert.deepEqual(Array.from(i4.data as Int32Array), [-5, 9]);
  const empty = parseNpy(npyBytes('<f4', [0, 4], new Float32Array(0)), 'f.npy');
  assert.deepEqual(empty.shape, [0, 4]);
});

test('unsupported or broken files are UserErrors that name the file and the fix', () => {
  const data = Float32Array.from([1, 2]);
  const fails = (bytes: Uint8Array, re: RegExp) => assert.throws(() => parseNpy(bytes, 'x.npy'), (e: Error) => e instanceof UserError && re.test(e.message));
  fails(npyBytes('<f4', [2], data, { fortran: true }), /^x\.npy: the array is in Fortran order; save a C-ordered copy/);
  fails(npyBytes('>f4', [2], data), /big-endian/);
  fails(npyBytes('<c8', [1], data), /^x\.npy: dtype '<c8' is not supported/);
  fails(npyBytes('<f4', [3], data), /^x\.npy: truncated: shape \(3\) of float32 needs 12 bytes of data, the file has 8/);
  fails(Uint8Array.from(Buffer.from('PK\x03\x04 not npy at all')), /not a \.npy file/);
  const v9 = npyBytes('<f4', [2], data);
  v9[6] = 9;
  fails(v9, /version 9\.0 is not supported/);
  const structured = npyBytes('<f4', [2], data);
  structured.set(Buffer.from("{'descr': [('a', '<f4')]"), 10);
  fails(structured, /structured dtypes are not supported/);
});

// An independent writer, when this machine has one: numpy itself.
test('agrees with numpy.save output', (t) => {
  if (spawnSync('/usr/bin/python3', ['-c', 'import numpy'], { stdio: 'ignore' }).status !== 0) {
    t.skip('numpy is not installed');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'ftjob-npy-'));
  const script = `
import numpy as np, sys
d = sys.argv[1]
np.save(d + '/f4.npy', (np.arange(24, dtype=np.float32) / 7).reshape(2, 3, 4))
np.save(d + '/u1.npy', np.arange(250, 256, dtype=np.uint8).reshape(3, 2))
np.save(d + '/i8.npy', np.array([3, -2, 1 << 40], dtype=np.int64))
np.save(d + '/f8.npy', np.array([[0.1, 0.2]]))
np.save(d + '/fortran.npy', np.asfortranarray(np.ones((2, 3), dtype=np.float32)))
with open(d + '/v2.npy', 'wb') as f:
    np.lib.format.write_array(f, np.array([1, 2, 3], dtype=np.int32), version=(2, 0))
`;
  const py = spawnSync('/usr/bin/python3', ['-c', script, dir], { encoding: 'utf8' });
  assert.equal(py.status, 0, py.stderr);
  const read = (name: string) => parseNpy(readFileSync(join(dir, name)), name);
  const f4 = read('f4.npy');
  assert.deepEqual(f4.shape, [2, 3, 4]);
  assert.deepEqual(Array.from(f4.data as Float32Array), Array.from({ length: 24 }, (_, i) => Math.fround(i / 7)));
  assert.deepEqual(read('u1.npy'), { dtype: 'uint8', shape: [3, 2], data: Uint8Array.from([250, 251, 252, 253, 254, 255]) });
  assert.deepEqual(Array.from(read('i8.npy').data as BigInt64Array), [3n, -2n, 2n ** 40n]);
  assert.deepEqual(read('f8.npy'), { dtype: 'float64', shape: [1, 2], data: Float64Array.from([0.1, 0.2]) });
  assert.deepEqual(read('v2.npy'), { dtype: 'int32', shape: [3], data: Int32Array.from([1, 2, 3]) });
  assert.throws(() => read('fortran.npy'), /Fortran order/);
});

test('readNpy reports a missing file as a UserError', async () => {
  await assert.rejects(readNpy('/nonexistent/features.npy'), (e: Error) => e instanceof UserError && e.message.startsWith('/nonexistent/features.npy: cannot read'));
});
