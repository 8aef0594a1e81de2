import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rng, randomValues } from '../testing/model-builder.js';
import { CollectiveError, type RingLink } from './link.js';
import { createMemoryRing, type MemoryRingOptions } from './memory-link.js';
import {
  allReduce,
  allReduceMany,
  GradientBucket,
  ringSegment,
  readFrameHeader,
  FRAME_HEADER_BYTES,
  PHASE_REDUCE_SCATTER,
  PHASE_ALL_GATHER,
  type AllReduceOptions,
} from './ring.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from './wire.js';

/**
 * Tolerances. Inputs are float32, the reference sum float64 (exact for these inputs). A float32
 * sum of N values is within (N-1)·2^-24·Σ|x_i| of the exact sum; 'avg' adds half an ulp. We allow
 * 1e-6·Σ|x_i| (relative to the sum of magnitudes, since random signs can cancel the sum itself).
 * Besides, the ring's sum order is known (segment i: rank i first, then i+1, ..., i-1), so the
 * tests also predict the float32 result bit for bit.
 */
const RTOL = 1e-6;

function inputsFor(worldSize: number, length: number, seed: number): Float32Array[] {
  const r = rng(seed);
  return Array.from({ length: worldSize }, () => randomValues(r, length, -1, 1));
}

async function runRing(inputs: Float32Array[], options: AllReduceOptions = {}, ringOptions: MemoryRingOptions = {}): Promise<Float32Array[]> {
  const ring = createMemoryRing(inputs.length, ringOptions);
  const data = inputs.map((x) => x.slice());
  await Promise.all(ring.map((link, r) => allReduce(data[r]!, link, options)));
  return data;
}

/** The float32 result the ring must produce: segment i summed in rank order i, i+1, ..., i-1. */
function predicted(inputs: Float32Array[], op: 'sum' | 'avg'): Float32Array {
  const n = inputs.length;
  const len = inputs[0]!.length;
  const out = new Float32Array(len);
  for (let seg = 0; seg < n; seg++) {
    const { offset, length } = ringSegment(len, n, seg);
    for (let j = offset; j < offset + length; j++) {
      let s = inputs[seg]![j]!;
      for (let q = 1; q < n; q++) s = Math.fround(s + inputs[(seg + q) % n]![j]!);
      out[j] = op === 'avg' ? Math.fround(s / n) : s;
    }
  }
  return out;
}

function assertBitwiseEqual(a: Float32Array, b: Float32Array, what: string): void {
  assert.equal(a.length, b.length, `${what}: length`);
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < a.length; i++) if (ua[i] !== ub[i]) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}

function assertNearReference(got: Float32Array, inputs: Float32Array[], op: 'sum' | 'avg', tolOf: (mag: number) => number, what: string): void {
  const n = inputs.length;
  for (let j = 0; j < got.length; j++) {
    let exact = 0;
    let mag = 0;
    for (const x of inputs) {
      exact += x[j]!;
      mag += Math.abs(x[j]!);
    }
    if (op === 'avg') {
      exact /= n;
      mag /= n;
    }
    const err = Math.abs(got[j]! - exact);
    if (!(err <= tolOf(mag))) assert.fail(`${what}[${j}]: got ${got[j]}, exact ${exact}, error ${err} > ${tolOf(mag)}`);
  }
}

test('ringSegment: N segments covering the data in order, lengths differing by at most one', () => {
  for (const n of [1, 2, 3, 4, 7]) {
    for (const len of [0, 1, 2, 3, 7, 1000, 65537]) {
      let at = 0;
      const lengths: number[] = [];
      for (let i = 0; i < n; i++) {
        const s = ringSegment(len, n, i);
        assert.equal(s.offset, at, `n=${n} len=${len} segment ${i} offset`);
        at += s.length;
        lengths.push(s.length);
      }
      assert.equal(at, len);
      assert.ok(Math.max(...lengths) - Math.min(...lengths) <= 1, `n=${n} len=${len}: ${lengths}`);
    }
  }
});

