/**
 * Overlapping the all-reduce with the backward pass (gradient thread + buckets) must not change
 * the training: the same parameters as the sequential path after several steps, with 2 workers and
 * 4 micro-batches per step, and alone with unequal micro-batches. The thread must end with the
 * run, whether it succeeds or fails, and a peer that dies during an overlapped all-reduce must
 * still end every survivor with an error naming the peer and the step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { validateFineTuneJob, type FineTuneJob } from '@finetune/api';
import { writeToyTask, type ToyLayer } from '../testing/toy-task.js';
import { prepareRun } from './prepare.js';
import { runTraining, type DataParallel, type TrainerOptions } from './trainer.js';
import { SILENT, type ProgressSink } from './progress.js';
import { GradientThread, runningGradientThreads } from './gradient-thread.js';
import { createMemoryRing } from '../collective/memory-link.js';
import { dataParallelOver } from '../collective/data-parallel.js';
import { CollectiveError } from '../collective/link.js';

/** 240 examples of a two-class rule; a 4-8-8-2 MLP (6 parameters: 6 buckets with bucketBytes 1). */
function workspace(): string {
  const layer = (out: number): ToyLayer => ({ out, init: [-0.5, 0.5], biasInit: [-0.3, 0.3] });
  return writeToyTask({
    prefix: 'ftjob-overlap-',
    seed: 13,
    label: (x) => (x[0]! - x[3]! > 0.5 * x[1]! ? 1 : 0),
    layers: [layer(8), layer(8), layer(2)],
  }).dir;
}

function job(dir: string, out: string, replicas: number, training: Record<string, unknown>): FineTuneJob {
  return validateFineTuneJob({
    apiVersion: 'finetune.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: { name: 'overlap' },
    spec: {
      model: { source: join(dir, 'mlp.onnx') },
      dataset: { train: { path: join(dir, 'train.jsonl') }, featuresField: 'x', validationSplit: 0.25 },
      optimizer: { type: 'sgd', learningRate: 0.2, momentum: 0.9 },
      training: { epochs: 2, seed: 5, ...training },
      workers: { replicas },
      output: { path: join(dir, out) },
    },
  });
}


/** A progress sink that keeps the messages (the trainer announces overlap with one). */
function recording(): ProgressSink & { messages: string[] } {
  const messages: string[] = [];
  return { ...SILENT, message: (text: string) => void messages.push(text), messages };
}

function worstRelative(expected: Float32Array, got: Float32Array): number {
  return expected.reduce((w, v, i) => Math.max(w, Math.abs(v - got[i]!) / Math.max(1, Math.abs(v))), 0);
}

async function trainTogether(dir: string, out: string, world: number, training: Record<string, unknown>, options: TrainerOptions) {
  const links = createMemoryRing(world);
  return Promise.all(links.map(async (link) => runTraining(await prepareRun(job(dir, out, world, training)), { threads: 1, ...options, parallel: dataParallelOver(link) })));
}

test('2 workers, 4 micro-batches per step: overlapped training reaches the sequential parameters', async () => {
  const dir = workspace();
  // Global batch 16: 8 per worker in 4 micro-batches of 2; 12 steps per epoch, 24 in all.
  const training = { batchSize: 16, gradientAccumulationSteps: 4 };
  const sequential = await trainTogether(dir, 'seq', 2, training, { overlap: 'off' });
  const progress = recording();
  const overlapped = await trainTogether(dir, 'ovl', 2, training, { overlap: 'auto', bucketBytes: 1, progress });
  assert.ok(progress.messages.some((m) => /overlapping the all-reduce with the backward pass: 6 gradient bucket/.test(m)), `overlap announced: ${progress.messages.join(' | ')}`);
  assert.equal(overlapped[0]!.summary.final.step, 24);
  // Same nodes, same inputs, same summation order: expected bitwise equal; 1e-5 is the contract.
  for (const [name, expected] of sequential[0]!.params) {
    const worst = worstRelative(expected, overlapped[0]!.params.get(name)!);
    assert.ok(worst < 1e-5, `${name}: worst relative difference ${worst}`);
    assert.deepEqual(Array.from(overlapped[1]!.params.get(name)!), Array.from(overlapped[0]!.params.get(name)!), `${name} identical on both ranks`);
  }
  sequential[0]!.summary.train.forEach((point, i) => assert.ok(Math.abs(point.loss - overlapped[0]!.summary.train[i]!.loss) < 1e-6, `loss at step ${point.step}`));
  assert.equal(runningGradientThreads(), 0, 'every gradient thread ended with its run');
});

test('alone, with a short last micro-batch, the gradient thread trains exactly like the main thread', async () => {
  const dir = workspace();
  // 180 examples, batch 14 in micro-batches of 7: the last batch of 12 has micro-batches of 7 and 5.
  const training = { batchSize: 14, gradientAccumulationSteps: 2 };
  const main = await runTraining(await prepareRun(job(dir, 'main', 1, training)), { threads: 1, overlap: 'off' });
  const progress = recording();
  const auto = await runTraining(await prepareRun(job(dir, 'auto', 1, training)), { threads: 1, overlap: 'auto', bucketBytes: 1, progress });
  assert.equal(progress.messages.filter((m) => /overlapping/.test(m)).length, 0, "'auto' keeps one worker on the main thread");
  const threaded = await runTraining(await prepareRun(job(dir, 'thread', 1, training)), { threads: 1, overlap: 'on', bucketBytes: 1 });
  for (const [name, expected] of main.params) {
    assert.ok(worstRelative(expected, threaded.params.get(name)!) < 1e-5, name);
    assert.deepEqual(Array.from(auto.params.get(name)!), Array.from(expected), `${name}: 'auto' is the main-thread path`);
  }
  assert.equal(threaded.summary.best!.accuracy, main.summary.best!.accuracy);
  assert.equal(runningGradientThreads(), 0);
});

