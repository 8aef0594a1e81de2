// A small FineTuneJob that `ftjob run` trains in seconds: a 4-feature, 2-class task in JSON lines
// and a tiny MLP built in code (the same kind the CLI tests use). Shared by test/metrics and test/report.
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeToyTask } from '@finetune/worker';

export const FTJOB = fileURLToPath(new URL('../../packages/cli/bin/ftjob.js', import.meta.url));

/**
 * Writes data, model and job YAML into a new temp folder. `training` is merged into spec.training;
 * the output goes to <dir>/out.
 */
export function toyJob({ name = 'toy', training = {} } = {}) {
  const { dir, trainPath, modelPath } = writeToyTask({
    prefix: `ft-${name}-`,
    seed: 11,
    examples: 400,
    label: (x) => (x[0] - x[1] + 0.3 * x[3] > 0 ? 'pos' : 'neg'),
    layers: [{ out: 8, init: [-0.5, 0.5] }, { out: 2, init: [-0.35, 0.35] }],
  });
  const spec = {
    model: { source: modelPath },
    dataset: { train: { path: trainPath }, featuresField: 'x', classes: ['neg', 'pos'] },
    optimizer: { type: 'adamw', learningRate: 0.03 },
    schedule: { type: 'cosine', warmupSteps: 10 },
    training: { epochs: 3, batchSize: 12, seed: 1, ...training },
    output: { path: join(dir, 'out') },
  };
  const file = join(dir, 'job.yaml');
  // JSON is YAML: no YAML writer needed.
  writeFileSync(file, JSON.stringify({ apiVersion: 'finetune.dev/v1alpha1', kind: 'FineTuneJob', metadata: { name }, spec }, null, 2) + '\n');
  return { dir, file, name, out: join(dir, 'out') };
}

/** Runs `ftjob ARGS...`; resolves { code, stdout, stderr } when it exits (kills it after timeoutMs). */
export function ftjob(args, { timeoutMs = 180_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [FTJOB, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}
