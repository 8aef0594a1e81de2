/**
 * The training loop end to end on a small synthetic task (4 features, 3 classes given by a fixed
 * linear rule), with a tiny MLP built in code: convergence, exact resume, export equivalence,
 * accumulation, early stopping, non-finite losses and bad input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, readdirSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import ort from 'onnxruntime-node';
import { validateFineTuneJob, type FineTuneJob } from '@finetune/api';
import { writeToyTask } from '../testing/toy-task.js';
import { prepareRun } from './prepare.js';
import { runTraining, evaluateDataset } from './trainer.js';
import { TrainingSessions } from './sessions.js';
import { batchFeeds } from '../data/dataset.js';
import { loadLatestCheckpoint } from './checkpoint.js';
import { UserError } from '../errors.js';

const W = [
  [1.5, -1, 0.5, 0],
  [-1, 1.2, 0, 0.8],
  [0.2, 0.3, -1.4, 1],
];

function workspace(): string {
  return writeToyTask({
    prefix: 'ftjob-train-',
    seed: 42,
    label: (x) => {
      const scores = W.map((w) => w.reduce((s, wi, j) => s + wi * x[j]!, 0));
      return ['a', 'b', 'c'][scores.indexOf(Math.max(...scores))]!;
    },
    layers: [{ out: 8, init: [-0.5, 0.5] }, { out: 3, init: [-0.35, 0.35] }],
  }).dir;
}

function job(dir: string, overrides: { spec?: Record<string, unknown>; training?: Record<string, unknown>; optimizer?: Record<string, unknown>; out?: string } = {}): FineTuneJob {
  return validateFineTuneJob({
    apiVersion: 'finetune.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: { name: 'toy' },
    spec: {
      model: { source: join(dir, 'mlp.onnx') },
      dataset: { train: { path: join(dir, 'train.jsonl') }, featuresField: 'x', classes: ['a', 'b', 'c'], validationSplit: 0.25 },
      optimizer: { type: 'adamw', learningRate: 0.05, ...overrides.optimizer },
      training: { epochs: 8, batchSize: 16, seed: 3, ...overrides.training },
      output: { path: join(dir, overrides.out ?? 'out') },
      ...overrides.spec,
    },
  });
}

test('fine-tuning the toy MLP learns the task and writes model, metrics and report', async () => {
  const dir = workspace();
  const result = await runTraining(await prepareRun(job(dir)), { threads: 1 });
  assert.ok(result.summary.best!.accuracy! >= 0.9, `validation accuracy ${result.summary.best!.accuracy}`);
  assert.ok(result.summary.train[0]!.loss > result.summary.train.at(-1)!.loss, 'the training loss goes down');
  for (const f of ['model.onnx', 'metrics.json', 'report.html']) assert.ok(existsSync(join(dir, 'out', f)), f);
  const metrics = JSON.parse(readFileSync(join(dir, 'out', 'metrics.json'), 'utf8'));
  assert.equal(metrics.final.step, 8 * Math.ceil(180 / 16));
  assert.deepEqual(metrics.dataset.classes, ['a', 'b', 'c']);
});

test('the exported model alone gives the same predictions as the training-time forward pass', async () => {
  const dir = workspace();
  const prepared = await prepareRun(job(dir, { training: { epochs: 2 } }));
  const result = await runTraining(prepared, { threads: 1 });
  const sessions = await TrainingSessions.create(prepared.artifacts);
  const indices = Array.from({ length: prepared.validation.length }, (_, i) => i);
  const batch = batchFeeds(prepared.validation, indices);
  const inputs = { x: new ort.Tensor('float32', batch.feeds.x!.data, batch.feeds.x!.dims) };
  const labels = new ort.Tensor('int64', batch.labels.data, batch.labels.dims);
  const trainingTime = await sessions.evaluate(inputs, labels, result.params);
  await sessions.release();
  const exported = await ort.InferenceSession.create(result.modelPath!);
  const out = await exported.run(inputs);
  await exported.release();
  assert.deepEqual(Array.from(Object.values(out)[0]!.data as Float32Array), Array.from(trainingTime.prediction.data as Float32Array));
  assert.equal((await evaluateDataset(await TrainingSessions.create(prepared.artifacts), prepared.validation, result.params, true)).accuracy, result.summary.best!.accuracy);
});

test('resume after an interruption reaches exactly the parameters of an uninterrupted run', async () => {
  const dir = workspace();
  const spec = { training: { epochs: 3, checkpointEvery: 4 } };
  const full = await runTraining(await prepareRun(job(dir, { ...spec, out: 'full' })), { threads: 1 });
  // 10 steps then "killed" (checkpoint at step 8 is the latest), then resumed.
  await runTraining(await prepareRun(job(dir, { ...spec, out: 'split' })), { threads: 1, stopAfterSteps: 10 });
  const checkpoint = loadLatestCheckpoint(join(dir, 'split', 'checkpoints'));
  assert.equal(checkpoint!.step, 8);
  const resumed = await runTraining(await prepareRun(job(dir, { ...spec, out: 'split' })), { threads: 1, resume: true });
  for (const [name, values] of full.params) assert.deepEqual(Array.from(resumed.params.get(name)!), Array.from(values), name);
  assert.equal(resumed.summary.final.step, full.summary.final.step);
  assert.deepEqual(resumed.summary.eval.map((e) => e.loss), full.summary.eval.map((e) => e.loss));
});

test('gradient accumulation over 4 micro-batches equals one full batch', async () => {
  const dir = workspace();
  const sgd = { type: 'sgd', learningRate: 0.1, momentum: 0.9 };
  const one = await runTraining(await prepareRun(job(dir, { optimizer: sgd, training: { maxSteps: 6, batchSize: 16 }, out: 'a' })), { threads: 1 });
  const four = await runTraining(await prepareRun(job(dir, { optimizer: sgd, training: { maxSteps: 6, batchSize: 16, gradientAccumulationSteps: 4 }, out: 'b' })), { threads: 1 });
  for (const [name, values] of one.params) {
    const other = four.params.get(name)!;
    const worst = values.reduce((w, v, i) => Math.max(w, Math.abs(v - other[i]!)), 0);
    assert.ok(worst < 1e-5, `${name}: max difference ${worst}`); // float32 summation order differs
  }
});

test('early stopping stops after `patience` evaluations without improvement and keeps the best weights', async () => {
  const dir = workspace();
  const result = await runTraining(
    await prepareRun(job(dir, { optimizer: { learningRate: 2 }, training: { epochs: 30, evalEvery: 3, earlyStopping: { metric: 'val_loss', patience: 2 } } })),
    { threads: 1 },
  );
  assert.ok(result.summary.final.stoppedEarly, result.summary.final.reason);
  assert.match(result.summary.final.reason, /early stopping: val_loss did not improve for 2 evaluation/);
  const best = result.summary.best!;
  assert.equal(best.loss, Math.min(...result.summary.eval.map((e) => e.loss)));
  assert.ok(result.summary.final.step < 30 * 12);
});

test('a non-finite loss stops the run with an error naming the step; earlier checkpoints stay intact', async () => {
  const dir = workspace();
  const prepared = await prepareRun(job(dir, { optimizer: { type: 'sgd', learningRate: 1e38, momentum: 0.9 }, training: { epochs: 5, checkpointEvery: 1 } }));
  await assert.rejects(runTraining(prepared, { threads: 1 }), (err: Error) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, /^step \d+: the training (loss|gradient norm) is (NaN|Infinity)|^step \d+: the gradient norm is/);
    return true;
  });
  const latest = loadLatestCheckpoint(join(dir, 'out', 'checkpoints'));
  assert.ok(latest, 'a checkpoint from before the failure exists and loads');
  assert.ok(!existsSync(join(dir, 'out', 'model.onnx')), 'no exported model from a failed run');
});

test('bad input fails before training with one clear message and writes nothing', async () => {
  const dir = workspace();
  writeFileSync(join(dir, 'nolabel.jsonl'), '{"x":[1,2,3,4],"label":"a"}\n{"x":[1,2,3,4]}\n');
  writeFileSync(join(dir, 'badclass.jsonl'), '{"x":[1,2,3,4],"label":"a"}\n{"x":[1,2,3,4],"label":"z"}\n');
  writeFileSync(join(dir, 'corrupt.onnx'), 'not a model');
  const cases: [FineTuneJob, RegExp][] = [
    [job(dir, { spec: { dataset: { train: { path: join(dir, 'nolabel.jsonl') }, featuresField: 'x', classes: ['a', 'b', 'c'] } } }), /nolabel\.jsonl line 2: .*label/],
    [job(dir, { spec: { dataset: { train: { path: join(dir, 'badclass.jsonl') }, featuresField: 'x', classes: ['a', 'b', 'c'] } } }), /badclass\.jsonl line 2: .*'z'/],
    [job(dir, { spec: { model: { source: join(dir, 'corrupt.onnx') } } }), /corrupt\.onnx.*not an ONNX model/],
    [job(dir, { spec: { model: { source: join(dir, 'missing.onnx') } } }), /cannot read model file .*missing\.onnx/],
    [job(dir, { spec: { trainable: { patterns: ['encoder.*'] } } }), /encoder\.\*: the pattern matches no float32 initializer/],
    [job(dir, { spec: { dataset: { train: { path: join(dir, 'train.jsonl') }, featuresField: 'x', classes: ['a', 'b', 'c', 'd'] } } }), /dataset has 4 classes but the model's output .* has 3; set spec\.model\.head\.numClasses: 4/],
  ];
  for (const [spec, message] of cases) {
    await assert.rejects(async () => runTraining(await prepareRun(spec), { threads: 1 }), (err: Error) => {
      assert.ok(err instanceof UserError, `expected a UserError, got ${err.stack}`);
      assert.match(err.message, message);
      return true;
    });
  }
  assert.ok(!existsSync(join(dir, 'out')) || readdirSync(join(dir, 'out')).length === 0, 'nothing was written');
});

test('a new head replaces the last layer and trains from the pre-trained features', async () => {
  const dir = workspace();
  const result = await runTraining(
    await prepareRun(job(dir, { spec: { model: { source: join(dir, 'mlp.onnx'), head: { numClasses: 3 } }, trainable: { headOnly: true } } })),
    { threads: 1 },
  );
  assert.deepEqual(result.summary.parameters.trainable.length, 2);
  assert.ok(result.summary.parameters.frozen.includes('fc1.weight'));
});
