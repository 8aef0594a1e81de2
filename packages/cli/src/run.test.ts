/**
 * `ftjob run` as a user runs it: one worker, several worker processes over gRPC, a killed worker,
 * and --resume after it. Uses a toy task (4 features, 2 classes) and a tiny MLP built in code.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeToyTask } from '@finetune/worker';

const BIN = fileURLToPath(new URL('../bin/ftjob.js', import.meta.url));

function workspace(epochs: number, checkpointEvery = 5, workers = '{}'): { dir: string; job: string } {
  const { dir, trainPath, modelPath } = writeToyTask({
    prefix: 'ftjob-run-',
    seed: 11,
    examples: 400,
    label: (x) => (x[0]! - x[1]! + 0.3 * x[3]! > 0 ? 'pos' : 'neg'),
    layers: [{ out: 8, init: [-0.5, 0.5] }, { out: 2, init: [-0.35, 0.35] }],
  });
  const job = join(dir, 'job.yaml');
  writeFileSync(
    job,
    [
      'apiVersion: finetune.dev/v1alpha1',
      'kind: FineTuneJob',
      'metadata: {name: toy}',
      'spec:',
      `  model: {source: ${modelPath}}`,
      `  dataset: {train: {path: ${trainPath}}, featuresField: x, classes: [neg, pos]}`,
      '  optimizer: {type: adamw, learningRate: 0.03}',
      `  training: {epochs: ${epochs}, batchSize: 12, seed: 1, checkpointEvery: ${checkpointEvery}}`,
      `  workers: ${workers}`,
      `  output: {path: ${join(dir, 'out')}}`,
      '',
    ].join('\n'),
  );
  return { dir, job };
}

test('ftjob run with 2 worker processes trains over gRPC and rank 0 writes the outputs', () => {
  const { dir, job } = workspace(3);
  const res = spawnSync(process.execPath, [BIN, 'run', job, '--workers', '2'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(res.status, 0, res.stderr);
  assert.match(res.stderr, /starting 2 worker processes on 127\.0\.0\.1:\d+, 127\.0\.0\.1:\d+/);
  assert.match(res.stdout, /best val_accuracy: \d+\.\d+% at step/);
  const metrics = JSON.parse(readFileSync(join(dir, 'out', 'metrics.json'), 'utf8'));
  assert.ok(metrics.best.accuracy > 0.85, `accuracy ${metrics.best.accuracy}`);
  assert.equal(metrics.config.workers.replicas, 1, 'the spec is unchanged; --workers overrides it');
  assert.ok(existsSync(join(dir, 'out', 'model.onnx')));
});

test('spec.workers.allReduce reaches the worker processes: bfloat16 on the wire, overlapped with the backward pass', () => {
  // Buckets of ~10 bytes: each parameter closes one (the last, small, joins the one before).
  const { dir, job } = workspace(3, 5, '{allReduce: {overlap: auto, bucketMiB: 0.00001, wirePrecision: bfloat16}}');
  const res = spawnSync(process.execPath, [BIN, 'run', job, '--workers', '2'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(res.status, 0, res.stderr);
  assert.match(res.stdout + res.stderr, /overlapping the all-reduce with the backward pass: 3 gradient bucket/);
  const metrics = JSON.parse(readFileSync(join(dir, 'out', 'metrics.json'), 'utf8'));
  assert.deepEqual(metrics.config.workers.allReduce, { overlap: 'auto', bucketMiB: 0.00001, wirePrecision: 'bfloat16' });
  assert.ok(metrics.best.accuracy > 0.85, `accuracy ${metrics.best.accuracy}`);
});

test('killing one worker ends the run with a clear error; --resume continues from the last checkpoint', async () => {
  const { dir, job } = workspace(400, 3);
  const child = spawn(process.execPath, [BIN, 'run', job, '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let killed = false;
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    const pid = /worker rank 1: pid (\d+)/.exec(stderr)?.[1];
    // Kill rank 1 once training is under way (rank 0 has written a checkpoint).
    if (!killed && pid && existsSync(join(dir, 'out', 'checkpoints', 'latest'))) {
      killed = true;
      process.kill(Number(pid), 'SIGKILL');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.ok(killed, `the worker was never killed:\n${stderr}`);
  assert.notEqual(code, 0);
  assert.match(stderr, /worker rank 1 \(pid \d+\) was killed by SIGKILL/);
  assert.match(stderr, /rerun with --resume/);

  // Shorten the job so the resumed run finishes quickly, then resume.
  writeFileSync(job, readFileSync(job, 'utf8').replace('epochs: 400', 'epochs: 3'));
  const resumed = spawnSync(process.execPath, [BIN, 'run', job, '--workers', '2', '--resume'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, /resuming from .*step-\d+/);
  assert.ok(existsSync(join(dir, 'out', 'model.onnx')));
});

test('Ctrl-C stops ftjob run after the current step with a checkpoint of it; --resume starts exactly there', async () => {
  const { dir, job } = workspace(400, 1000);
  const latest = join(dir, 'out', 'checkpoints', 'latest');
  const child = spawn(process.execPath, [BIN, 'run', job, '--workers', '2'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let sent = false;
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    // Once training is under way (the first epoch's checkpoint exists), as a user would press it.
    if (!sent && existsSync(latest)) {
      sent = true;
      child.kill('SIGINT');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  assert.ok(sent, `SIGINT was never sent:\n${stderr}`);
  assert.equal(code, 130, `128 + SIGINT:\n${stderr}`);
  // The runner passes the stop on as SIGTERM; rank 0 checkpoints the step it completed last.
  const stopped = /ftjob: stopped by SIGTERM after step (\d+) \(checkpoint (\S+)\); continue with --resume/.exec(stderr);
  assert.ok(stopped, stderr);
  const step = Number(stopped[1]);
  assert.equal(stopped[2], join(dir, 'out', 'checkpoints', `step-${String(step).padStart(8, '0')}`));
  assert.equal(readFileSync(latest, 'utf8').trim(), `step-${String(step).padStart(8, '0')}`);
  assert.match(stderr, /ftjob: stopped by SIGINT; continue with --resume\n/);
  assert.doesNotMatch(stderr, /was killed|exited with code/, 'a stop, not a failure');

  writeFileSync(job, readFileSync(job, 'utf8').replace('epochs: 400', 'epochs: 6'));
  const resumed = spawnSync(process.execPath, [BIN, 'run', job, '--workers', '2', '--resume'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stderr, new RegExp(`resuming from \\S*step-0*${step} \\(step ${step}\\)`));
});

test('ftjob run rejects a bad spec with one line naming the field, and a missing file, with a non-zero exit', () => {
  const { dir, job } = workspace(1);
  writeFileSync(job, readFileSync(job, 'utf8').replace('epochs: 1', 'epoch: 1'));
  const bad = spawnSync(process.execPath, [BIN, 'run', job], { encoding: 'utf8' });
  assert.equal(bad.status, 2, 'bad input exits 2 (not retryable)');
  assert.equal(bad.stderr.trim(), `ftjob: error: ${job}: spec.training.epoch: unknown field (did you mean 'epochs'?)`);
  const missing = spawnSync(process.execPath, [BIN, 'run', join(dir, 'nope.yaml')], { encoding: 'utf8' });
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /^ftjob: error: cannot read .*nope\.yaml: ENOENT\n$/);
  assert.ok(!existsSync(join(dir, 'out')), 'nothing written');
});
