import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { Readable } from 'node:stream';
import { allReduce } from '../ring.js';
import { allocateCollectiveBuffer, collectiveMemory, createCollectiveMemory, freeCollectiveBuffer } from '../collective-memory.js';
import { BufferPool } from './buffer-pool.js';
import { PooledMessageDecoder, skipReadAhead } from './grpc-internals.js';
import { pattern, sameBytes, startRing } from './fixtures/ring.js';

const MiB = 1024 * 1024;
const require = createRequire(import.meta.url);

/** A gRPC length-prefixed message carrying `body`. */
function grpcMessage(body: Uint8Array): Buffer {
  const out = Buffer.alloc(5 + body.byteLength);
  out.writeUInt32BE(body.byteLength, 1);
  out.set(body, 5);
  return out;
}

/** Feeds `stream` to `decoder` in pieces of the given sizes (cycled) and returns what came out. */
function feed(decoder: { write(data: Buffer): Buffer[] }, stream: Buffer, pieces: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  for (let i = 0; at < stream.byteLength; i++) {
    const n = Math.min(pieces[i % pieces.length]!, stream.byteLength - at);
    // Each piece is its own Buffer, as http2 hands them over (a decoder must copy, not keep views).
    out.push(...decoder.write(Buffer.from(stream.subarray(at, at + n))));
    at += n;
  }
  return out;
}

describe('PooledMessageDecoder', { timeout: 30_000 }, () => {
  const bodies = [0, 1, 4, 5, 6, 100, 16_384, 16_385, 70_000, 0, 3].map((n, i) => pattern(n, 3, i));
  const stream = Buffer.concat(bodies.map(grpcMessage));

  it('returns every message, prefix included, however the stream is cut', () => {
    for (const pieces of [[1], [2], [3], [5], [7, 1], [16_384], [9, 16_384, 4], [stream.byteLength]]) {
      const pool = new BufferPool(64 * MiB);
      const decoder = new PooledMessageDecoder(-1, { acquire: (n) => pool.lend(n) }, undefined);
      const got = feed(decoder, stream, pieces);
      assert.equal(got.length, bodies.length, `pieces ${pieces}`);
      got.forEach((m, i) => assert.ok(sameBytes(m, grpcMessage(bodies[i]!)), `pieces ${pieces}: message ${i}`));
      assert.equal(decoder.pooledMessages, bodies.length);
    }
  });

  it('enforces the receive limit like grpc-js (whose caller turns the throw into RESOURCE_EXHAUSTED)', () => {
    const decoder = new PooledMessageDecoder(99, { acquire: (n) => Buffer.alloc(n) }, undefined);
    assert.deepEqual(decoder.write(grpcMessage(pattern(99, 1, 1))).length, 1);
    assert.throws(() => decoder.write(grpcMessage(pattern(100, 1, 1))), /Received message larger than max \(100 vs 99\)/);
  });

  it('lets the decoder it replaced finish a message that was half received', () => {
    type Decoder = { write(b: Buffer): Buffer[]; readState: number; readSizeRemaining: number; readMessageRemaining: number; maxReadMessageLength: number };
    const { StreamDecoder } = require('@grpc/grpc-js/build/src/stream-decoder.js') as { StreamDecoder: new (max: number) => Decoder };
    const old = new StreamDecoder(-1);
    // Cut the stream inside the body of message 2 (4 bytes): messages 0 and 1 come out of the old decoder.
    const first = grpcMessage(bodies[0]!).byteLength + grpcMessage(bodies[1]!).byteLength + 5 + 2;
    const before = old.write(Buffer.from(stream.subarray(0, first)));
    assert.equal(before.length, 2);
    assert.notEqual(old.readState, 0, 'the old decoder is in the middle of a message');
    const decoder = new PooledMessageDecoder(-1, { acquire: (n) => Buffer.alloc(n) }, old);
    // Pieces that never end on a message boundary: the old decoder must get exactly the rest of message 2.
    const after = feed(decoder, stream.subarray(first), [1000]);
    const all = [...before, ...after];
    assert.equal(all.length, bodies.length);
    all.forEach((m, i) => assert.ok(sameBytes(m, grpcMessage(bodies[i]!)), `message ${i}`));
    assert.equal(decoder.pooledMessages, bodies.length - 3, 'the pooled decoder took over right after message 2');
    // Also when the cut falls inside a length prefix.
    const old2 = new StreamDecoder(-1);
    const inPrefix = grpcMessage(bodies[0]!).byteLength + 2;
    assert.equal(old2.write(Buffer.from(stream.subarray(0, inPrefix))).length, 1);
    const decoder2 = new PooledMessageDecoder(-1, { acquire: (n) => Buffer.alloc(n) }, old2);
    const rest2 = feed(decoder2, stream.subarray(inPrefix), [3, 1000]);
    assert.equal(rest2.length, bodies.length - 1);
    rest2.forEach((m, i) => assert.ok(sameBytes(m, grpcMessage(bodies[i + 1]!)), `message ${i + 1}`));
    assert.equal(decoder2.pooledMessages, bodies.length - 2);
  });
});

