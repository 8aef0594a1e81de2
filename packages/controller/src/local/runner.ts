/**
 * The local runner: a FineTuneJob with N replicas becomes N worker processes on this machine,
 * talking gRPC over loopback with the same environment the controller gives pods. Rank 0 owns
 * the terminal (progress bar); other ranks' lines are prefixed. When one worker fails, the others
 * are stopped and the run ends with that worker's error, so nothing is left half-running. SIGINT or
 * SIGTERM stops every worker after its current step, rank 0 writing a checkpoint first.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import type { FineTuneJob } from '@finetune/api';
import { planWorkers, WORKER_NODE_ARGS } from '../plan/workers.js';
import { freePorts } from './ports.js';

export interface LocalRunOptions {
  job: FineTuneJob;
  /** The FineTuneJob file the workers read. */
  jobFile: string;
  replicas: number;
  resume?: boolean;
  /** Threads per worker's onnxruntime ops (default: cores / replicas). */
  threads?: number;
  /** The ftjob entry script the workers run. */
  entry: string;
  /** Serve each worker's Prometheus metrics: rank r on port metricsPort + r (FT_METRICS_PORT). */
  metricsPort?: number;
  /** Where status lines go (default stderr). */
  log?: (line: string) => void;
}

export interface LocalRunResult {
  code: number;
  /** The signal that stopped the run (SIGINT, SIGTERM): the workers checkpointed and stopped. */
  interrupted?: NodeJS.Signals;
  /** The rank that failed first, if any. */
  failedRank?: number;
  message?: string;
}

const GRACE_MS = 5000;

export async function runLocalWorkers(options: LocalRunOptions): Promise<LocalRunResult> {
  const log = options.log ?? ((line: string) => process.stderr.write(line + '\n'));
  const ports = await freePorts(options.replicas);
  const network = { addressOf: (r: number) => `127.0.0.1:${ports[r]}`, portOf: (r: number) => ports[r]! };
  const token = randomBytes(32).toString('hex');
  const workers = planWorkers(options.job, network, token, options.replicas);
  const threads = options.threads ?? Math.max(1, Math.floor(availableParallelism() / options.replicas));
  log(`starting ${workers.length} worker processes on ${workers.map((w) => w.address).join(', ')} (${threads} thread(s) each)`);

  const children: ChildProcess[] = [];
  let failure: LocalRunResult | undefined;
  let interrupted: NodeJS.Signals | undefined;
  let anyFailed = false;
  const stopAll = (signal: NodeJS.Signals) => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill(signal);
  };
  // The first signal asks every worker to stop after its step (SIGTERM: rank 0 checkpoints
  // first; see the worker command); a second one kills them.
  const onSignal = (signal: NodeJS.Signals) => {
    if (interrupted) return stopAll('SIGKILL');
    interrupted = signal;
    log(`${signal}: asking the workers to stop after their current step (again: kill them)`);
    stopAll('SIGTERM');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const exits = workers.map(
    (w) =>
      new Promise<void>((resolve) => {
        const args = [...WORKER_NODE_ARGS, options.entry, 'worker', options.jobFile, '--threads', String(threads), ...(options.resume ? ['--resume'] : [])];
        const child = spawn(process.execPath, args, {
          env: { ...process.env, ...w.env, ...(options.metricsPort !== undefined ? { FT_METRICS_PORT: String(options.metricsPort + w.rank) } : {}) },
          stdio: w.rank === 0 ? ['ignore', 'inherit', 'inherit'] : ['ignore', 'pipe', 'pipe'],
        });
        children.push(child);
        log(`worker rank ${w.rank}: pid ${child.pid}`);
        if (w.rank !== 0) {
          for (const stream of [child.stdout!, child.stderr!]) {
            createInterface({ input: stream }).on('line', (line) => log(`[rank ${w.rank}] ${line}`));
          }
        }
        child.on('exit', (code, signal) => {
          const ok = code === 0;
          if (!ok) anyFailed = true;
          if (!ok && !failure && !interrupted) {
            failure = { code: code ?? 1, failedRank: w.rank, message: `worker rank ${w.rank} (pid ${child.pid}) ${signal ? `was killed by ${signal}` : `exited with code ${code}`}` };
            log(`${failure.message}; stopping the other workers`);
            stopAll('SIGTERM');
            setTimeout(() => stopAll('SIGKILL'), GRACE_MS).unref();
          }
          resolve();
        });
      }),
  );
  await Promise.all(exits);
  process.off('SIGINT', onSignal);
  process.off('SIGTERM', onSignal);
  if (failure) return failure;
  // A signal that came after the last step changed nothing.
  if (interrupted && anyFailed) return { code: 1, interrupted, message: `stopped by ${interrupted}` };
  return { code: 0 };
}
