// A small FineTuneJob that `ftjob run` trains in seconds: a 4-feature, 2-class task in JSON lines
// and a tiny MLP built in code (the same kind the CLI tests use). Shared by test/metrics and test/report.
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ModelBuilder, randomValues, rng, saveModel } from '@finetune/worker';

export const FTJOB = fileURLToPath(new URL('../../packages/cli/bin/ftjob.js', import.meta.url));

/**
 * Writes data, model and job YAML into a new temp folder. `training` is merged into spec.training;
 * the output goes to <dir>/out.
 */
export function toyJob({ name = 'toy', training = {} } = {}) {
  const dir = mkdtempSync(join(tmpdir(), `ft-${name}-`));
  const r = rng(11);
  const rows = [];
  for (let i = 0; i < 400; i++) {
    const x = Array.from(randomValues(r, 4, -1, 1));
    rows.push(JSON.stringify({ x: x.map((v) => Number(v.toFixed(4))), label: x[0] - x[1] + 0.3 * x[3] > 0 ? 'pos' : 'neg' }));
  }
  writeFileSync(join(dir, 'train.jsonl'), rows.join('\n') + '\n');
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 4]);
  const h = m.node('Tanh', [m.node('Gemm', [x, m.param('fc1.weight', [8, 4], randomValues(r, 32, -0.5, 0.5)), m.param('fc1.bias', [8], randomValues(r, 8, -0.5, 0.5))], { transB: 1 })]);
  m.output(m.node('Gemm', [h, m.param('fc2.weight', [2, 8], randomValues(r, 16, -0.35, 0.35)), m.param('fc2.bias', [2], randomValues(r, 2, -0.35, 0.35))], { transB: 1 }));
  saveModel(m.build(), join(dir, 'mlp.onnx'));
  const spec = {
    model: { source: join(dir, 'mlp.onnx') },
    dataset: { train: { path: join(dir, 'train.jsonl') }, featuresField: 'x', classes: ['neg', 'pos'] },
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