test('all-reduce sum and avg equal the float64 reference, the predicted float32 sum, and are bitwise identical on every rank', { timeout: 120_000 }, async () => {
  let seed = 1;
  for (const n of [1, 2, 3, 4]) {
    for (const len of [0, 1, 2, 3, 7, 1000, 65537]) {
      // 8 bytes: two elements per message; 36: nine, dividing no segment length.
      for (const chunkBytes of [8, 36, 4096, undefined]) {
        // Messages cost ~10 µs each in memory links: the long input gets its tiny-chunk run below.
        if (chunkBytes !== undefined && chunkBytes < 4096 && len > 1000) continue;
        for (const op of ['sum', 'avg'] as const) {
          const inputs = inputsFor(n, len, seed++);
          const what = `n=${n} len=${len} chunkBytes=${chunkBytes ?? 'default'} ${op}`;
          const out = await runRing(inputs, { op, ...(chunkBytes ? { chunkBytes } : {}) });
          assertNearReference(out[0]!, inputs, op, (mag) => RTOL * mag, what);
          if (n > 1) assertBitwiseEqual(out[0]!, predicted(inputs, op), `${what} vs predicted`);
          else assertBitwiseEqual(out[0]!, inputs[0]!, `${what}: world size 1 leaves data unchanged`);
          for (let r = 1; r < n; r++) assertBitwiseEqual(out[r]!, out[0]!, `${what}: rank ${r} vs rank 0`);
        }
      }
    }
  }
});

test('small chunks pipeline 65537 elements over 4 ranks (24k messages)', { timeout: 60_000 }, async () => {
  const inputs = inputsFor(4, 65537, 99);
  const out = await runRing(inputs, { chunkBytes: 64 });
  assertBitwiseEqual(out[0]!, predicted(inputs, 'sum'), 'rank 0');
  for (let r = 1; r < 4; r++) assertBitwiseEqual(out[r]!, out[0]!, `rank ${r}`);
});

/** Wraps a link and records every frame header it sends or receives. */
function spy(link: RingLink, log: { dir: 'send' | 'recv'; phase: number; step: number; chunk: number; seq: number; bytes: number }[]): RingLink {
  const note = (dir: 'send' | 'recv', m: Uint8Array) => {
    const h = readFrameHeader(m)!;
    log.push({ dir, phase: h.phase, step: h.step, chunk: h.chunk, seq: h.seq, bytes: m.byteLength - FRAME_HEADER_BYTES });
  };
  return {
    rank: link.rank,
    worldSize: link.worldSize,
    send: (m) => {
      note('send', m);
      return link.send(m);
    },
    recv: async () => {
      const m = await link.recv();
      note('recv', m);
      return m;
    },
    close: () => link.close(),
  };
}

test('each rank sends and receives 2(N-1)/N of the data, in messages of at most chunkBytes', async () => {
  const n = 4;
  const len = 1200;
  const chunkBytes = 64;
  const ring = createMemoryRing(n);
  const logs = ring.map(() => [] as Parameters<typeof spy>[1]);
  const inputs = inputsFor(n, len, 5);
  await Promise.all(ring.map((l, r) => allReduce(inputs[r]!, spy(l, logs[r]!), { chunkBytes })));
  for (let r = 0; r < n; r++) {
    const sent = logs[r]!.filter((e) => e.dir === 'send');
    const received = logs[r]!.filter((e) => e.dir === 'recv');
    assert.equal(sent.reduce((s, e) => s + e.bytes, 0), ((2 * (n - 1)) / n) * len * 4, `rank ${r} bytes sent`);
    assert.equal(received.reduce((s, e) => s + e.bytes, 0), ((2 * (n - 1)) / n) * len * 4, `rank ${r} bytes received`);
    assert.ok(sent.every((e) => e.bytes <= chunkBytes));
    assert.equal(sent.length, 2 * (n - 1) * Math.ceil(len / n / (chunkBytes / 4)));
  }
});