describe('BufferPool', () => {
  it('reuses buffers given back, keeps views exact, and bounds what it keeps', () => {
    const pool = new BufferPool(3 * MiB);
    const a = pool.lend(MiB + 7);
    assert.equal(a.byteLength, MiB + 7);
    assert.equal(a.byteOffset, 0);
    assert.equal(pool.allocated, 1);
    assert.equal(pool.giveBack(a.subarray(100, 200)), true, 'any view into the buffer gives it back');
    assert.equal(pool.giveBack(a), false, 'a second give-back is ignored');
    const b = pool.lend(MiB);
    assert.equal(b.buffer, a.buffer, 'the free buffer is reused');
    assert.equal(pool.allocated, 1);
    assert.equal(pool.giveBack(new Uint8Array(10)), false, 'foreign memory is ignored');
    const big = [pool.lend(2 * MiB), pool.lend(2 * MiB)];
    for (const x of big) pool.giveBack(x);
    pool.giveBack(b);
    // 3 MiB of idle buffers at most: one 2 MiB buffer kept, the second and the 1 MiB one are dropped.
    const again = [pool.lend(2 * MiB), pool.lend(2 * MiB), pool.lend(MiB)];
    assert.equal(pool.allocated, 3 + 2);
    for (const x of again) assert.ok(x.byteLength >= MiB);
  });
});

describe('BufferPool in the collective memory', () => {
  it('lends collective blocks, takes them back by any view, and frees what it drops', () => {
    const memory = createCollectiveMemory(16)!; // 1 MiB
    const pool = new BufferPool(256 * 1024, memory);
    const a = pool.lend(200_000);
    assert.ok(memory.owns(a));
    assert.equal(a.byteLength, 200_000);
    assert.equal(pool.giveBack(a.subarray(24, 1000)), true, 'a view into the block gives it back (the ring releases payload views)');
    assert.equal(pool.giveBack(a), false);
    const b = pool.lend(100);
    assert.equal(b.byteOffset, a.byteOffset, 'reused');
    const c = pool.lend(300_000); // another block; pool keeps at most 256 KiB idle
    pool.giveBack(b);
    pool.giveBack(c); // 256 KiB (b's block) + 320 KiB > limit: c's block is freed to the memory
    assert.ok(memory.allocate(12 * 64 * 1024), 'the dropped block went back to the memory');
    const d = pool.lend(1000);
    pool.clear(); // idle b-block freed now; d is freed when it comes back
    pool.giveBack(d);
    assert.equal(pool.giveBack(new Uint8Array(4)), false, 'foreign memory is ignored');
    assert.ok(memory.allocate(4 * 64 * 1024), 'everything the pool held is back in the memory');
  });
});

describe('skipReadAhead', () => {
  it('stops Readable from scheduling a read-ahead _read() after every chunk a pushing stream delivers', async () => {
    const run = async (skip: boolean): Promise<number> => {
      let reads = 0;
      const stream = new Readable({ read: () => void reads++ });
      const onChunk = skipReadAhead(stream);
      stream.on('data', () => skip && onChunk());
      await new Promise((resolve) => setImmediate(resolve));
      reads = 0;
      for (let i = 0; i < 20; i++) {
        stream.push(Buffer.alloc(10)); // like Node's HTTP/2 stream: a push per DATA frame, each in its own tick
        await new Promise((resolve) => setImmediate(resolve));
      }
      return reads;
    };
    assert.ok((await run(false)) >= 20, 'without it, Node reads ahead after every chunk (what the hook removes)');
    assert.equal(await run(true), 0);
  });
});

