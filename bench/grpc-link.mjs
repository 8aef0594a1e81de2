// Throughput of one gRPC ring link between two processes (not a test; prints GB/s).
//
//   npm run build && node bench/grpc-link.mjs [--total-mib 256] [--message-mib 4] [--chunk-mib 4] [--reps 5] [--copy]
//
// The sender uses sendv (the zero-copy send the ring uses: the payload goes from the caller's
// memory to the socket); --copy uses send() instead (one copy into the link's frame buffers).
//
// The parent is rank 0 and receives; a child process (this script with --child) is rank 1 and
// sends. In a world of 2, rank 1's next rank is rank 0, so the bytes travel on the Subscribe
// stream that rank 0 opened on rank 1's server: the server → client direction the transport uses.
// Then the same processes move the same bytes over a plain TCP socket, as the ceiling.
//
// The link is CPU-bound (copies and HTTP/2 framing in Node), so on a machine shared with other
// work its rate swings far more than TCP's. Each rep also prints the CPU seconds per GB of both
// processes and the rate they would allow with a free core each ("CPU-bound rate"). The first
// rep or two warm up (JIT, heap growth).
import { spawn } from 'node:child_process';
import { connect, createServer } from 'node:net';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { connectRing, startCollectiveServer } from '../packages/worker/dist/collective/transport/index.js';

const { values } = parseArgs({
  options: {
    child: { type: 'boolean', default: false },
    'total-mib': { type: 'string', default: '256' },
    'message-mib': { type: 'string', default: '4' },
    'chunk-mib': { type: 'string', default: '4' },
    reps: { type: 'string', default: '5' },
    peers: { type: 'string' },
    copy: { type: 'boolean', default: false },
  },
});
const MiB = 1024 * 1024;
const totalBytes = Number(values['total-mib']) * MiB;
const messageBytes = Number(values['message-mib']) * MiB;
const chunkBytes = Math.round(Number(values['chunk-mib']) * MiB);
const reps = Number(values.reps);
const messages = Math.ceil(totalBytes / messageBytes);
const token = 'bench-token-0123456789abcdef';
const jobId = 'bench';
const common = { worldSize: 2, token, jobId, timeoutMs: 30_000, connectDeadlineMs: 20_000, chunkBytes };

async function child() {
  // Rank 1: bind, tell the parent the port, learn the peers, then send.
  const server = await startCollectiveServer({ port: 0, host: '127.0.0.1', token, jobId, rank: 1, worldSize: 2 });
  process.stdout.write(`${JSON.stringify({ port: server.port })}\n`);
  const lines = createInterface({ input: process.stdin });
  const first = await new Promise((resolve) => lines.once('line', resolve));
  const { peers, tcpPort } = JSON.parse(first);
  const link = await connectRing({ ...common, server, rank: 1, peers });
  const message = new Uint8Array(messageBytes).fill(7);
  for (let rep = 0; rep < reps; rep++) {
    const cpu = process.cpuUsage();
    if (values.copy) for (let i = 0; i < messages; i++) await link.send(message);
    else {
      // As the ring does: several zero-copy sends outstanding (each resolves once written).
      const pending = [];
      for (let i = 0; i < messages; i++) {
        if (pending.length >= 4) await pending.shift();
        pending.push(link.sendv([message]));
      }
      await Promise.all(pending);
    }
    await link.recv(); // the parent's "done", so reps do not overlap
    const used = process.cpuUsage(cpu);
    process.stdout.write(`${JSON.stringify({ cpuSeconds: (used.user + used.system) / 1e6 })}\n`);
  }
  await link.close();
  await server.close();
  // TCP baseline: the same bytes over a plain socket.
  const chunk = Buffer.alloc(messageBytes, 7);
  for (let rep = 0; rep < reps; rep++) {
    const socket = connect(tcpPort, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    for (let i = 0; i < messages; i++) {
      if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
    }
    await new Promise((resolve) => socket.end(resolve));
  }
  lines.close();
}

async function parent() {
  const server = await startCollectiveServer({ port: 0, host: '127.0.0.1', token, jobId, rank: 0, worldSize: 2 });
  const tcpRates = [];
  let tcpFinished;
  const tcpDone = new Promise((resolve) => (tcpFinished = resolve));
  const tcpServer = createServer((socket) => {
    const start = performance.now();
    let bytes = 0;
    socket.on('data', (data) => (bytes += data.length));
    socket.on('end', () => {
      tcpRates.push(bytes / ((performance.now() - start) / 1000) / 1e9);
      if (tcpRates.length === reps) {
        tcpServer.close();
        tcpFinished();
      }
    });
  });
  await new Promise((resolve) => tcpServer.listen(0, '127.0.0.1', resolve));
  const proc = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--child', ...process.argv.slice(2)], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const out = createInterface({ input: proc.stdout });
  const { port } = JSON.parse(await new Promise((resolve) => out.once('line', resolve)));
  const peers = [`127.0.0.1:${server.port}`, `127.0.0.1:${port}`];
  proc.stdin.write(`${JSON.stringify({ peers, tcpPort: tcpServer.address().port })}\n`);
  const link = await connectRing({ ...common, server, rank: 0, peers });
  console.log(`node ${process.version}; ${messages} messages of ${messageBytes / MiB} MiB (${(messages * messageBytes) / MiB} MiB), frames of ${chunkBytes / MiB} MiB, sender ${values.copy ? 'send() (one copy)' : 'sendv() (zero-copy)'}`);
  const results = [];
  const cpuBound = [];
  for (let rep = 0; rep < reps; rep++) {
    const start = performance.now();
    const cpu = process.cpuUsage();
    let bytes = 0;
    for (let i = 0; i < messages; i++) {
      const message = await link.recv();
      bytes += message.byteLength;
      link.release(message); // as the ring does: the link reuses the buffer
    }
    const seconds = (performance.now() - start) / 1000;
    const used = process.cpuUsage(cpu);
    await link.send(new Uint8Array(1));
    const { cpuSeconds: senderCpu } = JSON.parse(await new Promise((resolve) => out.once('line', resolve)));
    const receiverCpu = (used.user + used.system) / 1e6;
    const gb = bytes / 1e9;
    results.push(gb / seconds);
    // With a core each, the slower side bounds the rate: an estimate that ignores other load on the machine.
    cpuBound.push(gb / Math.max(receiverCpu, senderCpu));
    console.log(
      `rep ${rep + 1}: ${(bytes / MiB).toFixed(0)} MiB in ${seconds.toFixed(3)} s = ${(gb / seconds).toFixed(2)} GB/s; ` +
        `CPU s/GB receiver ${(receiverCpu / gb).toFixed(2)}, sender ${(senderCpu / gb).toFixed(2)} (CPU-bound rate ${(gb / Math.max(receiverCpu, senderCpu)).toFixed(2)} GB/s)`,
    );
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  console.log(`gRPC link: best ${Math.max(...results).toFixed(2)} GB/s, median ${median(results).toFixed(2)} GB/s; median CPU-bound rate ${median(cpuBound).toFixed(2)} GB/s (1 GB = 1e9 bytes)`);
  await tcpDone;
  console.log(`plain TCP, same processes: best ${Math.max(...tcpRates).toFixed(2)} GB/s, median ${median(tcpRates).toFixed(2)} GB/s; link/TCP (medians) ${(median(results) / median(tcpRates)).toFixed(2)}`);
  await new Promise((resolve) => (proc.exitCode !== null ? resolve() : proc.once('exit', resolve)));
  await link.close();
  await server.close();
}

await (values.child ? child() : parent());
