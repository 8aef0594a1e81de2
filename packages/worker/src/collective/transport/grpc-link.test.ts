import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { credentials } from '@grpc/grpc-js';
import { CollectiveServiceClient, Phase, type StatusResponse } from '@finetune/proto';
import { CollectiveError } from '../link.js';
import { bearerMetadata } from './auth.js';
import { pattern, sameBytes, startRing } from './fixtures/ring.js';

const MiB = 1024 * 1024;

describe('gRPC ring link: semantics', { timeout: 120_000 }, () => {
  it('delivers messages of every size in order around a ring of 3', { timeout: 30_000 }, async () => {
    const ring = await startRing(3, { chunkBytes: 64 * 1024 });
    try {
      const sizes = [0, 1, 7, 8, 100, 65_535, 65_536, 65_537, 200_000, 0, 3];
      await Promise.all(
        ring.links.map(async (link) => {
          const prev = (link.rank + 2) % 3;
          const sending = (async () => {
            for (let i = 0; i < sizes.length; i++) await link.send(pattern(sizes[i]!, link.rank, i));
          })();
          for (let i = 0; i < sizes.length; i++) {
            const got = await link.recv();
            assert.ok(sameBytes(got, pattern(sizes[i]!, prev, i)), `rank ${link.rank} message ${i} (${sizes[i]} bytes) from rank ${prev}`);
            if (got.byteLength > 0 && got.byteLength <= 64 * 1024) assert.equal(got.byteOffset % 8, 0, `single-frame message ${i} is 8-byte aligned`);
          }
          await sending;
        }),
      );
    } finally {
      await ring.close();
    }
  });

  it('moves 8+ MiB messages, split into frames or whole, and returns single frames 8-byte aligned', { timeout: 60_000 }, async () => {
    for (const chunkBytes of [1 * MiB, 4 * MiB, 16 * MiB]) {
      const ring = await startRing(2, { chunkBytes });
      try {
        const big = pattern(8 * MiB + 3, 0, chunkBytes);
        const [, got] = await Promise.all([ring.links[0]!.send(big), ring.links[1]!.recv()]);
        assert.ok(sameBytes(got, big), `chunk ${chunkBytes}`);
        const floats = new Float32Array(2 * MiB).map((_, i) => i * 0.5);
        const [, gotFloats] = await Promise.all([ring.links[1]!.send(new Uint8Array(floats.buffer)), ring.links[0]!.recv()]);
        if (chunkBytes >= floats.byteLength) assert.equal(gotFloats.byteOffset % 8, 0, 'single-frame message is 8-byte aligned');
        const view = new Float32Array(gotFloats.buffer, gotFloats.byteOffset, gotFloats.byteLength / 4);
        assert.equal(view[12345], 12345 * 0.5);
      } finally {
        await ring.close();
      }
    }
  });

  it('lets the sender reuse its bytes as soon as send resolves', { timeout: 30_000 }, async () => {
    const ring = await startRing(2, { chunkBytes: 1 * MiB });
    try {
      const buffer = new Uint8Array(6 * MiB + 5);
      const expected: Uint8Array[] = [];
      for (let i = 0; i < 6; i++) {
        buffer.set(pattern(buffer.byteLength, 1, i));
        expected.push(buffer.slice());
        await ring.links[0]!.send(buffer); // nobody reads yet: the bytes sit in the transport
        buffer.fill(0xff);
      }
      for (let i = 0; i < 6; i++) assert.ok(sameBytes(await ring.links[1]!.recv(), expected[i]!), `message ${i}`);
    } finally {
      await ring.close();
    }
  });

  it('sendv delivers the concatenation of its parts as one message, in order with send()', { timeout: 30_000 }, async () => {
    const ring = await startRing(2, { chunkBytes: 64 * 1024 });
    try {
      const [a, b] = ring.links as [(typeof ring.links)[0], (typeof ring.links)[0]];
      // Parts of every kind: empty, small (merged into the frame head), large, and boundaries that
      // fall inside and across the 64 KiB frames.
      const cases: number[][] = [[], [0], [32, 100_000], [1, 2, 3], [65_536 - 40, 40, 65_536, 7], [300_000], [32, 0, 65_536 * 3 + 1], [256, 257]];
      const sending = (async () => {
        for (let i = 0; i < cases.length; i++) {
          const parts = cases[i]!.map((n, k) => pattern(n, i, k));
          await a.sendv(parts);
          await a.send(pattern(10, i, 99)); // interleaved with plain sends
        }
      })();
      for (let i = 0; i < cases.length; i++) {
        const expected = Buffer.concat(cases[i]!.map((n, k) => pattern(n, i, k)));
        const got = await b.recv();
        assert.ok(sameBytes(got, expected), `sendv ${i} (${cases[i]}) arrives as one message`);
        assert.ok(sameBytes(await b.recv(), pattern(10, i, 99)), `send after sendv ${i}`);
      }
      await sending;
    } finally {
      await ring.close();
    }
  });

  it('sendv reads the caller memory until it resolves, not after', { timeout: 30_000 }, async () => {
    const ring = await startRing(2, { chunkBytes: 1 * MiB });
    try {
      const [a, b] = ring.links as [(typeof ring.links)[0], (typeof ring.links)[0]];
      const payload = pattern(3 * MiB + 5, 2, 0);
      const buffer = payload.slice();
      const sent = a.sendv([buffer.subarray(0, 10), buffer.subarray(10)]);
      const got = b.recv();
      await sent;
      buffer.fill(0xee); // the transport is done with it: this must not reach the peer
      assert.ok(sameBytes(await got, payload));
    } finally {
      await ring.close();
    }
  });

  it('sendv rejects when the link closes before its bytes were written', { timeout: 30_000 }, async () => {
    const ring = await startRing(2, { chunkBytes: 1 * MiB, maxBufferedSendBytes: 1 * MiB });
    try {
      const a = ring.links[0]!;
      // Nobody reads: after the HTTP/2 window and socket buffers fill, writes stall.
      const sends = Array.from({ length: 64 }, (_, i) => a.sendv([pattern(1 * MiB, 0, i)]));
      for (const s of sends) s.catch(() => {});
      await sleep(200);
      await a.close();
      const settled = await Promise.allSettled(sends);
      assert.ok(settled.some((s) => s.status === 'rejected'), 'some sends were still unwritten at close');
      for (const s of settled) if (s.status === 'rejected') assert.ok(s.reason instanceof CollectiveError && /link is closed/.test(s.reason.message), String(s.reason));
    } finally {
      await ring.close();
    }
  });

  it('keeps the order of many small messages sent without waiting', { timeout: 30_000 }, async () => {
    const ring = await startRing(2);
    try {
      const n = 5_000;
      const sends: Promise<void>[] = [];
      for (let i = 0; i < n; i++) {
        const m = new Uint8Array(16);
        new DataView(m.buffer).setUint32(0, i);
        sends.push(ring.links[0]!.send(m));
      }
      for (let i = 0; i < n; i++) {
        const got = await ring.links[1]!.recv();
        assert.equal(new DataView(got.buffer, got.byteOffset, got.byteLength).getUint32(0), i);
      }
      await Promise.all(sends);
    } finally {
      await ring.close();
    }
  });

  it('applies backpressure: send waits while the receiver does not read, then everything arrives', { timeout: 30_000 }, async () => {
    const ring = await startRing(2, { chunkBytes: 256 * 1024, maxBufferedSendBytes: 512 * 1024, maxBufferedRecvBytes: 1 * MiB });
    try {
      // Beyond the receiver's queue, grpc-js buffers up to 16 frames on each side and HTTP/2 allows
      // a 16 MiB window; 64 MiB is well past all of it.
      const n = 64;
      let sent = 0;
      const sender = (async () => {
        for (let i = 0; i < n; i++) {
          await ring.links[0]!.send(pattern(MiB, 0, i));
          sent++;
        }
      })();
      // Let the sender run until it stalls.
      let last = -1;
      while (sent !== last) {
        last = sent;
        await sleep(300);
      }
      const stalledAt = sent;
      assert.ok(sent < n, `the sender should stall while nobody reads (sent ${sent} of ${n} MiB)`);
      assert.ok(sent >= 4, `some data should be buffered (sent ${sent})`);
      for (let i = 0; i < n; i++) assert.ok(sameBytes(await ring.links[1]!.recv(), pattern(MiB, 0, i)), `message ${i}`);
      await sender;
      assert.equal(sent, n);
      console.log(`# backpressure: the sender stalled after ${stalledAt} MiB`);
    } finally {
      await ring.close();
    }
  });

  it('works for a world of one (the rank subscribes to itself)', { timeout: 10_000 }, async () => {
    const ring = await startRing(1);
    try {
      const link = ring.links[0]!;
      await link.send(new Uint8Array([1, 2, 3]));
      assert.deepEqual([...(await link.recv())], [1, 2, 3]);
    } finally {
      await ring.close();
    }
  });

  it('close() rejects pending and later operations, and the next rank sees the stream end', { timeout: 10_000 }, async () => {
    const ring = await startRing(2);
    try {
      const [a, b] = ring.links as [typeof ring.links[0], typeof ring.links[0]];
      await a.send(new Uint8Array([9]));
      const pending = a.recv();
      await a.close();
      await assert.rejects(pending, (err: unknown) => err instanceof CollectiveError && /link is closed/.test(err.message));
      await assert.rejects(a.send(new Uint8Array(1)), /link is closed/);
      await a.close(); // idempotent
      // b still gets what a sent before closing, then learns that rank 0 left.
      assert.deepEqual([...(await b.recv())], [9]);
      await assert.rejects(b.recv(), (err: unknown) => err instanceof CollectiveError && err.peer === 0 && /rank 0 \(127\.0\.0\.1:\d+\) closed its stream/.test(err.message));
      // and sending to rank 0 fails once its cancellation arrives.
      await assert.rejects(async () => {
        for (let i = 0; i < 500; i++) {
          await b.send(new Uint8Array(1));
          await sleep(10);
        }
      }, (err: unknown) => err instanceof CollectiveError && err.peer === 0 && /rank 0 \(127\.0\.0\.1:\d+\) stopped receiving/.test(err.message));
    } finally {
      await ring.close();
    }
  });

  it('a silent previous rank makes recv reject after timeoutMs, and the failure travels round the ring', { timeout: 15_000 }, async () => {
    const ring = await startRing(3, { timeoutMs: 600 });
    try {
      const [r0, r1, r2] = ring.links as [typeof ring.links[0], typeof ring.links[0], typeof ring.links[0]];
      const start = Date.now();
      // Nobody sends: rank 0 waits on rank 2.
      await assert.rejects(r0.recv(), (err: unknown) => {
        assert.ok(err instanceof CollectiveError);
        assert.equal(err.peer, 2);
        assert.match(err.message, new RegExp(`rank 2 \\(${ring.peers[2]!.replace(/\./g, '\\.')}\\) sent nothing for 0\\.6 s`));
        return true;
      });
      const elapsed = Date.now() - start;
      assert.ok(elapsed >= 550 && elapsed < 5_000, `timed out after ${elapsed} ms`);
      // Rank 0 aborted its stream to rank 1 with the reason: rank 1 fails fast, naming rank 0.
      await assert.rejects(r1.recv(), (err: unknown) => {
        assert.ok(err instanceof CollectiveError);
        assert.equal(err.peer, 0);
        assert.match(err.message, /rank 0 \(127\.0\.0\.1:\d+\) aborted the collective: rank 0 aborted: rank 2 .* sent nothing/);
        return true;
      });
      assert.ok(Date.now() - start < 5_000);
      void r2;
    } finally {
      await ring.close();
    }
  });

  it('serves Status (token required) with what setStatus recorded', { timeout: 10_000 }, async () => {
    const ring = await startRing(1);
    const client = new CollectiveServiceClient(ring.peers[0]!, credentials.createInsecure());
    try {
      ring.servers[0]!.setStatus({ phase: Phase.PHASE_TRAINING, step: 42, epoch: 1, lastLoss: 0.25, validationMetric: 0.9, validationMetricName: 'accuracy' });
      const status = await new Promise<StatusResponse>((resolve, reject) =>
        client.status({}, bearerMetadata(ring.token), (err, res) => (err ? reject(err) : resolve(res))),
      );
      assert.equal(status.jobId, ring.jobId);
      assert.equal(status.phase, Phase.PHASE_TRAINING);
      assert.equal(status.step, 42);
      assert.equal(status.epoch, 1);
      assert.equal(status.lastLoss, 0.25);
      assert.equal(status.validationMetric, 0.9);
      assert.equal(status.validationMetricName, 'accuracy');
      assert.ok(status.updatedAtUnixMs > 0);
    } finally {
      client.close();
      await ring.close();
    }
  });
});