test('a peer that dies during an overlapped all-reduce ends every survivor with the step named, and no thread is left', async () => {
  const dir = workspace();
  const links = createMemoryRing(3, { recvTimeoutMs: 1000 });
  const buckets = 6;
  const runs = links.map(async (link) => {
    const parallel = dataParallelOver(link);
    let calls = 0;
    // Rank 2 dies in the second bucket's all-reduce of step 4.
    const dying: DataParallel =
      link.rank === 2
        ? {
            ...parallel,
            allReduceMean: async (t) => {
              if (++calls !== 3 * buckets + 2) return parallel.allReduceMean(t);
              // Dead to its peers; its own run ends once they have noticed (so its thread ends too).
              links.kill(2);
              await new Promise((resolve) => setTimeout(resolve, 1500));
              throw new CollectiveError('killed by the test', 2);
            },
          }
        : parallel;
    return runTraining(await prepareRun(job(dir, 'dead', 3, { batchSize: 12 })), { threads: 1, parallel: dying, overlap: 'on', bucketBytes: 1 });
  });
  const results = await Promise.allSettled(runs);
  const errors = results.map((r) => (r.status === 'rejected' ? (r.reason as Error) : undefined));
  for (const rank of [0, 1]) {
    const err = errors[rank];
    assert.ok(err instanceof CollectiveError, `rank ${rank}: a CollectiveError (the retryable exit), got ${err}`);
    assert.equal(err.peer, 2);
    assert.match(err.message, /^step 4: .*peer 2/);
    assert.match(err.message, /restart with --resume/);
  }
  assert.match(String(errors[2]), /^CollectiveError: step 4: killed by the test/);
  assert.equal(runningGradientThreads(), 0, 'the gradient threads of failed runs ended too');
});

test('a run that fails between overlapped steps ends its gradient thread', async () => {
  const dir = workspace();
  let steps = 0;
  const failing: ProgressSink = {
    ...SILENT,
    step() {
      if (++steps === 3) throw new Error('the progress display broke');
    },
  };
  await assert.rejects(runTraining(await prepareRun(job(dir, 'fail', 1, { batchSize: 16 })), { threads: 1, overlap: 'on', bucketBytes: 1, progress: failing }), /the progress display broke/);
  assert.equal(runningGradientThreads(), 0);
});

test('an onnxruntime failure in the gradient thread rejects the step; close() ends the thread', async () => {
  const dir = workspace();
  const prepared = await prepareRun(job(dir, 'bad', 1, { batchSize: 4 }));
  const { artifacts } = prepared;
  const before = runningGradientThreads();
  const thread = await GradientThread.start({
    training: artifacts.training,
    params: artifacts.params,
    buckets: [artifacts.params.map((_, i) => i)],
    initial: artifacts.params.map((p) => new Float32Array(p.dims.reduce((a, b) => a * b, 1))),
  });
  try {
    assert.equal(runningGradientThreads(), before + 1);
    // 3 features where the model takes 4.
    const bad = { inputs: { x: { type: 'float32' as const, dims: [2, 3], data: new Float32Array(6) } }, labels: { type: 'int64' as const, dims: [2], data: new BigInt64Array(2) }, weight: 1, examples: 2 };
    await assert.rejects(thread.step([bad], () => {}), /^Error: gradient thread: .*/);
    await assert.rejects(thread.step([bad], () => {}), /gradient thread/, 'a failed thread refuses further steps');
  } finally {
    await thread.close();
  }
  assert.equal(runningGradientThreads(), before);
  // Refused at start: buckets that do not list every parameter once.
  const zeros = artifacts.params.map((p) => new Float32Array(p.dims.reduce((a, b) => a * b, 1)));
  await assert.rejects(GradientThread.start({ training: artifacts.training, params: artifacts.params, buckets: [[0, 1, 2], [3, 4, 99]], initial: zeros }), /every parameter index 0\.\.5 once/);
  // A stage onnxruntime cannot build fails in the thread, before it reports ready.
  const broken = { ...artifacts.training, graph: { ...artifacts.training.graph, nodes: artifacts.training.graph.nodes.map((n, i) => (i === 0 ? { ...n, opType: 'NoSuchOp' } : n)) } };
  await assert.rejects(GradientThread.start({ training: broken, params: artifacts.params, buckets: [[0, 1, 2, 3, 4, 5]], initial: zeros }), /^Error: gradient thread: .*NoSuchOp/);
  assert.equal(runningGradientThreads(), before, 'a thread that failed to start is gone');
});

test('a bad overlap option or bucket size is refused with the option named', async () => {
  const dir = workspace();
  const prepared = await prepareRun(job(dir, 'opts', 1, { batchSize: 16 }));
  await assert.rejects(runTraining(prepared, { overlap: 'sometimes' as 'on' }), /^UserError: overlap: expected one of auto, on, off, got 'sometimes'/);
  await assert.rejects(runTraining(prepared, { overlap: 'on', bucketBytes: 0 }), /^UserError: bucketBytes: expected a positive number of bytes, got 0/);
  assert.equal(runningGradientThreads(), 0);
});