test('chunks are pipelined: a rank forwards the first chunk of a step before the last chunk of the previous step arrived', async () => {
  for (const ringOptions of [{}, { maxQueued: 2 }]) {
    const n = 3;
    const ring = createMemoryRing(n, ringOptions);
    const logs = ring.map(() => [] as Parameters<typeof spy>[1]);
    const inputs = inputsFor(n, 3 * 64, 6);
    await Promise.all(ring.map((l, r) => allReduce(inputs[r]!, spy(l, logs[r]!), { chunkBytes: 16 })));
    for (let r = 0; r < n; r++) {
      const log = logs[r]!;
      const lastRecvStep0 = log.findLastIndex((e) => e.dir === 'recv' && e.phase === PHASE_REDUCE_SCATTER && e.step === 0);
      const firstSendStep1 = log.findIndex((e) => e.dir === 'send' && e.phase === PHASE_REDUCE_SCATTER && e.step === 1);
      assert.ok(firstSendStep1 >= 0 && firstSendStep1 < lastRecvStep0, `rank ${r} ${JSON.stringify(ringOptions)}: step 1 starts at ${firstSendStep1}, step 0 ends at ${lastRecvStep0}`);
      const firstGather = log.findIndex((e) => e.dir === 'send' && e.phase === PHASE_ALL_GATHER);
      const lastScatter = log.findLastIndex((e) => e.dir === 'recv' && e.phase === PHASE_REDUCE_SCATTER);
      assert.ok(firstGather < lastScatter, `rank ${r}: the all-gather overlaps the end of the reduce-scatter`);
    }
  }
});

test('transport back-pressure (one queued message per edge, one send in flight) does not deadlock', { timeout: 30_000 }, async () => {
  for (const n of [2, 3, 4]) {
    const inputs = inputsFor(n, 997, 40 + n);
    const out = await runRing(inputs, { chunkBytes: 12, maxInFlight: 1 }, { maxQueued: 1 });
    assertBitwiseEqual(out[0]!, predicted(inputs, 'sum'), `n=${n}`);
    for (let r = 1; r < n; r++) assertBitwiseEqual(out[r]!, out[0]!, `n=${n} rank ${r}`);
  }
});

test('consecutive all-reduces on the same links advance the sequence number and stay correct', async () => {
  const n = 3;
  const ring = createMemoryRing(n);
  const logs = ring.map(() => [] as Parameters<typeof spy>[1]);
  const links = ring.map((l, r) => spy(l, logs[r]!));
  const options: AllReduceOptions[] = [{}, { op: 'avg', chunkBytes: 8 }, { wire: 'bf16' }, { chunkBytes: 100 }, { op: 'avg' }];
  for (let call = 0; call < options.length; call++) {
    const inputs = inputsFor(n, 50 + call, 300 + call);
    const data = inputs.map((x) => x.slice());
    for (const log of logs) log.length = 0;
    await Promise.all(links.map((l, r) => allReduce(data[r]!, l, options[call])));
    for (let r = 1; r < n; r++) assertBitwiseEqual(data[r]!, data[0]!, `call ${call} rank ${r}`);
    if (!options[call]!.wire) assertBitwiseEqual(data[0]!, predicted(inputs, options[call]!.op ?? 'sum'), `call ${call}`);
    for (const log of logs) assert.ok(log.length > 0 && log.every((e) => e.seq === call), `call ${call} carries seq ${call}`);
  }
});

/** Unit roundoff of the 16-bit wire formats. */
const UNIT = { bf16: 2 ** -8, f16: 2 ** -11 } as const;

test('bf16 and f16 wire: error within N roundings of the format, ranks bitwise identical, results representable', { timeout: 60_000 }, async () => {
  for (const wire of ['bf16', 'f16'] as const) {
    const [narrow, widen] = wire === 'bf16' ? [f32ToBf16, bf16ToF32] : [f32ToF16, f16ToF32];
    for (const n of [2, 3, 4]) {
      for (const op of ['sum', 'avg'] as const) {
        for (const chunkBytes of [6, 1000]) {
          const len = 1001;
          const inputs = inputsFor(n, len, 700 + n);
          const what = `${wire} n=${n} ${op} chunkBytes=${chunkBytes}`;
          const out = await runRing(inputs, { wire, op, chunkBytes });
          // N roundings (the first sender's value, N-2 partial sums, the owner's final value), each
          // of magnitude at most Σ|x| (slightly more with rounding), plus float32 summation; f16
          // subnormals add an absolute 2^-25 per rounding.
          const u = UNIT[wire];
          assertNearReference(out[0]!, inputs, op, (mag) => n * u * mag * (1 + u) ** n + 1e-6 * mag + n * 2 ** -25, what);
          for (let r = 1; r < n; r++) assertBitwiseEqual(out[r]!, out[0]!, `${what}: rank ${r}`);
          assertBitwiseEqual(widen(narrow(out[0]!)), out[0]!, `${what}: representable in ${wire}`);
          // The error must actually come from the wire: it is far above float32 rounding somewhere.
          const exact = predicted(inputs, op);
          assert.ok(out[0]!.some((v, j) => Math.abs(v - exact[j]!) > 1e-5), `${what}: values were rounded`);
        }
      }
    }
  }
});

