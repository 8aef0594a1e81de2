/**
 * Data parallelism in the training loop, in one process over in-memory ring links: N workers
 * with per-worker batch b must reach the parameters of one worker with batch N·b (the global
 * batch is the same examples, the averaged gradient the same mean), and a dead peer must end
 * every survivor's run with an error naming the peer and the step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { validateFineTuneJob, type FineTuneJob } from '@finetune/api';
import { writeToyTask } from '../testing/toy-task.js';
import { prepareRun } from './prepare.js';
import { runTraining, type DataParallel } from './trainer.js';
import { SILENT } from './progress.js';
import { createMemoryRing } from '../collective/memory-link.js';
import { dataParallelOver } from '../collective/data-parallel.js';
import { CollectiveError } from '../collective/link.js';

function workspace(): string {
  return writeToyTask({
    prefix: 'ftjob-dp-',
    seed: 7,
    label: (x) => (x[0]! + 0.5 * x[1]! > x[2]! ? 1 : 0),
    layers: [{ out: 6, init: [-0.5, 0.5] }, { out: 2, init: [-0.4, 0.4] }],
  }).dir;
}

function job(dir: string, out: string, replicas: number, allReduce: Record<string, unknown> = {}): FineTuneJob {
  return validateFineTuneJob({
    apiVersion: 'finetune.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: { name: 'dp' },
    spec: {
      model: { source: join(dir, 'mlp.onnx') },
      // 180 training examples: 15 global batches of 12, split evenly over 1, 2, 3 or 4 workers.
      dataset: { train: { path: join(dir, 'train.jsonl') }, featuresField: 'x', validationSplit: 0.25 },
      optimizer: { type: 'sgd', learningRate: 0.2, momentum: 0.9 },
      training: { epochs: 2, batchSize: 12, seed: 5 },
      workers: { replicas, allReduce },
      output: { path: join(dir, out) },
    },
  });
}


for (const world of [2, 3, 4]) {
  test(`${world} workers with batch 12/${world} each reach the parameters of one worker with batch 12`, async () => {
    const dir = workspace();
    const single = await runTraining(await prepareRun(job(dir, 'single', 1)), { threads: 1 });
    const links = createMemoryRing(world);
    const results = await Promise.all(links.map(async (link) => runTraining(await prepareRun(job(dir, 'multi', world)), { threads: 1, parallel: dataParallelOver(link) })));
    // Float32 sums in a different order: agree to about 1e-6 relative after 30 SGD steps.
    for (const [name, expected] of single.params) {
      const got = results[0]!.params.get(name)!;
      const worst = expected.reduce((w, v, i) => Math.max(w, Math.abs(v - got[i]!) / Math.max(1, Math.abs(v))), 0);
      assert.ok(worst < 1e-5, `${name}: worst relative difference ${worst}`);
      for (const other of results.slice(1)) assert.deepEqual(Array.from(other.params.get(name)!), Array.from(got), `${name} identical on every rank`);
    }
    assert.ok(Math.abs(results[0]!.summary.best!.accuracy! - single.summary.best!.accuracy!) < 1e-9);
    assert.equal(results[0]!.summary.final.step, single.summary.final.step);
  });
}

/** Largest |a-b| / max(1, |a|) over every parameter. */
function worstRelativeDifference(a: Map<string, Float32Array>, b: Map<string, Float32Array>): number {
  let worst = 0;
  for (const [name, expected] of a) {
    const got = b.get(name)!;
    expected.forEach((v, i) => (worst = Math.max(worst, Math.abs(v - got[i]!) / Math.max(1, Math.abs(v)))));
  }
  return worst;
}

// Rounding every partial sum to 8 (bf16) or 11 (f16) significant bits perturbs each step's
// gradient by up to ~2^-7 or ~2^-10 relative; over 30 SGD steps with momentum the parameters
// drift from the float32 run by well under 1e-2 (bf16) and 1e-3 (f16) here.
for (const [wirePrecision, bound] of [['bfloat16', 1e-2], ['float16', 1e-3]] as const) {
  for (const overlap of ['never', 'always'] as const) {
    test(`spec.workers.allReduce.wirePrecision ${wirePrecision} (overlap ${overlap}): ranks stay identical, parameters near float32, losses exact`, async () => {
      const dir = workspace();
      const messages: string[] = [];
      const progress = { ...SILENT, message: (m: string) => messages.push(m) };
      const train = (out: string, allReduce: Record<string, unknown>) => {
        const links = createMemoryRing(2);
        return Promise.all(links.map(async (link) => runTraining(await prepareRun(job(dir, out, 2, allReduce)), { threads: 1, parallel: dataParallelOver(link), progress })));
      };
      // A bucket of one byte: every parameter is its own bucket, so the overlapped path really runs.
      const settings = { overlap, bucketMiB: 1 / 2 ** 20 };
      const exact = await train('f32', settings);
      const rounded = await train(wirePrecision, { ...settings, wirePrecision });
      const announced = messages.filter((m) => m.startsWith('overlapping the all-reduce')).length;
      assert.equal(announced, overlap === 'always' ? 4 : 0, `spec.workers.allReduce.overlap ${overlap}: ${messages.join(' | ')}`);
      for (const [name, values] of rounded[0]!.params) assert.deepEqual(Array.from(rounded[1]!.params.get(name)!), Array.from(values), `${name} identical on both ranks`);
      const drift = worstRelativeDifference(exact[0]!.params, rounded[0]!.params);
      assert.ok(drift > 0, `the ${wirePrecision} run ended exactly on the float32 parameters: was the wire format applied?`);
      assert.ok(drift < bound, `worst relative difference from float32: ${drift} (bound ${bound})`);
      // Step 1 starts from the same parameters, so its loss, averaged in float32 on its own, matches exactly.
      assert.equal(rounded[0]!.summary.train[0]!.loss, exact[0]!.summary.train[0]!.loss);
      assert.equal(rounded[1]!.summary.train[0]!.loss, rounded[0]!.summary.train[0]!.loss);
    });
  }
}

test('a dead peer ends every surviving worker with an error naming the peer and the step', async () => {
  const dir = workspace();
  const links = createMemoryRing(3, { recvTimeoutMs: 2000 });
  const runs = links.map(async (link) => {
    const parallel = dataParallelOver(link);
    let calls = 0;
    // Rank 2 dies during its 4th all-reduce (step 4).
    const dying: DataParallel = link.rank === 2 ? { ...parallel, allReduceMean: async (t) => (++calls === 4 ? (links.kill(2), new Promise<void>(() => {})) : parallel.allReduceMean(t)) } : parallel;
    return runTraining(await prepareRun(job(dir, 'dead', 3)), { threads: 1, parallel: dying });
  });
  for (const rank of [0, 1]) {
    await assert.rejects(runs[rank]!, (err: Error) => {
      assert.ok(err instanceof CollectiveError, `a CollectiveError (the retryable exit), got ${err}`);
      assert.equal((err as CollectiveError).peer, 2);
      assert.match(err.message, /^step 4: .*peer 2/);
      assert.match(err.message, /restart with --resume/);
      return true;
    });
  }
});