describe('gRPC ring link: pooled data path', { timeout: 60_000 }, () => {
  it('is active on a live link: frames are assembled in the pool, and released buffers are reused', { timeout: 30_000 }, async () => {
    const ring = await startRing(2, { chunkBytes: 256 * 1024 });
    try {
      const [a, b] = ring.links as [(typeof ring.links)[0], (typeof ring.links)[0]];
      const stats = (l: typeof a) => (l as unknown as { transportStats: { messagesAssembledInPool: number; sendBuffersAllocated: number; recvBuffersAllocated: number } }).transportStats;
      const sizes = [0, 1, 1000, 256 * 1024, 256 * 1024 + 1, 3 * MiB + 5, 4096];
      const rounds = 8;
      let warm = { recv: 0, send: 0 };
      for (let round = 0; round < rounds; round++) {
        if (round === rounds - 3) warm = { recv: stats(b).recvBuffersAllocated, send: stats(a).sendBuffersAllocated };
        const sending = (async () => {
          for (let i = 0; i < sizes.length; i++) await a.send(pattern(sizes[i]!, round, i));
        })();
        for (let i = 0; i < sizes.length; i++) {
          const got = await b.recv();
          assert.ok(sameBytes(got, pattern(sizes[i]!, round, i)), `round ${round} message ${i} (${sizes[i]} bytes)`);
          b.release!(got);
        }
        await sending;
      }
      const s = stats(b);
      assert.ok(s.messagesAssembledInPool > 0, 'the subchannel call decodes into the link pool');
      // Without reuse every round would allocate ~20 buffers on each side (one per frame); with it,
      // the last rounds run on buffers allocated before.
      assert.ok(s.recvBuffersAllocated <= warm.recv + 2, `receive buffers allocated: ${warm.recv} before the last 3 rounds, ${s.recvBuffersAllocated} after`);
      const sent = stats(a).sendBuffersAllocated;
      assert.ok(sent <= warm.send + 2, `send buffers allocated: ${warm.send} before the last 3 rounds, ${sent} after`);
    } finally {
      await ring.close();
    }
  });

  it('places messages in the collective memory only once the consumer releases what it reads', { timeout: 30_000 }, async () => {
    const memory = collectiveMemory()!;
    const ring = await startRing(2, { chunkBytes: 256 * 1024 });
    try {
      const [a, b] = ring.links as [(typeof ring.links)[0], (typeof ring.links)[0]];
      const next = async (i: number): Promise<Uint8Array> => {
        const [, got] = await Promise.all([a.send(pattern(100_000, 0, i)), b.recv()]);
        assert.ok(sameBytes(got, pattern(100_000, 0, i)));
        return got;
      };
      for (let i = 0; i < 3; i++) assert.ok(!memory.owns(await next(i)), 'a consumer that never released gets garbage-collected buffers');
      b.release(await next(3));
      let placed = 0;
      for (let i = 4; i < 12; i++) {
        const got = await next(i);
        if (memory.owns(got)) placed++;
        b.release(got);
      }
      assert.ok(placed >= 6, `after the first release, messages go to the collective memory (${placed} of 8)`);
    } finally {
      await ring.close();
    }
  });

  it('sums with SIMD where messages and data lie in the collective memory, bitwise as the JavaScript loop', { timeout: 60_000 }, async () => {
    const memory = collectiveMemory()!;
    let simdCalls = 0;
    const add = memory.add.bind(memory);
    memory.add = (dst, src) => {
      simdCalls++;
      add(dst, src);
    };
    try {
      for (const n of [2, 3]) {
        const ring = await startRing(n, { chunkBytes: 128 * 1024 });
        try {
          for (const len of [1, 7, 100_003]) {
            const inputs = ring.links.map((_, r) => Float32Array.from({ length: len }, (_, i) => Math.fround(Math.sin(i * 0.37 + r) * 10 ** ((i % 7) - 3))));
            const plain = inputs.map((x) => x.slice());
            const before = simdCalls;
            await Promise.all(ring.links.map((link, r) => allReduce(plain[r]!, link, { chunkBytes: 64 * 1024 })));
            assert.equal(simdCalls, before, 'ordinary arrays are summed by the JavaScript loop');
            const collective = inputs.map((x) => {
              const c = allocateCollectiveBuffer(len);
              c.set(x);
              return c;
            });
            await Promise.all(ring.links.map((link, r) => allReduce(collective[r]!, link, { chunkBytes: 64 * 1024 })));
            assert.ok(simdCalls > before, `n=${n} len=${len}: the SIMD path ran`);
            for (let r = 0; r < n; r++) {
              assert.deepEqual(new Uint32Array(collective[r]!.buffer, collective[r]!.byteOffset, len), new Uint32Array(plain[0]!.buffer), `n=${n} len=${len} rank ${r}`);
              freeCollectiveBuffer(collective[r]!);
            }
          }
        } finally {
          await ring.close();
        }
      }
    } finally {
      memory.add = add;
    }
  });

  it('all-reduces correctly while every buffer is recycled (ring of 3, many rounds)', { timeout: 30_000 }, async () => {
    const ring = await startRing(3, { chunkBytes: 128 * 1024 });
    try {
      const n = 300_001;
      for (let round = 0; round < 4; round++) {
        const datas = ring.links.map((_, r) => Float32Array.from({ length: n }, (_, i) => ((i * 7 + r * 13 + round) % 101) - 50));
        const expected = Float32Array.from({ length: n }, (_, i) => datas.reduce((s, d) => s + d[i]!, 0));
        await Promise.all(ring.links.map((link, r) => allReduce(datas[r]!, link, { chunkBytes: 64 * 1024 })));
        for (const d of datas) assert.deepEqual(d, expected, `round ${round}`);
      }
    } finally {
      await ring.close();
    }
  });
});