test('allReduceMany and GradientBucket reduce several tensors as one, reusing the buffer', async () => {
  const n = 3;
  const shapes = [5, 0, 1, 300, 17];
  const ring = createMemoryRing(n);
  const bucket = new GradientBucket();
  for (let call = 0; call < 3; call++) {
    const r = rng(900 + call);
    const perRank = Array.from({ length: n }, () => shapes.map((s) => randomValues(r, s)));
    const tensors = perRank.map((ts) => ts.map((x) => x.slice()));
    if (call < 2) await Promise.all(ring.map((l, q) => allReduceMany(tensors[q]!, l, { op: 'avg', chunkBytes: 64 })));
    else {
      // One explicit bucket for rank 0, the per-link ones for the others.
      await Promise.all(ring.map((l, q) => (q === 0 ? bucket.allReduce(tensors[q]!, l, { op: 'avg', chunkBytes: 64 }) : allReduceMany(tensors[q]!, l, { op: 'avg', chunkBytes: 64 }))));
      assert.equal(bucket.capacity, 323);
    }
    for (let q = 0; q < n; q++) {
      for (let t = 0; t < shapes.length; t++) {
        assert.equal(tensors[q]![t]!.length, shapes[t]);
        // Packing shifts segment boundaries, so compare against the reference, and ranks bitwise.
        assertNearReference(tensors[q]![t]!, perRank.map((ts) => ts[t]!), 'avg', (mag) => RTOL * mag, `call ${call} rank ${q} tensor ${t}`);
        assertBitwiseEqual(tensors[q]![t]!, tensors[0]![t]!, `call ${call} rank ${q} tensor ${t} vs rank 0`);
      }
    }
  }
  const single = [Float32Array.of(1, 2)];
  const one = createMemoryRing(1);
  await allReduceMany(single, one[0]!, { op: 'avg' });
  assert.deepEqual([...single[0]!], [1, 2]);
});

test('bad arguments are refused before anything is sent', async () => {
  const [link] = createMemoryRing(2);
  const data = new Float32Array(4);
  await assert.rejects(allReduce(data, link!, { op: 'max' as 'sum' }), RangeError);
  await assert.rejects(allReduce(data, link!, { wire: 'f8' as 'f16' }), RangeError);
  await assert.rejects(allReduce(data, link!, { chunkBytes: 0 }), RangeError);
  await assert.rejects(allReduce(data, link!, { maxInFlight: 0 }), RangeError);
  await assert.rejects(allReduce([1, 2] as unknown as Float32Array, link!), TypeError);
  assert.equal((link as unknown as { sentCount: number }).sentCount, 0);
});

test('overlapping calls on one link are refused', async () => {
  const ring = createMemoryRing(2);
  const a = new Float32Array(8).fill(1);
  const b = new Float32Array(8).fill(2);
  const first = allReduce(a, ring[0]!);
  await assert.rejects(allReduce(new Float32Array(8), ring[0]!), /already has an all-reduce running/);
  await Promise.all([first, allReduce(b, ring[1]!)]);
  assert.deepEqual([...a], new Array(8).fill(3));
  assert.deepEqual([...b], new Array(8).fill(3));
  assert.ok(new CollectiveError('x') instanceof Error);
});

