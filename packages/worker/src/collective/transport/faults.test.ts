/**
 * Faults with a REAL peer process: rank 1 runs fixtures/ring-peer.js in a child process, streaming
 * 1 MiB messages to rank 0 (this process) and reading rank 0's; the test kills or freezes it.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { CollectiveError } from '../link.js';
import { connectRing, startCollectiveServer, type CollectiveServer, type GrpcRingLink } from './grpc.js';
import { HOST, newToken } from './fixtures/ring.js';
import { allReduce } from '../ring.js';
import { allocateCollectiveBuffer } from '../collective-memory.js';

const PEER_SCRIPT = fileURLToPath(new URL('./fixtures/ring-peer.js', import.meta.url));
const TIMEOUT_MS = 2_000;

interface Pair {
  link: GrpcRingLink;
  server: CollectiveServer;
  child: ChildProcess;
  peerAddress: string;
  close(): Promise<void>;
}

/** Reads the child's stdout lines in order, none lost between awaits. */
function lineReader(child: ChildProcess): (what: string) => Promise<string> {
  const lines = createInterface({ input: child.stdout! });
  const queued: string[] = [];
  let waiting: { resolve(line: string): void; reject(err: Error): void; what: string } | undefined;
  let exited: string | undefined;
  lines.on('line', (line) => {
    if (waiting) {
      waiting.resolve(line);
      waiting = undefined;
    } else queued.push(line);
  });
  child.once('exit', (code, signal) => {
    exited = String(code ?? signal);
    waiting?.reject(new Error(`ring-peer exited (${exited}) before ${waiting.what}`));
    waiting = undefined;
  });
  return (what) => {
    const line = queued.shift();
    if (line !== undefined) return Promise.resolve(line);
    if (exited !== undefined) return Promise.reject(new Error(`ring-peer exited (${exited}) before ${what}`));
    return new Promise((resolve, reject) => {
      waiting = { resolve, reject, what };
    });
  };
}

/** A ring of 2: rank 0 here, rank 1 in a child process (all-reducing `allReduceBytes` in a loop when given). */
async function startPair(allReduceBytes = 0): Promise<Pair> {
  const token = newToken();
  const jobId = 'job-faults';
  const server = await startCollectiveServer({ port: 0, host: HOST, token, jobId, rank: 0, worldSize: 2, timeoutMs: TIMEOUT_MS, log: () => {} });
  const child = spawn(process.execPath, [PEER_SCRIPT], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: {
      ...process.env,
      FT_RANK: '1',
      FT_WORLD_SIZE: '2',
      FT_JOB_ID: jobId,
      FT_TOKEN: token,
      FT_BIND_HOST: HOST,
      FT_COLLECTIVE_TIMEOUT_MS: String(TIMEOUT_MS),
      FT_CONNECT_DEADLINE_MS: '15000',
      FT_PEER_ALLREDUCE_BYTES: String(allReduceBytes),
    },
  });
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  try {
    const nextLine = lineReader(child);
    const { port } = JSON.parse(await nextLine('binding')) as { port: number };
    const peers = [`${HOST}:${server.port}`, `${HOST}:${port}`];
    child.stdin!.write(`${JSON.stringify({ peers })}\n`);
    const link = await connectRing({ server, rank: 0, worldSize: 2, peers, token, jobId, timeoutMs: TIMEOUT_MS, connectDeadlineMs: 15_000 });
    assert.deepEqual(JSON.parse(await nextLine('connecting')), { connected: true });
    return {
      link,
      server,
      child,
      peerAddress: peers[1]!,
      async close() {
        kill();
        await link.close();
        await server.close();
      },
    };
  } catch (err) {
    kill();
    await server.close();
    throw err;
  }
}

function namesPeer1(address: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof CollectiveError, `expected a CollectiveError, got ${String(err)}`);
    assert.equal(err.peer, 1);
    assert.ok(err.message.includes(`rank 1 (${address})`), err.message);
    return true;
  };
}

async function recvUntilFailure(link: GrpcRingLink): Promise<never> {
  for (;;) await link.recv();
}

async function sendUntilFailure(link: GrpcRingLink): Promise<never> {
  const message = new Uint8Array(1024 * 1024);
  for (;;) await link.send(message);
}

describe('faults with a real peer process', { timeout: 90_000 }, () => {
  it('a peer killed with SIGKILL mid-stream: recv rejects at once, naming it', { timeout: 40_000 }, async () => {
    const pair = await startPair();
    try {
      // Both directions stream 1 MiB messages; take a few, then kill the peer while it is sending.
      const sending = sendUntilFailure(pair.link);
      sending.catch(() => undefined);
      for (let i = 0; i < 5; i++) assert.equal((await pair.link.recv()).byteLength, 1024 * 1024);
      pair.child.kill('SIGKILL');
      const killedAt = Date.now();
      await assert.rejects(recvUntilFailure(pair.link), namesPeer1(pair.peerAddress));
      const elapsed = Date.now() - killedAt;
      assert.ok(elapsed < TIMEOUT_MS + 3_000, `detected after ${elapsed} ms`);
      await assert.rejects(sending, namesPeer1(pair.peerAddress));
      console.log(`# SIGKILL detected after ${elapsed} ms: ${pair.link.failure?.message}`);
    } finally {
      await pair.close();
    }
  });

  for (const signal of ['SIGKILL', 'SIGSTOP'] as const) {
    it(`a peer that gets ${signal} during all-reduces with zero-copy sends outstanding: the all-reduce rejects within the timeout, naming it`, { timeout: 40_000 }, async () => {
      const bytes = 8 * 1024 * 1024;
      const pair = await startPair(bytes);
      try {
        const data = allocateCollectiveBuffer(bytes / 4).fill(1);
        for (let i = 0; i < 3; i++) {
          await allReduce(data, pair.link);
          // 1 + 2 first; then both ranks hold the same sum and double it.
          assert.equal(data[12345], 3 * 2 ** i, `all-reduce ${i} sums with the peer`);
        }
        const running = allReduce(data, pair.link);
        pair.child.kill(signal);
        const at = Date.now();
        await assert.rejects(running, namesPeer1(pair.peerAddress));
        const elapsed = Date.now() - at;
        assert.ok(elapsed < TIMEOUT_MS + 4_000, `detected after ${elapsed} ms`);
        console.log(`# ${signal} during an all-reduce detected after ${elapsed} ms`);
      } finally {
        pair.child.kill('SIGKILL');
        await pair.close();
      }
    });
  }

  it('a hung peer (SIGSTOP): recv and send reject within the timeout, naming it', { timeout: 40_000 }, async () => {
    const pair = await startPair();
    try {
      const sending = sendUntilFailure(pair.link);
      sending.catch(() => undefined);
      for (let i = 0; i < 5; i++) await pair.link.recv();
      pair.child.kill('SIGSTOP');
      const stoppedAt = Date.now();
      await assert.rejects(recvUntilFailure(pair.link), namesPeer1(pair.peerAddress));
      const elapsed = Date.now() - stoppedAt;
      // Frames already in flight may arrive first; then silence for TIMEOUT_MS (or keepalive) ends it.
      assert.ok(elapsed < TIMEOUT_MS + 4_000, `detected after ${elapsed} ms`);
      await assert.rejects(sending, namesPeer1(pair.peerAddress));
      console.log(`# SIGSTOP detected after ${elapsed} ms: ${pair.link.failure?.message}`);
    } finally {
      pair.child.kill('SIGKILL'); // works on a stopped process
      await pair.close();
    }
  });
});
