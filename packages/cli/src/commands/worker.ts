/**
 * `ftjob worker JOB.yaml`: one data-parallel worker. Its rank, world size, peers and token come
 * from the environment the local runner or the controller sets (FT_RANK, FT_WORLD_SIZE, FT_PEERS,
 * FT_PORT, FT_JOB_ID, FT_TOKEN). Without FT_WORLD_SIZE it trains alone. Rank 0 shows progress
 * and writes the outputs. With FT_METRICS_PORT it serves Prometheus metrics at /metrics until it exits.
 * SIGTERM or SIGINT during training stops it before the next step, rank 0 writing a checkpoint
 * first; the exit code is then 128 + the signal's number (143, 130), which the controller retries.
 */
import { Command, InvalidArgumentError } from 'commander';
import { prepareRun, runTraining, startWorkerMetrics, type StartedMetrics, ringConfigFromEnv, joinRing, startCollectiveServer, statusSink, SILENT, type CollectiveServer, type Ring, type RingEnvConfig } from '@finetune/worker';
import { readJobFile, positiveInt } from './job-file.js';
import { terminalProgress } from '../progress.js';
import { printResult } from './run.js';
import { gracefulStop } from '../graceful-stop.js';

export function workerCommand(): Command {
  return new Command('worker')
    .description('run one worker of a job (started by `ftjob run` or by the controller; reads FT_* rendezvous variables)')
    .argument('<job>', 'FineTuneJob YAML file')
    .option('--resume', 'continue from the latest checkpoint in the output folder')
    .option('--resume-if-present', 'continue from the latest checkpoint when there is one, else start fresh (what the controller runs)')
    .option('--threads <n>', 'threads per onnxruntime op', (v) => {
      try {
        return positiveInt(v);
      } catch (err) {
        throw new InvalidArgumentError((err as Error).message);
      }
    })
    .action(async (file: string, opts: { resume?: boolean; resumeIfPresent?: boolean; threads?: number }) => {
      const job = readJobFile(file);
      const distributed = process.env.FT_WORLD_SIZE !== undefined;
      const config = distributed ? ringConfigFromEnv(process.env) : undefined;
      const rank = config?.rank ?? 0;
      const prepared = await prepareRun(job);
      const log = (line: string) => process.stderr.write(`${line}\n`);
      let ring: Ring | undefined;
      let server: CollectiveServer | undefined;
      if (config && config.worldSize > 1) {
        ring = await joinRing(config, log);
        server = ring.server;
      } else if (config) {
        // Alone but under the controller: still answer Status so it can report progress.
        server = await startStatusOnlyServer(config, log);
      }
      let served: StartedMetrics | undefined;
      const stop = gracefulStop(log);
      try {
        served = await startWorkerMetrics(job, rank, process.env);
        const base = rank === 0 ? terminalProgress() : SILENT;
        const progress = server ? statusSink(server, base) : base;
        const result = await runTraining(prepared, {
          progress,
          metrics: served.metrics,
          ...(ring ? { parallel: ring.parallel } : {}),
          ...(opts.resume ? { resume: true } : opts.resumeIfPresent ? { resume: 'if-present' as const } : {}),
          ...(opts.threads ? { threads: opts.threads } : {}),
          stop: stop.signal,
        });
        if (rank === 0) printResult(result);
      } finally {
        stop.dispose();
        // Closing after a failure must not replace the error that says what went wrong.
        await closeQuietly(() => (ring ? ring.close() : server?.close()), log);
        await closeQuietly(() => served?.close(), log);
      }
    });
}

function startStatusOnlyServer(config: RingEnvConfig, log: (line: string) => void): Promise<CollectiveServer> {
  return startCollectiveServer({ port: config.port, host: config.host, token: config.token, jobId: config.jobId, rank: 0, worldSize: 1, log });
}

async function closeQuietly(close: () => Promise<void> | undefined, log: (line: string) => void): Promise<void> {
  try {
    await close();
  } catch (err) {
    log(`while closing: ${(err as Error).message}`);
  }
}
