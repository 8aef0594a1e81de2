#!/usr/bin/env node
// Benchmark: the ring all-reduce over the gRPC link between N local processes, with what each
// rank spends per GB: CPU seconds (all threads, and the main thread alone: the rest is mostly V8's
// GC helper threads), system time and page faults. Not a test: it prints figures.
//
//   npx tsc -b packages/cli && node --initial-old-space-size=64 bench/allreduce-cpu.mjs
//   node bench/allreduce-cpu.mjs --world 3 --sizes 4,16,64 --chunk-mib 1 --iters 20 [--plain]
//
// Node options given to this script are passed on to the rank processes (the line above gives
// them the option `ftjob bench allreduce` and the local runner give their workers; see
// WORKER_NODE_ARGS in @finetune/controller). On a machine shared with other work a rank's rate
// follows the CPU it gets, so compare CPU s/GB rather than GB/s across runs; busbw = bytes / time
// x 2(N-1)/N as nccl-tests define it, and the per-GB figures are per GB of that traffic.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    world: { type: 'string', default: '2' },
    sizes: { type: 'string', default: '4,16,64' },
    iters: { type: 'string' },
    'chunk-mib': { type: 'string' },
    rank: { type: 'string' },
    plain: { type: 'boolean', default: false },
  },
});
const MiB = 1 << 20;
const world = Number(args.world);
const sizes = args.sizes.split(',').map(Number);
const token = 'bench-token-0123456789abcdef';
const jobId = 'bench-cpu';

function faults() {
  return Number(readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ')[7]);
}
function mainThreadCpu() {
  const f = readFileSync(`/proc/${process.pid}/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return (Number(f[11]) + Number(f[12])) / 100; // utime + stime in clock ticks (USER_HZ = 100)
}

async function rank(r) {
  const { connectRing, startCollectiveServer, allReduce, allocateCollectiveBuffer } = await import('@finetune/worker');
  const server = await startCollectiveServer({ port: 0, host: '127.0.0.1', token, jobId, rank: r, worldSize: world });
  process.stdout.write(`${JSON.stringify({ port: server.port })}\n`);
  const lines = createInterface({ input: process.stdin });
  const { peers } = JSON.parse(await new Promise((resolve) => lines.once('line', resolve)));
  const link = await connectRing({ server, rank: r, worldSize: world, peers, token, jobId, timeoutMs: 60_000, connectDeadlineMs: 20_000 });
  const options = { op: 'sum', ...(args['chunk-mib'] ? { chunkBytes: Math.round(Number(args['chunk-mib']) * MiB) } : {}) };
  for (const mib of sizes) {
    // Allocated as GradientBucket allocates gradients (collective memory: SIMD sums); --plain for an ordinary array.
    const data = args.plain ? new Float32Array((mib * MiB) / 4) : allocateCollectiveBuffer((mib * MiB) / 4);
    for (let i = 0; i < data.length; i++) data[i] = (i % 97) * 0.01;
    for (let i = 0; i < 2; i++) await allReduce(data, link, options);
    const iters = Number(args.iters ?? Math.max(3, Math.min(50, Math.floor(1e9 / (mib * MiB)))));
    await allReduce(new Float32Array(1), link, { op: 'sum' }); // barrier
    const f0 = faults();
    const m0 = mainThreadCpu();
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    for (let i = 0; i < iters; i++) await allReduce(data, link, options);
    const seconds = (performance.now() - t0) / 1000 / iters;
    const c = process.cpuUsage(c0);
    process.stdout.write(
      `${JSON.stringify({ mib, seconds, cpu: (c.user + c.system) / 1e6 / iters, sys: c.system / 1e6 / iters, main: (mainThreadCpu() - m0) / iters, faults: (faults() - f0) / iters })}\n`,
    );
  }
  lines.close();
  await link.close();
  await server.close();
}

async function parent() {
  const ranks = [];
  for (let r = 0; r < world; r++) {
    const child = spawn(process.execPath, [...process.execArgv, new URL(import.meta.url).pathname, ...process.argv.slice(2), '--rank', String(r)], {
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const out = createInterface({ input: child.stdout });
    const port = await new Promise((resolve) => out.once('line', (line) => resolve(JSON.parse(line).port)));
    const rows = [];
    out.on('line', (line) => rows.push(JSON.parse(line)));
    ranks.push({ child, rows, port });
  }
  const peers = ranks.map((x) => `127.0.0.1:${x.port}`);
  for (const x of ranks) x.child.stdin.write(`${JSON.stringify({ peers })}\n`);
  await Promise.all(ranks.map((x) => new Promise((resolve) => x.child.once('exit', resolve))));
  const factor = (2 * (world - 1)) / world;
  console.log(`all-reduce over gRPC, world ${world}, node ${process.version} ${process.execArgv.join(' ')}`);
  sizes.forEach((mib, i) => {
    const rows = ranks.map((x) => x.rows[i]);
    const gb = (mib * MiB * factor) / 1e9;
    const perRank = rows
      .map((row) => `${(row.cpu / gb).toFixed(2)} (main ${(row.main / gb).toFixed(2)}, sys ${(row.sys / gb).toFixed(2)}, ${(row.faults / gb / 1000).toFixed(0)}k faults)`)
      .join('; ');
    console.log(`${String(mib).padStart(4)} MiB: ${(rows[0].seconds * 1000).toFixed(1).padStart(7)} ms, busbw ${(gb / rows[0].seconds).toFixed(3)} GB/s; per rank CPU s/GB ${perRank}`);
  });
}

await (args.rank !== undefined ? rank(Number(args.rank)) : parent());
