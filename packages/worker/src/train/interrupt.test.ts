/**
 * Stopping a run on request (SIGTERM from Kubernetes, Ctrl-C): the run ends before its next step,
 * rank 0 writes a checkpoint of the last completed step, and a resumed run reaches exactly the
 * parameters of an uninterrupted one. When a peer leaves mid-step, rank 0 saves that step too.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { validateFineTuneJob, type FineTuneJob } from '@finetune/api';
import { writeToyTask } from '../testing/toy-task.js';
import { prepareRun } from './prepare.js';
import { runTraining } from './trainer.js';
import { SILENT, type ProgressSink } from './progress.js';
import { loadLatestCheckpoint } from './checkpoint.js';
import { TrainingInterrupted } from '../errors.js';
import { createMemoryRing } from '../collective/memory-link.js';
import { dataParallelOver } from '../collective/data-parallel.js';
import { CollectiveError } from '../collective/link.js';

function task(): string {
  return writeToyTask({
    prefix: 'ftjob-interrupt-',
    seed: 21,
    label: (x) => (x[0]! - x[2]! > 0.2 * x[1]! ? 1 : 0),
    layers: [
      { out: 6, init: [-0.5, 0.5] },
      { out: 2, init: [-0.4, 0.4] },
    ],
  }).dir;
}

/** 180 training examples, batch 12: 15 steps an epoch, 30 in all; regular checkpoints every 20. */
function job(dir: string, out: string, replicas = 1): FineTuneJob {
  return validateFineTuneJob({
    apiVersion: 'finetune.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: { name: 'interrupt' },
    spec: {
      model: { source: join(dir, 'mlp.onnx') },
      dataset: { train: { path: join(dir, 'train.jsonl') }, featuresField: 'x', validationSplit: 0.25 },
      optimizer: { type: 'adamw', learningRate: 0.05 },
      training: { epochs: 2, batchSize: 12, seed: 4, evalEvery: 5, checkpointEvery: 20 },
      workers: { replicas },
      output: { path: join(dir, out) },
    },
  });
}

/** A progress sink that aborts `controller` with `reason` once step `at` has completed. */
function abortAfter(at: number, controller: AbortController, reason: string): ProgressSink {
  return { ...SILENT, step: (point) => (point.step === at ? controller.abort(reason) : undefined) };
}


test('a stop request ends the run after its step with a checkpoint of it; --resume reaches the uninterrupted parameters', async () => {
  const dir = task();
  const full = await runTraining(await prepareRun(job(dir, 'full')), { threads: 1 });
  const stop = new AbortController();
  await assert.rejects(runTraining(await prepareRun(job(dir, 'split')), { threads: 1, stop: stop.signal, progress: abortAfter(7, stop, 'SIGTERM') }), (err: Error) => {
    assert.ok(err instanceof TrainingInterrupted, `a TrainingInterrupted, got ${err}`);
    assert.equal(err.step, 7);
    assert.equal(err.checkpoint, join(dir, 'split', 'checkpoints', 'step-00000007'));
    assert.equal(err.message, `stopped by SIGTERM after step 7 (checkpoint ${err.checkpoint}); continue with --resume`);
    return true;
  });
  // Step 7 is no regular checkpoint (every 20 steps, or at an epoch's end): the stop wrote it.
  assert.equal(loadLatestCheckpoint(join(dir, 'split', 'checkpoints'))!.step, 7);
  const resumed = await runTraining(await prepareRun(job(dir, 'split')), { threads: 1, resume: true });
  for (const [name, values] of full.params) assert.deepEqual(Array.from(resumed.params.get(name)!), Array.from(values), name);
  assert.equal(resumed.summary.final.step, 30);
  assert.deepEqual(resumed.summary.eval.map((e) => e.loss), full.summary.eval.map((e) => e.loss));
});

test('a stop request right after a regular checkpoint names that checkpoint and writes no other', async () => {
  const dir = task();
  const stop = new AbortController();
  // Step 15 ends the first epoch, which always checkpoints.
  const run = runTraining(await prepareRun(job(dir, 'epoch')), { threads: 1, stop: stop.signal, progress: abortAfter(15, stop, 'SIGINT') });
  await assert.rejects(run, (err: Error) => err instanceof TrainingInterrupted && err.step === 15 && err.checkpoint === join(dir, 'epoch', 'checkpoints', 'step-00000015'));
  assert.equal(loadLatestCheckpoint(join(dir, 'epoch', 'checkpoints'))!.step, 15);
});

test('rank 1 stops; rank 0 loses it mid-step, saves the last completed step, and both resume exactly', async () => {
  const dir = task();
  const fullLinks = createMemoryRing(2);
  const full = await Promise.all(fullLinks.map(async (link) => runTraining(await prepareRun(job(dir, 'full', 2)), { threads: 1, parallel: dataParallelOver(link) })));

  const links = createMemoryRing(2, { recvTimeoutMs: 1000 });
  const stop = new AbortController();
  const runs = links.map(async (link) =>
    runTraining(await prepareRun(job(dir, 'split', 2)), {
      threads: 1,
      parallel: dataParallelOver(link),
      // Only rank 1 is asked to stop, after step 9; no checkpoint exists yet.
      ...(link.rank === 1 ? { stop: stop.signal, progress: abortAfter(9, stop, 'SIGTERM') } : {}),
    }),
  );
  await assert.rejects(runs[1]!, (err: Error) => err instanceof TrainingInterrupted && err.step === 9 && err.checkpoint === undefined);
  await assert.rejects(runs[0]!, (err: Error) => {
    assert.ok(err instanceof CollectiveError, `rank 0: a CollectiveError, got ${err}`);
    assert.match(err.message, /^step 10: .*peer 1.*\(rank 0's checkpoint of step 9: .*step-00000009\)$/);
    return true;
  });
  const resumed = await Promise.all(createMemoryRing(2).map(async (link) => runTraining(await prepareRun(job(dir, 'split', 2)), { threads: 1, resume: true, parallel: dataParallelOver(link) })));
  for (const [name, values] of full[0]!.params) assert.deepEqual(Array.from(resumed[0]!.params.get(name)!), Array.from(values), name);
});
