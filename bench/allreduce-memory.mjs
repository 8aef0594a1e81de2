#!/usr/bin/env node
// Benchmark: the ring all-reduce's own cost (framing, summing, copying, promise bookkeeping) over
// in-process memory links, to check that the algorithm is not the bottleneck next to a network.
// Not a test: it asserts nothing beyond one sanity check of the result.
//
//   npx tsc -b packages/worker && node bench/allreduce-memory.mjs
//   node bench/allreduce-memory.mjs --size-mib 64 --worlds 2,4 --wires f32,bf16,f16 --iters 5
//
// All N ranks run on this one thread, so a wall-clock time T is the work of N ranks; one rank on
// its own machine needs about T/N. Printed per rank:
//   algbw = data size / (T/N)                  how fast one rank all-reduces its tensor
//   busbw = algbw * 2(N-1)/N                   bytes one rank pushes through the ring per second
// A network link must beat busbw for the transport to be the bottleneck (10 GbE = 1.25 GB/s,
// 25 GbE = 3.1 GB/s, 100 GbE = 12.5 GB/s). The memory links copy every message once, as a
// transport would; with 'bf16'/'f16' busbw counts the 4-byte float32 elements, not wire bytes.
import { parseArgs } from 'node:util';
import { allReduce, createMemoryRing, rng, randomValues } from '@finetune/worker';

const { values: args } = parseArgs({
  options: {
    'size-mib': { type: 'string', default: '64' },
    worlds: { type: 'string', default: '2,4' },
    wires: { type: 'string', default: 'f32,bf16,f16' },
    'chunk-bytes': { type: 'string' },
    iters: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1' },
  },
});
const elements = Math.floor((Number(args['size-mib']) * 2 ** 20) / 4);
const bytes = elements * 4;
const iters = Number(args.iters);
const warmup = Number(args.warmup);
const options = args['chunk-bytes'] ? { chunkBytes: Number(args['chunk-bytes']) } : {};
const gb = (b, s) => (b / s / 1e9).toFixed(2);

// Reference point: one float32 add pass (a[i] += b[i]) over the whole tensor.
{
  const a = randomValues(rng(1), elements);
  const b = randomValues(rng(2), elements);
  const add = () => {
    for (let i = 0; i < elements; i++) a[i] += b[i];
  };
  add();
  const t0 = performance.now();
  for (let k = 0; k < 3; k++) add();
  const s = (performance.now() - t0) / 3 / 1000;
  console.log(`reference: float32 a += b over ${args['size-mib']} MiB: ${(s * 1000).toFixed(1)} ms (${gb(bytes, s)} GB/s of tensor)`);
}

console.log(`node ${process.version}; ${args['size-mib']} MiB float32 (${elements} elements); chunk ${options.chunkBytes ?? 'default'} bytes; median of ${iters}`);
console.log('world  wire   wall ms   per-rank ms   algbw GB/s   busbw GB/s');
for (const n of args.worlds.split(',').map(Number)) {
  const random = rng(n);
  const inputs = Array.from({ length: n }, () => randomValues(random, elements));
  const data = inputs.map((x) => new Float32Array(x.length));
  for (const wire of args.wires.split(',')) {
    const ring = createMemoryRing(n);
    const times = [];
    for (let it = 0; it < warmup + iters; it++) {
      data.forEach((d, r) => d.set(inputs[r]));
      const t0 = performance.now();
      await Promise.all(ring.map((link, r) => allReduce(data[r], link, { ...options, wire })));
      if (it >= warmup) times.push(performance.now() - t0);
    }
    // Sanity: element 0 is the sum of the inputs (loosely, for the 16-bit wires); ranks agree.
    const exact = inputs.reduce((s, x) => s + x[0], 0);
    if (Math.abs(data[0][0] - exact) > 0.05 * n || data.some((d) => d[elements - 1] !== data[0][elements - 1])) throw new Error('wrong result');
    times.sort((a, b) => a - b);
    const wall = times[Math.floor(times.length / 2)];
    const perRank = wall / n / 1000;
    const algbw = bytes / perRank;
    console.log(
      `${String(n).padStart(5)}  ${wire.padEnd(5)} ${wall.toFixed(0).padStart(8)} ${(perRank * 1000).toFixed(0).padStart(13)} ${gb(algbw, 1).padStart(12)} ${gb((algbw * 2 * (n - 1)) / n, 1).padStart(12)}`,
    );
  }
}
