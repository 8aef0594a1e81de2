import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { credentials, Metadata, status as Status, type ServiceError } from '@grpc/grpc-js';
import { CollectiveServiceClient, type PingResponse } from '@finetune/proto';
import { CollectiveError } from '../link.js';
import { bearerMetadata, checkBearer, tokenDigest } from './auth.js';
import { connectRing, startCollectiveServer } from './grpc.js';
import { HOST, newToken, startServers } from './fixtures/ring.js';

function ping(client: CollectiveServiceClient, metadata: Metadata): Promise<PingResponse> {
  return new Promise((resolve, reject) =>
    client.ping({ fromRank: 0 }, metadata, { deadline: Date.now() + 5_000 }, (err, res) => (err ? reject(err) : resolve(res))),
  );
}

describe('job token', { timeout: 60_000 }, () => {
  it('checkBearer accepts only the exact token, in any case of the Bearer scheme', () => {
    const digest = tokenDigest('s3cret-token-value');
    const md = (value?: string): Metadata => {
      const m = new Metadata();
      if (value !== undefined) m.set('authorization', value);
      return m;
    };
    assert.deepEqual(checkBearer(md('Bearer s3cret-token-value'), digest), { ok: true });
    assert.deepEqual(checkBearer(md('bearer s3cret-token-value'), digest), { ok: true });
    assert.deepEqual(checkBearer(md('Bearer s3cret-token-valuE'), digest), { ok: false, reason: 'wrong token' });
    assert.deepEqual(checkBearer(md('Bearer s3cret-token-value-longer'), digest), { ok: false, reason: 'wrong token' });
    assert.deepEqual(checkBearer(md('Basic s3cret-token-value'), digest), { ok: false, reason: 'malformed authorization header' });
    assert.deepEqual(checkBearer(md('s3cret-token-value'), digest), { ok: false, reason: 'malformed authorization header' });
    assert.deepEqual(checkBearer(md(), digest), { ok: false, reason: 'missing token' });
  });

  it('a server refuses a missing or wrong token with UNAUTHENTICATED and logs one line naming the caller', { timeout: 15_000 }, async () => {
    const token = newToken();
    const logs: string[] = [];
    const [server] = await startServers(1, 'job-a', token, logs);
    const client = new CollectiveServiceClient(`${HOST}:${server!.port}`, credentials.createInsecure());
    try {
      assert.equal((await ping(client, bearerMetadata(token))).jobId, 'job-a');
      assert.equal(logs.length, 0);

      await assert.rejects(ping(client, new Metadata()), (err: ServiceError) => {
        assert.equal(err.code, Status.UNAUTHENTICATED);
        assert.match(err.details, /missing or wrong job token/);
        return true;
      });
      assert.equal(logs.length, 1);
      assert.match(logs[0]!, /refused Ping from (ipv4:)?127\.0\.0\.1:\d+: missing token/);

      await assert.rejects(ping(client, bearerMetadata(`${token}x`)), (err: ServiceError) => err.code === Status.UNAUTHENTICATED);
      assert.equal(logs.length, 2);
      assert.match(logs[1]!, /refused Ping from (ipv4:)?127\.0\.0\.1:\d+: wrong token/);
      assert.ok(!logs.join('\n').includes(token), 'the log must not contain the token');

      // The data stream is guarded too.
      await assert.rejects(
        new Promise((resolve, reject) => {
          const call = client.subscribe({ jobId: 'job-a', rank: 0, worldSize: 1 }, new Metadata());
          call.on('data', resolve);
          call.on('error', reject);
        }),
        (err: ServiceError) => err.code === Status.UNAUTHENTICATED,
      );
      assert.match(logs[2]!, /refused Subscribe from (ipv4:)?127\.0\.0\.1:\d+: missing token/);
      await assert.rejects(
        new Promise((resolve, reject) =>
          client.status({}, bearerMetadata('not-the-token'), (err, res) => (err ? reject(err) : resolve(res))),
        ),
        (err: ServiceError) => err.code === Status.UNAUTHENTICATED,
      );
      assert.match(logs[3]!, /refused Status from .*: wrong token/);
    } finally {
      client.close();
      await server!.close();
    }
  });

  it('logs at most 20 refusals a minute', { timeout: 15_000 }, async () => {
    const logs: string[] = [];
    const [server] = await startServers(1, 'job-flood', newToken(), logs);
    const client = new CollectiveServiceClient(`${HOST}:${server!.port}`, credentials.createInsecure());
    try {
      for (let i = 0; i < 30; i++) await assert.rejects(ping(client, bearerMetadata('guess-guess-guess')), (err: ServiceError) => err.code === Status.UNAUTHENTICATED);
      assert.equal(logs.length, 20);
    } finally {
      client.close();
      await server!.close();
    }
  });

  it('a server refuses a subscriber that is not its next rank of the same job', { timeout: 15_000 }, async () => {
    const token = newToken();
    const logs: string[] = [];
    const [server] = await startServers(1, 'job-s', token, logs, { rank: 1, worldSize: 3 });
    const client = new CollectiveServiceClient(`${HOST}:${server!.port}`, credentials.createInsecure());
    const subscribe = (jobId: string, rank: number, worldSize: number): Promise<unknown> =>
      new Promise((resolve, reject) => {
        const call = client.subscribe({ jobId, rank, worldSize }, bearerMetadata(token));
        call.on('data', resolve);
        call.on('error', reject);
      });
    try {
      for (const [jobId, rank, worldSize] of [['job-s', 0, 3], ['job-s', 2, 4], ['job-other', 2, 3]] as const) {
        await assert.rejects(subscribe(jobId, rank, worldSize), (err: ServiceError) => {
          assert.equal(err.code, Status.FAILED_PRECONDITION);
          assert.match(err.details, /rank 1 of job "job-s" \(world size 3\) streams to rank 2, not to rank/);
          return true;
        });
      }
      assert.equal(logs.length, 3);
    } finally {
      client.close();
      await server!.close();
    }
  });

  it('connectRing with the wrong token fails at once with a CollectiveError saying the token was refused', { timeout: 15_000 }, async () => {
    const good = newToken();
    const logs: string[] = [];
    const servers = await startServers(2, 'job-b', good, logs);
    const peers = servers.map((s) => `${HOST}:${s.port}`);
    // This rank 0 (server and link) was given another token than rank 1.
    const wrongServer = await startCollectiveServer({ port: 0, host: HOST, token: 'wrong-token-wrong-token', jobId: 'job-b', rank: 0, worldSize: 2, log: () => {} });
    try {
      const start = Date.now();
      await assert.rejects(
        connectRing({ server: wrongServer, rank: 0, worldSize: 2, peers: [`${HOST}:${wrongServer.port}`, peers[1]!], token: 'wrong-token-wrong-token', jobId: 'job-b', timeoutMs: 5_000, connectDeadlineMs: 10_000 }),
        (err: unknown) => {
          assert.ok(err instanceof CollectiveError);
          assert.equal(err.peer, 1);
          assert.match(err.message, new RegExp(`rank 1 \\(127\\.0\\.0\\.1:${servers[1]!.port}\\) refused our job token \\(UNAUTHENTICATED`));
          assert.match(err.message, /same FT_TOKEN/);
          return true;
        },
      );
      assert.ok(Date.now() - start < 5_000, 'a refused token is not retried until the deadline');
      assert.ok(logs.some((line) => /rank 1\): refused Ping from .*127\.0\.0\.1:\d+: wrong token/.test(line)), logs.join('\n'));
    } finally {
      await wrongServer.close();
      await Promise.all(servers.map((s) => s.close()));
    }
  });
});
