#!/usr/bin/env node
// Benchmark: our gRPC ring all-reduce against torch.distributed (Gloo backend), INTERLEAVED.
// Not a test: it prints figures.
//
//   npx tsc -b packages/cli && node bench/allreduce-vs-gloo.mjs [--world 2] [--sizes 16,64,256] [--rounds 5]
//
// `ftjob bench allreduce` runs all of its sizes, then all of Gloo's: on a machine shared with
// other work the load moves between the two halves and the ratio moves with it. Here both sides
// stay up (our rank processes and Gloo's) and take turns, size by size, round by round (the order
// alternates), so each round compares the two under the same load; the paired ratio's median is
// the figure to quote. Both report CPU seconds per GB of busbw traffic per rank, which moves far
// less with load than GB/s does. Our ranks load the whole worker package and get the worker Node
// options, as `ftjob bench allreduce` and the local runner give them.
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    world: { type: 'string', default: '2' },
    sizes: { type: 'string', default: '16,64,256' },
    rounds: { type: 'string', default: '5' },
    'seconds-per-run': { type: 'string', default: '0.6' },
    python: { type: 'string', default: '/usr/bin/python3' },
    rank: { type: 'string' },
    peers: { type: 'string' },
  },
});
const MiB = 1 << 20;
const world = Number(args.world);
const sizes = args.sizes.split(',').map((s) => Math.round(Number(s) * MiB));
const rounds = Number(args.rounds);
const token = 'bench-token-0123456789abcdef';
const jobId = 'bench-vs-gloo';
const factor = world > 1 ? (2 * (world - 1)) / world : 1;

/** One of our ranks: joins the ring, then runs {bytes, iterations} commands from stdin. */
async function rank(r) {
  const { connectRing, startCollectiveServer, allReduce, allocateCollectiveBuffer } = await import('@finetune/worker');
  const server = await startCollectiveServer({ port: 0, host: '127.0.0.1', token, jobId, rank: r, worldSize: world });
  process.stdout.write(`${JSON.stringify({ port: server.port })}\n`);
  const lines = createInterface({ input: process.stdin });
  const it = lines[Symbol.asyncIterator]();
  const { peers } = JSON.parse((await it.next()).value);
  const link = await connectRing({ server, rank: r, worldSize: world, peers, token, jobId, timeoutMs: 120_000, connectDeadlineMs: 30_000 });
  const buffers = new Map();
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  for (let next = await it.next(); !next.done; next = await it.next()) {
    const { bytes, iterations } = JSON.parse(next.value);
    let data = buffers.get(bytes);
    if (!data) {
      data = allocateCollectiveBuffer(bytes / 4); // as GradientBucket allocates gradients
      for (let i = 0; i < data.length; i++) data[i] = (i % 97) * 0.01;
      buffers.set(bytes, data);
      for (let i = 0; i < 2; i++) await allReduce(data, link); // warm-up
    }
    await allReduce(new Float32Array(1), link); // barrier
    const cpu = process.cpuUsage();
    const start = performance.now();
    for (let i = 0; i < iterations; i++) await allReduce(data, link);
    const seconds = (performance.now() - start) / 1000 / iterations;
    const used = process.cpuUsage(cpu);
    process.stdout.write(`${JSON.stringify({ rank: r, bytes, iterations, seconds, cpuSeconds: (used.user + used.system) / 1e6 / iterations })}\n`);
  }
  await link.close();
  await server.close();
}

/** A child process that answers one JSON line per line written to it. */
function lineChild(command, argv, env) {
  const child = spawn(command, argv, { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } });
  const queue = [];
  const waiting = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (!line.startsWith('{')) return;
    const value = JSON.parse(line);
    const w = waiting.shift();
    if (w) w(value);
    else queue.push(value);
  });
  return {
    child,
    next: () => (queue.length > 0 ? Promise.resolve(queue.shift()) : new Promise((resolve) => waiting.push(resolve))),
    send: (value) => child.stdin.write(`${JSON.stringify(value)}\n`),
    end: () => child.stdin.end(),
  };
}

