import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { CollectiveError } from '../link.js';
import { connectRing, startCollectiveServer, type CollectiveServer } from './grpc.js';
import { HOST, newToken, startServers, unusedPort } from './fixtures/ring.js';

describe('rendezvous', { timeout: 60_000 }, () => {
  it('names the peer that never came when the connect deadline passes', { timeout: 15_000 }, async () => {
    const token = newToken();
    const servers = await startServers(3, 'job-r', token, []);
    const missingPort = await unusedPort();
    // Rank 2's server is not running: its address has no listener.
    await servers[2]!.close();
    const peers = [`${HOST}:${servers[0]!.port}`, `${HOST}:${servers[1]!.port}`, `${HOST}:${missingPort}`];
    try {
      const start = Date.now();
      const results = await Promise.allSettled(
        [0, 1].map((rank) =>
          connectRing({ server: servers[rank]!, rank, worldSize: 3, peers, token, jobId: 'job-r', timeoutMs: 5_000, connectDeadlineMs: 1_500 }),
        ),
      );
      const elapsed = Date.now() - start;
      for (const result of results) {
        assert.equal(result.status, 'rejected');
        const err = (result as PromiseRejectedResult).reason as unknown;
        assert.ok(err instanceof CollectiveError, String(err));
        assert.equal(err.peer, 2);
        assert.match(err.message, new RegExp(`rank 2 \\(127\\.0\\.0\\.1:${missingPort}\\) never answered within 1\\.5 s`));
        assert.doesNotMatch(err.message, /rank [01] \(/, 'only the missing peer is named');
      }
      assert.ok(elapsed >= 1_400 && elapsed < 6_000, `gave up after ${elapsed} ms`);
    } finally {
      await Promise.all(servers.slice(0, 2).map((s) => s.close()));
    }
  });

  it('waits with backoff for a peer that starts late', { timeout: 20_000 }, async () => {
    const token = newToken();
    const [server0] = await startServers(1, 'job-late', token, [], { worldSize: 2 });
    const port1 = await unusedPort();
    const peers = [`${HOST}:${server0!.port}`, `${HOST}:${port1}`];
    let server1: CollectiveServer | undefined;
    try {
      const joining0 = connectRing({ server: server0!, rank: 0, worldSize: 2, peers, token, jobId: 'job-late', timeoutMs: 5_000, connectDeadlineMs: 10_000 });
      await sleep(800);
      server1 = await startCollectiveServer({ port: port1, host: HOST, token, jobId: 'job-late', rank: 1, worldSize: 2, log: () => {} });
      const joining1 = connectRing({ server: server1, rank: 1, worldSize: 2, peers, token, jobId: 'job-late', timeoutMs: 5_000, connectDeadlineMs: 10_000 });
      const [link0, link1] = await Promise.all([joining0, joining1]);
      await link0.send(new Uint8Array([5]));
      assert.deepEqual([...(await link1.recv())], [5]);
      await Promise.all([link0.close(), link1.close()]);
    } finally {
      await server0!.close();
      await server1?.close();
    }
  });

  it('reports a peer that answers as another job', { timeout: 15_000 }, async () => {
    const token = newToken();
    const [server0] = await startServers(1, 'job-x', token, [], { worldSize: 2 });
    const stranger = await startCollectiveServer({ port: 0, host: HOST, token, jobId: 'job-old', rank: 1, worldSize: 2, log: () => {} });
    const peers = [`${HOST}:${server0!.port}`, `${HOST}:${stranger.port}`];
    try {
      await assert.rejects(
        connectRing({ server: server0!, rank: 0, worldSize: 2, peers, token, jobId: 'job-x', timeoutMs: 5_000, connectDeadlineMs: 1_000 }),
        (err: unknown) => {
          assert.ok(err instanceof CollectiveError);
          assert.equal(err.peer, 1);
          assert.match(err.message, /rank 1 \(127\.0\.0\.1:\d+\) answered but not as expected within 1 s: it answers as rank 1 of job "job-old"/);
          return true;
        },
      );
    } finally {
      await server0!.close();
      await stranger.close();
    }
  });

  it('can be aborted', { timeout: 15_000 }, async () => {
    const token = newToken();
    const [server0] = await startServers(1, 'job-abort', token, [], { worldSize: 2 });
    const peers = [`${HOST}:${server0!.port}`, `${HOST}:${await unusedPort()}`];
    const controller = new AbortController();
    try {
      const start = Date.now();
      setTimeout(() => controller.abort(), 300);
      await assert.rejects(
        connectRing({ server: server0!, rank: 0, worldSize: 2, peers, token, jobId: 'job-abort', timeoutMs: 5_000, connectDeadlineMs: 60_000, signal: controller.signal }),
        (err: unknown) => err instanceof CollectiveError && /abort/.test(err.message),
      );
      assert.ok(Date.now() - start < 5_000);
    } finally {
      await server0!.close();
    }
  });
});
