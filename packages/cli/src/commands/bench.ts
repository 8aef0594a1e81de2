/**
 * `ftjob bench allreduce`: the ring all-reduce between N local worker processes over gRPC, one
 * line per size (time, algbw, busbw as nccl-tests define them). When Debian's python3-torch is
 * installed, torch.distributed with the Gloo backend runs the same sizes in the same run and the
 * ratio is printed. A benchmark: it prints figures, it asserts nothing.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { createInterface } from 'node:readline';
import { Command, InvalidArgumentError, Option } from 'commander';
import { planRing, freePorts, WORKER_NODE_ARGS } from '@finetune/controller';
import { benchmarkAllReduce, busBandwidthFactor, joinRing, ringConfigFromEnv, UserError, type AllReduceBenchRow } from '@finetune/worker';

const MiB = 1 << 20;
const DEFAULT_SIZES = [MiB, 4 * MiB, 16 * MiB, 64 * MiB];

function parseSize(value: string, previous: number[] | undefined): number[] {
  const m = /^(\d+(?:\.\d+)?)\s*([kKmMgG]i?[bB]?|[bB])?$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError(`expected a byte count like 1048576, 4MiB or 64M, got '${value}'`);
  const unit = (m[2] ?? 'b').toLowerCase()[0];
  const bytes = Math.round(Number(m[1]) * (unit === 'k' ? 1024 : unit === 'm' ? MiB : unit === 'g' ? 1024 * MiB : 1));
  if (bytes < 4) throw new InvalidArgumentError(`size must be at least 4 bytes (one float32), got '${value}'`);
  return [...(previous ?? []), bytes];
}

function parseWorld(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new InvalidArgumentError(`expected a world size from 1 to 64, got '${value}'`);
  return n;
}

interface BenchOptions {
  world: number;
  size?: number[];
  iters?: number;
  wire: 'f32' | 'bf16' | 'f16';
  gloo: boolean;
  python: string;
}

const fmtBytes = (b: number) => (b >= MiB ? `${(b / MiB).toFixed(b % MiB ? 1 : 0)} MiB` : b >= 1024 ? `${(b / 1024).toFixed(0)} KiB` : `${b} B`);

export function benchCommand(): Command {
  const bench = new Command('bench').description('benchmarks against peers (print figures and ratios)');
  bench
    .command('allreduce')
    .description('ring all-reduce over gRPC between local worker processes, next to torch.distributed Gloo when available')
    .option('--world <n>', 'worker processes', parseWorld, 2)
    .option('--size <bytes>', 'message size (repeatable; e.g. 4MiB); default 1, 4, 16, 64 MiB', parseSize)
    .option('--iters <n>', 'timed iterations per size (default: about 2 s worth)', (v) => parseWorld(v))
    .addOption(new Option('--wire <format>', 'element format on the wire').choices(['f32', 'bf16', 'f16']).default('f32'))
    .option('--no-gloo', 'skip the torch.distributed Gloo comparison')
    .option('--python <path>', 'Python with PyTorch for the Gloo peer', '/usr/bin/python3')
    .action(async (opts: BenchOptions) => {
      const sizes = opts.size ?? DEFAULT_SIZES;
      const ours = await runOurs(opts.world, sizes, opts);
      const gloo = opts.gloo ? runGloo(opts.world, sizes, opts) : { skipped: 'disabled with --no-gloo' };
      const factor = busBandwidthFactor(opts.world);
      process.stdout.write(`all-reduce, world ${opts.world}, float32 sum, wire ${opts.wire}; busbw = algbw x ${factor.toFixed(3)}\n`);
      process.stdout.write(`${'size'.padStart(10)} ${'time ms'.padStart(10)} ${'algbw GB/s'.padStart(11)} ${'busbw GB/s'.padStart(11)}${'rows' in gloo ? `${'gloo busbw'.padStart(11)} ${'ratio'.padStart(6)}` : ''}\n`);
      ours.forEach((row, i) => {
        const g = 'rows' in gloo ? gloo.rows[i] : undefined;
        const gBus = g ? (g.bytes / g.seconds / 1e9) * factor : undefined;
        process.stdout.write(
          `${fmtBytes(row.bytes).padStart(10)} ${(row.seconds * 1000).toFixed(2).padStart(10)} ${row.algbwGBps.toFixed(3).padStart(11)} ${row.busbwGBps.toFixed(3).padStart(11)}` +
            (gBus !== undefined ? `${gBus.toFixed(3).padStart(11)} ${(row.busbwGBps / gBus).toFixed(2).padStart(5)}x` : '') +
            '\n',
        );
      });
      if ('skipped' in gloo) process.stdout.write(`gloo: skipped (${gloo.skipped})\n`);
      else process.stdout.write(`gloo: torch ${gloo.torch} (torch.distributed, backend gloo, 127.0.0.1)\n`);
    });
  bench
    .command('allreduce-worker', { hidden: true })
    .option('--size <bytes>', 'size', parseSize)
    .option('--iters <n>', 'iterations', (v) => Number(v))
    .option('--wire <format>', 'wire', 'f32')
    .action(async (opts: { size: number[]; iters?: number; wire: 'f32' | 'bf16' | 'f16' }) => {
      const ring = await joinRing(ringConfigFromEnv(process.env));
      try {
        const rows = await benchmarkAllReduce(ring.link, opts.size, { wire: opts.wire, ...(opts.iters ? { iterations: opts.iters } : {}) });
        if (ring.parallel.rank === 0) for (const row of rows) process.stdout.write(JSON.stringify(row) + '\n');
      } finally {
        await ring.close();
      }
    });
  return bench;
}

async function runOurs(world: number, sizes: number[], opts: BenchOptions): Promise<AllReduceBenchRow[]> {
  const ports = await freePorts(world);
  const workers = planRing('bench/allreduce', world, { addressOf: (r) => `127.0.0.1:${ports[r]}`, portOf: (r) => ports[r]! }, randomBytes(24).toString('hex'));
  const entry = fileURLToPath(new URL('../../bin/ftjob.js', import.meta.url));
  const args = [...WORKER_NODE_ARGS, entry, 'bench', 'allreduce-worker', '--wire', opts.wire, ...sizes.flatMap((s) => ['--size', String(s)]), ...(opts.iters ? ['--iters', String(opts.iters)] : [])];
  const rows: AllReduceBenchRow[] = [];
  const failures: string[] = [];
  await Promise.all(
    workers.map(
      (w) =>
        new Promise<void>((resolve) => {
          const child = spawn(process.execPath, args, { env: { ...process.env, ...w.env }, stdio: ['ignore', 'pipe', 'pipe'] });
          createInterface({ input: child.stdout! }).on('line', (line) => {
            if (w.rank === 0 && line.startsWith('{')) rows.push(JSON.parse(line) as AllReduceBenchRow);
          });
          let err = '';
          child.stderr!.on('data', (d) => (err += d));
          child.on('exit', (code) => {
            if (code !== 0) failures.push(`rank ${w.rank} exited with ${code}: ${err.trim().split('\n').pop()}`);
            resolve();
          });
        }),
    ),
  );
  if (failures.length > 0) throw new UserError(`all-reduce benchmark failed: ${failures.join('; ')}`);
  return rows;
}

function runGloo(world: number, sizes: number[], opts: BenchOptions): { rows: { bytes: number; seconds: number }[]; torch: string } | { skipped: string } {
  if (!existsSync(opts.python)) return { skipped: `${opts.python} not found (install Debian's python3-torch)` };
  const probe = spawnSync(opts.python, ['-c', 'import torch.distributed as d; print(d.is_gloo_available())'], { encoding: 'utf8' });
  if (probe.status !== 0 || probe.stdout.trim() !== 'True') return { skipped: 'PyTorch with Gloo is not installed' };
  const script = fileURLToPath(new URL('../../../../bench/gloo_allreduce.py', import.meta.url));
  const port = 20000 + Math.floor(Math.random() * 20000);
  const res = spawnSync(opts.python, [script], {
    input: JSON.stringify({ world, sizes, iterations: opts.iters ?? null, warmup: 2, port }),
    encoding: 'utf8',
    timeout: 900_000,
  });
  if (res.status !== 0) return { skipped: `gloo run failed: ${(res.stderr || '').trim().split('\n').pop()}` };
  const lines = res.stdout.trim().split('\n').map((l) => JSON.parse(l) as { bytes: number; seconds: number; torch: string });
  return { rows: lines, torch: lines[0]?.torch ?? '?' };
}
