import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { allocateCollectiveBuffer, collectiveMemory, createCollectiveMemory, freeCollectiveBuffer } from './collective-memory.js';

const PAGE = 64 * 1024;

describe('collective memory', () => {
  it('is available here (Node 20 has WebAssembly SIMD): the fast path is not silently off', () => {
    const memory = collectiveMemory();
    assert.ok(memory, 'collectiveMemory() is undefined');
    assert.ok(memory.size >= 256 * 1024 * 1024, `reserved ${memory.size} bytes`);
  });

  it('add() is bitwise the JavaScript float32 sum, for any length and alignment', () => {
    const memory = createCollectiveMemory(16)!;
    const specials = [0, -0, 1, -1, 1e-45, -1e-45, 1.1754942e-38, 3.4028235e38, -3.4028235e38, Infinity, -Infinity, 0.1, 1 / 3, 16777216, 16777217, 5e-39];
    let seed = 12345;
    const random = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const u = seed / 2 ** 32;
      if (u < 0.2) return specials[Math.floor(u * 5 * specials.length)]!;
      return Math.fround((u - 0.6) * 10 ** Math.floor(u * 60 - 30));
    };
    const a = memory.allocate(64 * 1024)!;
    const b = memory.allocate(64 * 1024)!;
    for (const length of [0, 1, 3, 4, 7, 8, 9, 15, 16, 17, 31, 32, 33, 1000, 4099]) {
      for (const [da, db] of [[0, 0], [1, 3], [5, 2], [7, 7]] as const) {
        const dst = new Float32Array(a.buffer, a.byteOffset + da * 4, length);
        const src = new Float32Array(b.buffer, b.byteOffset + db * 4, length);
        for (let i = 0; i < length; i++) {
          dst[i] = random();
          src[i] = random();
        }
        // Guards on both sides: nothing outside dst may change.
        const before = new Float32Array(a.buffer, a.byteOffset, da).slice();
        const after = new Float32Array(a.buffer, dst.byteOffset + length * 4, 8).slice();
        const expected = Float32Array.from(dst, (x, i) => x + src[i]!);
        memory.add(dst, src);
        const what = `length ${length}, offsets ${da}/${db}`;
        assert.deepEqual(new Uint32Array(dst.buffer, dst.byteOffset, length), new Uint32Array(expected.buffer), what);
        assert.deepEqual(new Float32Array(a.buffer, a.byteOffset, da), before, `${what}: before dst`);
        assert.deepEqual(new Float32Array(a.buffer, dst.byteOffset + length * 4, 8), after, `${what}: after dst`);
      }
    }
    const outside = new Float32Array(4);
    assert.throws(() => memory.add(outside, new Float32Array(a.buffer, a.byteOffset, 4)), /must lie in the collective memory/);
    assert.throws(() => memory.add(new Float32Array(a.buffer, a.byteOffset, 4), new Float32Array(b.buffer, b.byteOffset, 5)), /lengths differ/);
  });

  it('allocates whole pages first fit, coalesces what is freed, and says when it is full', () => {
    const memory = createCollectiveMemory(8)!;
    assert.equal(memory.size, 8 * PAGE);
    const a = memory.allocate(1)!;
    const b = memory.allocate(PAGE + 1)!;
    const c = memory.allocate(PAGE)!;
    assert.deepEqual([a.byteOffset, a.byteLength, b.byteOffset, b.byteLength, c.byteOffset], [0, PAGE, PAGE, 2 * PAGE, 3 * PAGE]);
    assert.ok(memory.owns(a) && memory.owns(new Float32Array(b.buffer, b.byteOffset + 8, 2)));
    assert.ok(!memory.owns(new Uint8Array(8)));
    assert.equal(memory.allocate(5 * PAGE), undefined, '4 pages are left');
    memory.free(b);
    memory.free(a); // merges with b's run: pages 0-2 free
    const d = memory.allocate(3 * PAGE)!;
    assert.equal(d.byteOffset, 0, 'the coalesced run at the start is reused');
    memory.free(c);
    const e = memory.allocate(5 * PAGE)!;
    assert.equal(e.byteOffset, 3 * PAGE, 'c merged with the free tail');
    assert.throws(() => memory.free(new Uint8Array(d.buffer, d.byteOffset + PAGE, 8)), /no block starts at byte/);
    assert.throws(() => memory.free(new Uint8Array(8)), /not a block of this memory/);
    assert.throws(() => memory.allocate(-1), /non-negative integer/);
  });

  it('allocateCollectiveBuffer hands out collective float32 buffers, and ordinary ones when it must', () => {
    const memory = collectiveMemory()!;
    const x = allocateCollectiveBuffer(1000);
    assert.equal(x.length, 1000);
    assert.ok(memory.owns(x));
    freeCollectiveBuffer(x);
    const y = allocateCollectiveBuffer(1000);
    assert.equal(y.byteOffset, x.byteOffset, 'the freed block is reused');
    freeCollectiveBuffer(y);
    const empty = allocateCollectiveBuffer(0);
    assert.ok(!memory.owns(empty) && empty.length === 0);
    freeCollectiveBuffer(empty); // ordinary: left to the garbage collector
    freeCollectiveBuffer(new Float32Array(3));
    assert.throws(() => allocateCollectiveBuffer(1.5), /non-negative integer/);
  });
});
