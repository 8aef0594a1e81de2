#!/usr/bin/env node
// Benchmark: what each optimisation of the gRPC ring saves, measured PAIRED. Not a test.
//
//   npx tsc -b packages/worker && node bench/allreduce-ab.mjs [--size 64] [--rounds 8] [--block 4] [--variants base,copy,readahead,jssum]
//
// Two rank processes (world 2) run blocks of all-reduces, switching the transport between
// variants block by block (the order alternates each round), so every variant sees the same load
// on a shared machine; each block reports CPU seconds per GB (both ranks, all threads) and busbw.
// The figure to read is the paired ratio: a variant's CPU per GB over the base's in the same
// round, median over rounds (> 1: the variant costs more, i.e. the optimisation it turns off
// saves that much). Variants turn ONE optimisation off by reaching into private fields of the
// link (this script measures internals on purpose; it is not an API):
//   base       everything on
//   copy       no zero-copy sends: the ring copies each chunk into a buffer, the link into a frame
//   readahead  Node's per-DATA-frame read-ahead tick back on (skipReadAhead off)
//   jssum      the reduce-scatter sum in JavaScript instead of WebAssembly SIMD
//   none       all three off (the transport before them)
import { spawn } from 'node:child_process';
import { loadavg } from 'node:os';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    size: { type: 'string', default: '64' },
    rounds: { type: 'string', default: '8' },
    block: { type: 'string' },
    variants: { type: 'string', default: 'base,copy,readahead,jssum' },
    rank: { type: 'string' },
  },
});
const MiB = 1 << 20;
const size = Number(args.size);
const rounds = Number(args.rounds);
const block = Number(args.block ?? Math.max(2, Math.round(256 / size)));
const variants = args.variants.split(',');
const token = 'bench-token-0123456789abcdef';
const jobId = 'bench-ab';

/** Each returns a function that undoes it. */
const switches = {
  base: () => () => {},
  copy: (link) => {
    link.sendv = undefined; // own property hides the method: the ring falls back to send()
    return () => delete link.sendv;
  },
  readahead: (link) => {
    const onChunk = link.decoder.onChunk;
    link.decoder.onChunk = undefined;
    const http2Stream = link.inbound.call.call.child.underlyingCalls[0].call.child.http2Stream;
    http2Stream._readableState.readingMore = false;
    return () => (link.decoder.onChunk = onChunk);
  },
  jssum: (link, memory) => {
    memory.add = (v, p) => {
      // The ring's JavaScript loop, as it runs when the data is not in the collective memory.
      const count = v.length;
      let i = 0;
      for (const end = count & ~3; i < end; i += 4) {
        v[i] += p[i];
        v[i + 1] += p[i + 1];
        v[i + 2] += p[i + 2];
        v[i + 3] += p[i + 3];
      }
      for (; i < count; i++) v[i] += p[i];
    };
    return () => delete memory.add;
  },
};
// All three off: the transport as it was before them.
switches.none = (link, memory) => {
  const undo = [switches.copy(link, memory), switches.readahead(link, memory), switches.jssum(link, memory)];
  return () => undo.forEach((u) => u());
};

async function rank(r) {
  const worker = await import('@finetune/worker');
  const { collectiveMemory } = await import('../packages/worker/dist/collective/collective-memory.js');
  const server = await worker.startCollectiveServer({ port: 0, host: '127.0.0.1', token, jobId, rank: r, worldSize: 2 });
  process.stdout.write(`${JSON.stringify({ port: server.port })}\n`);
  const lines = createInterface({ input: process.stdin });
  const { peers } = JSON.parse(await new Promise((resolve) => lines.once('line', resolve)));
  const link = await worker.connectRing({ server, rank: r, worldSize: 2, peers, token, jobId, timeoutMs: 60_000, connectDeadlineMs: 20_000 });
  const memory = collectiveMemory();
  const data = worker.allocateCollectiveBuffer((size * MiB) / 4);
  for (let i = 0; i < data.length; i++) data[i] = (i % 97) * 0.01;
  for (let i = 0; i < 2; i++) await worker.allReduce(data, link);
  const results = Object.fromEntries(variants.map((v) => [v, []]));
  for (let round = 0; round < rounds; round++) {
    for (const v of round % 2 === 0 ? variants : [...variants].reverse()) {
      const undo = switches[v](link, memory);
      await worker.allReduce(data, link); // settle into the variant
      await worker.allReduce(new Float32Array(1), link); // barrier
      const cpu = process.cpuUsage();
      const start = performance.now();
      for (let i = 0; i < block; i++) await worker.allReduce(data, link);
      const seconds = (performance.now() - start) / 1000;
      const used = process.cpuUsage(cpu);
      undo();
      const gb = (size * MiB * block) / 1e9;
      results[v].push({ busbw: gb / seconds, cpu: (used.user + used.system) / 1e6 / gb });
    }
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
  lines.close();
  await link.close();
  await server.close();
}

async function parent() {
  for (const v of variants) if (!(v in switches)) throw new Error(`--variants: unknown variant '${v}' (known: ${Object.keys(switches).join(', ')})`);
  const { WORKER_NODE_ARGS } = await import('@finetune/controller');
  const ranks = [];
  for (let r = 0; r < 2; r++) {
    const child = spawn(process.execPath, [...WORKER_NODE_ARGS, new URL(import.meta.url).pathname, ...process.argv.slice(2), '--rank', String(r)], { stdio: ['pipe', 'pipe', 'inherit'] });
    const out = createInterface({ input: child.stdout });
    const port = await new Promise((resolve) => out.once('line', (line) => resolve(JSON.parse(line).port)));
    const rows = [];
    out.on('line', (line) => rows.push(JSON.parse(line)));
    ranks.push({ child, rows, port });
  }
  const load0 = loadavg()[0];
  for (const x of ranks) x.child.stdin.write(`${JSON.stringify({ peers: ranks.map((y) => `127.0.0.1:${y.port}`) })}\n`);
  await Promise.all(ranks.map((x) => new Promise((resolve) => x.child.once('exit', resolve))));
  const [a, b] = ranks.map((x) => x.rows[0]);
  const med = (xs) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];
  const cpuOf = (v) => a[v].map((x, i) => (x.cpu + b[v][i].cpu) / 2);
  const base = variants[0];
  console.log(`world 2, ${size} MiB, ${rounds} rounds x ${block} all-reduces per variant; node ${process.version}; 1-min load ${load0.toFixed(2)} -> ${loadavg()[0].toFixed(2)}`);
  for (const v of variants) {
    const cpu = cpuOf(v);
    const ratio = cpu.map((c, i) => c / cpuOf(base)[i]);
    console.log(
      `${v.padEnd(10)} busbw med ${med(a[v].map((x) => x.busbw)).toFixed(3)} GB/s | CPU s/GB per rank med ${med(cpu).toFixed(3)} min ${Math.min(...cpu).toFixed(3)} | paired CPU ratio vs ${base}: ${med(ratio).toFixed(3)}`,
    );
  }
}

await (args.rank !== undefined ? rank(Number(args.rank)) : parent());
