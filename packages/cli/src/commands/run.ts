/** `ftjob run JOB.yaml`: runs a FineTuneJob on this machine (the embedded local default). */
import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError } from 'commander';
import { parseFineTuneJob, SpecError } from '@finetune/api';
import { prepareRun, runTraining, UserError } from '@finetune/worker';
import { terminalProgress } from '../progress.js';

interface RunOptions {
  resume?: boolean;
  threads?: number;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  return n;
}

export function runCommand(): Command {
  return new Command('run')
    .description('fine-tune locally: the same FineTuneJob YAML you would kubectl apply')
    .argument('<job>', 'FineTuneJob YAML file')
    .option('--resume', 'continue from the latest checkpoint in the output folder')
    .option('--threads <n>', 'threads per onnxruntime op (default: all cores)', positiveInt)
    .action(async (file: string, opts: RunOptions) => {
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (err) {
        throw new UserError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
      }
      let job;
      try {
        job = parseFineTuneJob(text, file);
      } catch (err) {
        if (err instanceof SpecError) throw new UserError(err.message);
        throw err;
      }
      const progress = terminalProgress();
      const prepared = await prepareRun(job);
      const result = await runTraining(prepared, { progress, ...(opts.resume ? { resume: true } : {}), ...(opts.threads ? { threads: opts.threads } : {}) });
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
    });
}