/** A link whose sendv counts its calls (and otherwise forwards). */
function countingSendv(link: RingLink, counter: { sendv: number; send: number }): RingLink {
  return {
    rank: link.rank,
    worldSize: link.worldSize,
    send: (m) => {
      counter.send++;
      return link.send(m);
    },
    sendv: (parts) => {
      counter.sendv++;
      return link.sendv!(parts);
    },
    recv: () => link.recv(),
    close: () => link.close(),
  };
}

test('zero-copy sends: results are exact although the transport reads `data` late', { timeout: 60_000 }, async () => {
  // The memory link copies a sendv message only when it delivers it; with one queued message per
  // edge and many sends outstanding, that is long after the call. Were the ring to write a region
  // of `data` before everything sent from it had been delivered, some rank would get wrong bytes.
  for (const n of [2, 3, 4]) {
    for (const [len, chunkBytes, maxQueued] of [[997, 12, 1], [4099, 256, 2], [31, 4, 1]] as const) {
      for (const op of ['sum', 'avg'] as const) {
        const inputs = inputsFor(n, len, 70 + n * 7 + len);
        const ring = createMemoryRing(n, { maxQueued });
        const counts = ring.map(() => ({ sendv: 0, send: 0 }));
        const data = inputs.map((x) => x.slice());
        await Promise.all(ring.map((l, r) => allReduce(data[r]!, countingSendv(l, counts[r]!), { op, chunkBytes, maxInFlight: 64 })));
        const what = `n=${n} len=${len} chunk=${chunkBytes} queued=${maxQueued} ${op}`;
        assertBitwiseEqual(data[0]!, predicted(inputs, op), what);
        for (let r = 1; r < n; r++) assertBitwiseEqual(data[r]!, data[0]!, `${what} rank ${r}`);
        assert.ok(counts.every((c) => c.sendv > 0 && c.send === 0), `${what}: every message went by sendv`);
      }
    }
  }
});

test('zero-copy sends are used for the float32 wire only; bf16 keeps encoded copies', async () => {
  const ring = createMemoryRing(2);
  const counts = ring.map(() => ({ sendv: 0, send: 0 }));
  const inputs = inputsFor(2, 100, 3);
  await Promise.all(ring.map((l, r) => allReduce(inputs[r]!.slice(), countingSendv(l, counts[r]!), { wire: 'bf16', chunkBytes: 64 })));
  assert.ok(counts.every((c) => c.sendv === 0 && c.send > 0));
});

test('a failure with zero-copy sends outstanding: the rejection waits until the transport let go of `data`', { timeout: 15_000 }, async () => {
  // Rank 1 is a script: it sends rank 0 a message that is not an all-reduce frame, then reads
  // slowly. Rank 0 fails at once, while its sendv messages still sit in the link (one queued per
  // edge), to be read from `data` later. Its all-reduce must not reject before they are delivered.
  const ring = createMemoryRing(2, { maxQueued: 1, recvTimeoutMs: 5_000 });
  const pending = new Set<Promise<void>>();
  const link0: RingLink = {
    rank: 0,
    worldSize: 2,
    send: (m) => ring[0]!.send(m),
    sendv: (parts) => {
      const p = ring[0]!.sendv!(parts);
      pending.add(p);
      const forget = () => void pending.delete(p);
      p.then(forget, forget);
      return p;
    },
    recv: () => ring[0]!.recv(),
    close: () => ring[0]!.close(),
  };
  await ring[1]!.send(new Uint8Array(40)); // not a frame: rank 0 fails on its first receive
  let reading = true;
  const reader = (async () => {
    while (reading) {
      await new Promise((resolve) => setTimeout(resolve, 2));
      await ring[1]!.recv().catch(() => (reading = false));
    }
  })();
  const data = inputsFor(2, 4096, 9)[0]!;
  const running = allReduce(data, link0, { chunkBytes: 64, maxInFlight: 32 });
  await assert.rejects(running, (e: unknown) => e instanceof CollectiveError && /not an all-reduce frame/.test(e.message));
  assert.equal(pending.size, 0, `${pending.size} zero-copy sends were still pending when the all-reduce rejected`);
  reading = false;
  await ring[1]!.close();
  await reader;
});