async function parent() {
  const { WORKER_NODE_ARGS } = await import('@finetune/controller');
  const self = fileURLToPath(import.meta.url);
  const ours = Array.from({ length: world }, (_, r) => lineChild(process.execPath, [...WORKER_NODE_ARGS, self, '--world', String(world), '--rank', String(r)]));
  const ports = await Promise.all(ours.map(async (c) => (await c.next()).port));
  for (const c of ours) c.send({ peers: ports.map((p) => `127.0.0.1:${p}`) });
  await Promise.all(ours.map((c) => c.next()));
  const gloo = lineChild(args.python, [fileURLToPath(new URL('./gloo_allreduce.py', import.meta.url)), '--serve', JSON.stringify({ world, port: 20000 + Math.floor(Math.random() * 20000), warmup: 2 })]);
  const { torch } = await gloo.next();

  const runOurs = async (bytes, iterations) => {
    for (const c of ours) c.send({ bytes, iterations });
    const rows = await Promise.all(ours.map((c) => c.next()));
    return { seconds: rows[0].seconds, cpu: rows.map((x) => x.cpuSeconds) };
  };
  const runGloo = async (bytes, iterations) => {
    gloo.send({ bytes, iterations });
    const { ranks } = await gloo.next();
    return { seconds: ranks[0].seconds, cpu: ranks.map((x) => x.cpuSeconds) };
  };

  const load0 = loadavg()[0];
  const results = new Map(sizes.map((b) => [b, { ours: [], gloo: [] }]));
  for (let round = 0; round < rounds; round++) {
    for (const bytes of sizes) {
      const iterations = Math.max(2, Math.round((Number(args['seconds-per-run']) * 1e9) / bytes));
      const pair = round % 2 === 0 ? [['ours', runOurs], ['gloo', runGloo]] : [['gloo', runGloo], ['ours', runOurs]];
      for (const [name, run] of pair) results.get(bytes)[name].push(await run(bytes, iterations));
    }
  }
  for (const c of ours) c.end();
  gloo.end();
  await Promise.all([...ours.map((c) => c.child), gloo.child].map((child) => new Promise((resolve) => (child.exitCode !== null ? resolve() : child.once('exit', resolve)))));

  const med = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const busbw = (bytes, row) => ((bytes / row.seconds) * factor) / 1e9;
  const cpuPerGB = (bytes, row) => med(row.cpu) / ((bytes * factor) / 1e9); // per rank (median of ranks)
  console.log(`all-reduce, world ${world}, float32 sum: gRPC ring vs torch ${torch} Gloo, ${rounds} interleaved rounds; node ${process.version}; 1-min load ${load0.toFixed(2)} -> ${loadavg()[0].toFixed(2)}`);
  console.log(`${'size'.padStart(8)}  ${'ours busbw med/best'.padStart(20)}  ${'gloo busbw med/best'.padStart(20)}  ${'ratio (paired med)'.padStart(18)}  ${'CPU s/GB ours'.padStart(13)}  ${'CPU s/GB gloo'.padStart(13)}`);
  for (const [bytes, r] of results) {
    const o = r.ours.map((x) => busbw(bytes, x));
    const g = r.gloo.map((x) => busbw(bytes, x));
    const ratio = o.map((x, i) => x / g[i]);
    console.log(
      `${`${bytes / MiB} MiB`.padStart(8)}  ${`${med(o).toFixed(3)} / ${Math.max(...o).toFixed(3)}`.padStart(20)}  ${`${med(g).toFixed(3)} / ${Math.max(...g).toFixed(3)}`.padStart(20)}  ${`${med(ratio).toFixed(2)}x`.padStart(18)}  ${med(r.ours.map((x) => cpuPerGB(bytes, x))).toFixed(2).padStart(13)}  ${med(r.gloo.map((x) => cpuPerGB(bytes, x))).toFixed(2).padStart(13)}`,
    );
  }
  console.log('busbw in GB/s (1e9 bytes), nccl-tests definition; CPU s/GB: CPU seconds per GB of busbw traffic, per rank');
}

await (args.rank !== undefined ? rank(Number(args.rank)) : parent());
