/** `ftjob run JOB.yaml`: runs a FineTuneJob on this machine (the embedded local default). */
import { Command, InvalidArgumentError } from 'commander';
import { fileURLToPath } from 'node:url';
import { prepareRun, runTraining, startWorkerMetrics, parseMetricsPort, UserError, type RunResult } from '@finetune/worker';
import { runLocalWorkers } from '@finetune/controller';
import { terminalProgress } from '../progress.js';
import { readJobFile, positiveInt } from './job-file.js';
import { exitCodeOf, gracefulStop } from '../graceful-stop.js';

/** The run was stopped by a signal after its workers saved a checkpoint; exits with `exitCode`. */
export class Interrupted extends Error {
  override readonly name = 'Interrupted';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

interface RunOptions {
  resume?: boolean;
  threads?: number;
  workers?: number;
  metricsPort?: number;
}

const asPositiveInt = (v: string) => {
  try {
    return positiveInt(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

const asMetricsPort = (v: string) => {
  try {
    return parseMetricsPort(v, '--metrics-port');
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

export function printResult(result: RunResult): void {
  const s = result.summary;
  const best = s.best;
  const lines = [
    `finished: ${s.final.reason} at step ${s.final.step} (${s.timing.seconds.toFixed(1)} s, ${s.timing.samplesPerSecond.toFixed(0)} examples/s)`,
    best ? `best ${best.metric}: ${best.metric === 'val_accuracy' ? `${((best.accuracy ?? 0) * 100).toFixed(2)}%` : best.loss.toPrecision(4)} at step ${best.step}` : '',
    `wrote ${result.modelPath}`,
    `wrote ${result.outputDir}/metrics.json`,
    `wrote ${result.outputDir}/report.html`,
  ].filter(Boolean);
  process.stdout.write(lines.join('\n') + '\n');
}

export function runCommand(): Command {
  return new Command('run')
    .description('fine-tune locally: the same FineTuneJob YAML you would kubectl apply')
    .argument('<job>', 'FineTuneJob YAML file')
    .option('--resume', 'continue from the latest checkpoint in the output folder')
    .option('--workers <n>', 'data-parallel worker processes (default: spec.workers.replicas)', asPositiveInt)
    .option('--threads <n>', 'threads per onnxruntime op (default: cores / workers)', asPositiveInt)
    .option('--metrics-port <base>', 'serve Prometheus metrics at /metrics: rank r on port BASE+r', asMetricsPort)
    .action(async (file: string, opts: RunOptions) => {
      const job = readJobFile(file);
      if (opts.metricsPort !== undefined && opts.metricsPort + (opts.workers ?? job.spec.workers.replicas) - 1 > 65535) {
        throw new UserError(`--metrics-port ${opts.metricsPort}: rank ports BASE+r must stay below 65536`);
      }
      const replicas = opts.workers ?? job.spec.workers.replicas;
      if (job.spec.training.batchSize % replicas !== 0) {
        throw new UserError(`--workers ${replicas}: spec.training.batchSize (${job.spec.training.batchSize}) must be divisible by the number of workers`);
      }
      if (replicas > 1) {
        const entry = fileURLToPath(new URL('../../bin/ftjob.js', import.meta.url));
        const result = await runLocalWorkers({
          job,
          jobFile: file,
          replicas,
          entry,
          ...(opts.resume ? { resume: true } : {}),
          ...(opts.threads ? { threads: opts.threads } : {}),
          ...(opts.metricsPort !== undefined ? { metricsPort: opts.metricsPort } : {}),
        });
        if (result.interrupted) throw new Interrupted(`${result.message}; continue with --resume`, exitCodeOf(result.interrupted));
        if (result.code !== 0) throw new UserError(`${result.message}; fix the cause and rerun with --resume to continue from the last checkpoint`);
        return;
      }
      const prepared = await prepareRun(job);
      const served = await startWorkerMetrics(job, 0, process.env, opts.metricsPort);
      const stop = gracefulStop();
      try {
        const result = await runTraining(prepared, {
          progress: terminalProgress(),
          metrics: served.metrics,
          ...(opts.resume ? { resume: true } : {}),
          ...(opts.threads ? { threads: opts.threads } : {}),
          stop: stop.signal,
        });
        printResult(result);
      } finally {
        stop.dispose();
        await served.close();
      }
    });
}
