import { test } from 'node:test';
import assert from 'node:assert/strict';
import { rng, randomValues } from '../testing/model-builder.js';
import { CollectiveError, type RingLink } from './link.js';
import { createMemoryRing } from './memory-link.js';
import { allReduce, type AllReduceOptions } from './ring.js';

// Every test here has a node:test timeout and the links a receive timeout as a backstop, so a
// hang fails the test instead of stalling the run; the assertions check that the failure was
// reported promptly and names the right peer (a backstop timeout would name another peer).

function inputs(n: number, len: number, seed: number): Float32Array[] {
  const r = rng(seed);
  return Array.from({ length: n }, () => randomValues(r, len));
}

/** Settles every promise, returning the rejection reasons (undefined where one resolved). */
async function reasons(promises: Promise<unknown>[]): Promise<unknown[]> {
  const settled = await Promise.allSettled(promises);
  return settled.map((s) => (s.status === 'rejected' ? s.reason : undefined));
}

function assertCollectiveError(err: unknown, peer: number, what: string): asserts err is CollectiveError {
  assert.ok(err instanceof CollectiveError, `${what}: expected a CollectiveError, got ${String(err)}`);
  assert.equal(err.peer, peer, `${what}: names peer ${err.peer}: ${err.message}`);
  assert.match(err.message, new RegExp(`peer ${peer}\\b`), `${what}: message names peer ${peer}`);
}

/** A link that calls `after` once its `count`-th message has been sent. */
function onSend(link: RingLink, count: number, after: () => void): RingLink {
  let sent = 0;
  return {
    rank: link.rank,
    worldSize: link.worldSize,
    send: async (m) => {
      await link.send(m);
      if (++sent === count) after();
    },
    recv: () => link.recv(),
    close: () => link.close(),
  };
}

test('a peer killed in the middle of an all-reduce makes every surviving rank reject, naming it', { timeout: 15_000 }, async () => {
  for (const n of [2, 3, 4]) {
    const dead = n - 1 === 1 ? 1 : 2;
    const ring = createMemoryRing(n, { recvTimeoutMs: 5_000 });
    const data = inputs(n, 4000, n);
    const started = Date.now();
    const links = ring.map((l, r) => (r === dead ? onSend(l, 5, () => ring.kill(dead, 'test')) : l));
    const errs = await reasons(links.map((l, r) => allReduce(data[r]!, l, { chunkBytes: 64 })));
    for (let r = 0; r < n; r++) {
      if (r === dead) assert.ok(errs[r] instanceof CollectiveError, `n=${n}: the killed rank fails too`);
      else assertCollectiveError(errs[r], dead, `n=${n} rank ${r}`);
    }
    assert.ok(Date.now() - started < 2_000, `n=${n}: reported in ${Date.now() - started} ms, not by a timeout`);
  }
});

test('a peer that dies before joining makes every other rank reject, naming it', { timeout: 15_000 }, async () => {
  for (const n of [2, 3, 4]) {
    const dead = 1;
    const ring = createMemoryRing(n, { recvTimeoutMs: 5_000 });
    const data = inputs(n, 1000, 10 + n);
    const started = Date.now();
    const running = ring.flatMap((l, r) => (r === dead ? [] : [allReduce(data[r]!, l, { chunkBytes: 256 })]));
    setTimeout(() => ring.kill(dead), 20);
    const errs = await reasons(running);
    errs.forEach((e, i) => assertCollectiveError(e, dead, `n=${n} survivor ${i}`));
    assert.ok(Date.now() - started < 2_000, `n=${n}: reported in ${Date.now() - started} ms`);
  }
});

test('a silent peer is detected within the receive timeout and the failure reaches every rank', { timeout: 15_000 }, async () => {
  const n = 3;
  const timeoutMs = 150;
  const ring = createMemoryRing(n, { recvTimeoutMs: timeoutMs });
  const data = inputs(n, 1000, 3);
  const started = Date.now();
  const times: number[] = [];
  // Rank 2 hangs: it never calls allReduce.
  const running = [0, 1].map((r) =>
    allReduce(data[r]!, ring[r]!, { chunkBytes: 128 }).finally(() => {
      times[r] = Date.now() - started;
    }),
  );
  const errs = await reasons(running);
  assertCollectiveError(errs[0], 2, 'rank 0, next to the silent rank');
  assert.match((errs[0] as Error).message, /sent nothing for 150 ms/);
  assert.ok(errs[1] instanceof CollectiveError, 'rank 1 fails as well');
  for (const r of [0, 1]) assert.ok(times[r]! >= timeoutMs - 5 && times[r]! < timeoutMs + 1_000, `rank ${r} failed after ${times[r]} ms`);
});

