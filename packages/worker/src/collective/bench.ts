/**
 * All-reduce timing with the nccl-tests definitions: algbw = bytes / time, and
 * busbw = algbw · 2(N-1)/N (the bandwidth each link must sustain for a ring), so figures compare
 * across world sizes and with other libraries.
 */
import { allReduce } from './ring.js';
import { allocateCollectiveBuffer, freeCollectiveBuffer } from './collective-memory.js';
import type { RingLink } from './link.js';
import type { WireFormat } from './wire.js';

export interface AllReduceBenchRow {
  bytes: number;
  worldSize: number;
  iterations: number;
  /** Mean seconds per all-reduce. */
  seconds: number;
  algbwGBps: number;
  busbwGBps: number;
}

export function busBandwidthFactor(worldSize: number): number {
  return worldSize > 1 ? (2 * (worldSize - 1)) / worldSize : 1;
}

/** Times `iterations` all-reduces (after `warmup`) of each size; every rank calls it with the same arguments. */
export async function benchmarkAllReduce(
  link: RingLink,
  sizes: readonly number[],
  options: { iterations?: number; warmup?: number; wire?: WireFormat; budgetSeconds?: number } = {},
): Promise<AllReduceBenchRow[]> {
  const rows: AllReduceBenchRow[] = [];
  const barrier = new Float32Array(1);
  for (const bytes of sizes) {
    // Allocated as GradientBucket allocates the gradients a training step all-reduces.
    const data = allocateCollectiveBuffer(Math.max(1, Math.floor(bytes / 4)));
    for (let i = 0; i < data.length; i++) data[i] = (i % 97) * 0.01;
    const opts = { op: 'sum' as const, ...(options.wire ? { wire: options.wire } : {}) };
    for (let i = 0; i < (options.warmup ?? 2); i++) await allReduce(data, link, opts);
    // Fewer iterations for big sizes keeps each size to a few seconds; every rank derives the
    // same count from the same inputs, so the ranks stay in step.
    const iterations = options.iterations ?? Math.max(3, Math.min(50, Math.floor((options.budgetSeconds ?? 2) * 1e9 / Math.max(bytes, 1) / 2)));
    await allReduce(barrier, link, { op: 'sum' });
    const start = performance.now();
    for (let i = 0; i < iterations; i++) await allReduce(data, link, opts);
    const seconds = (performance.now() - start) / 1000 / iterations;
    const algbw = (data.length * 4) / seconds / 1e9;
    rows.push({ bytes: data.length * 4, worldSize: link.worldSize, iterations, seconds, algbwGBps: algbw, busbwGBps: algbw * busBandwidthFactor(link.worldSize) });
    freeCollectiveBuffer(data);
  }
  return rows;
}