async function desync(n: number, optionsOf: (r: number) => AllReduceOptions, lengthOf: (r: number) => number, wrap?: (l: RingLink) => RingLink) {
  const ring = createMemoryRing(n, { recvTimeoutMs: 3_000 });
  const started = Date.now();
  const errs = await reasons(
    ring.map((l, r) => allReduce(randomValues(rng(r), lengthOf(r)), wrap && r === 1 ? wrap(l) : l, optionsOf(r))),
  );
  assert.ok(Date.now() - started < 2_000, `reported in ${Date.now() - started} ms, not by a timeout`);
  return errs;
}

/** Every rank rejects with a CollectiveError carrying the detector's expected-vs-got description. */
function assertDesync(errs: unknown[], pattern: RegExp, what: string): void {
  errs.forEach((e, r) => {
    assert.ok(e instanceof CollectiveError, `${what}: rank ${r} got ${String(e)}`);
    assert.ok(e.peer !== undefined, `${what}: rank ${r} names a peer`);
    assert.match(e.message, pattern, `${what}: rank ${r}`);
  });
}

test('desynchronized peers are detected from the frame headers: lengths, chunking, wire format, sequence', { timeout: 20_000 }, async () => {
  // Whichever rank first receives a frame it did not expect blames its sender and the abort
  // travels around the ring with that description.
  const desc = String.raw`\{seq \d+, [a-z-]+, wire \w+, sender \d, step \d+, segment \d+, chunk \d+, count \d+\}`;
  const expectedGot = new RegExp(`desynchronized ring: from rank \\d expected ${desc}, got ${desc}`);

  // Rank 1 has a different tensor length (31 vs 30): it expects 11 elements in segment 0.
  let errs = await desync(3, () => ({ chunkBytes: 40 }), (r) => (r === 1 ? 31 : 30));
  assertDesync(errs, expectedGot, 'length mismatch');

  // Rank 1 chunks differently.
  errs = await desync(3, (r) => ({ chunkBytes: r === 1 ? 16 : 40 }), () => 30);
  assertDesync(errs, expectedGot, 'chunking mismatch');

  // Rank 1 puts bf16 on the wire.
  errs = await desync(3, (r) => (r === 1 ? { wire: 'bf16' } : {}), () => 30);
  assertDesync(errs, /expected \{[^}]*wire (f32|bf16)[^}]*\}, got \{[^}]*wire (bf16|f32)/, 'wire mismatch');

  // Rank 1's frames carry a wrong sequence number (as if it had made one call more).
  const bumpSeq = (l: RingLink): RingLink => ({
    rank: l.rank,
    worldSize: l.worldSize,
    send: (m) => {
      const copy = m.slice();
      const v = new DataView(copy.buffer);
      v.setUint32(4, v.getUint32(4, true) + 1, true);
      return l.send(copy);
    },
    recv: () => l.recv(),
    close: () => l.close(),
  });
  errs = await desync(4, () => ({}), () => 100, bumpSeq);
  // Only rank 2 receives rank 1's frames: every rank reports rank 1, with rank 2's description.
  errs.forEach((e, r) => {
    assert.ok(e instanceof CollectiveError && e.peer === 1, `sequence mismatch, rank ${r}: ${String(e)}`);
    assert.match((e as Error).message, /from rank 1 expected \{seq 0, reduce-scatter, wire f32, sender 1, step 0, segment 1, chunk 0, count 25\}, got \{seq 1,/);
  });

  // A corrupted frame (not ours at all).
  const garble = (l: RingLink): RingLink => ({ ...l, rank: l.rank, worldSize: l.worldSize, send: (m) => l.send(new Uint8Array(m.length)), recv: () => l.recv(), close: () => l.close() });
  errs = await desync(2, () => ({}), () => 10, garble);
  assert.ok(errs[0] instanceof CollectiveError && errs[0].peer === 1, String(errs[0]));
  assert.match((errs[0] as Error).message, /not an all-reduce frame/);
});

test('after a closed link, operations reject instead of hanging', { timeout: 10_000 }, async () => {
  const ring = createMemoryRing(2, { recvTimeoutMs: 3_000 });
  await ring[1]!.close();
  const started = Date.now();
  const err = (await reasons([allReduce(new Float32Array(100), ring[0]!)]))[0];
  assertCollectiveError(err, 1, 'rank 0');
  assert.ok(Date.now() - started < 1_000);
});
