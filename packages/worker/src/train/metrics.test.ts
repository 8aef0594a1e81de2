/**
 * The training loop feeds the Prometheus metrics: two ranks in one process over in-memory ring
 * links, each with its own registry, checked against what the loop did (steps, samples, the
 * exact all-reduce payload, checkpoints) and against the metrics.prom file rank 0 writes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { validateFineTuneJob, type FineTuneJob } from '@finetune/api';
import { writeToyTask } from '../testing/toy-task.js';
import { prepareRun } from './prepare.js';
import { runTraining } from './trainer.js';
import { readdirSync, statSync } from 'node:fs';
import { loadLatestCheckpoint } from './checkpoint.js';
import { nonPadTokens } from './tokens.js';
import { createMemoryRing } from '../collective/memory-link.js';
import { dataParallelOver } from '../collective/data-parallel.js';
import { WorkerMetrics } from '../metrics/worker-metrics.js';
import { parseExposition, valueOf } from '../metrics/exposition.test-support.js';

/** fc1 [6,4] + [6], fc2 [2,6] + [2]: 44 trainable values. */
const TRAINABLE_VALUES = 24 + 6 + 12 + 2;

function workspace(): string {
  return writeToyTask({
    prefix: 'ftjob-metrics-',
    seed: 7,
    label: (x) => (x[0]! + 0.5 * x[1]! > x[2]! ? 1 : 0),
    layers: [{ out: 6, init: [-0.5, 0.5] }, { out: 2, init: [-0.4, 0.4] }],
  }).dir;
}

function job(dir: string): FineTuneJob {
  return validateFineTuneJob({
    apiVersion: 'finetune.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: { name: 'metrics', namespace: 'team-a' },
    spec: {
      model: { source: join(dir, 'mlp.onnx') },
      // 180 training examples: 15 steps of 12 per epoch (6 per rank); evaluation and a checkpoint every epoch.
      dataset: { train: { path: join(dir, 'train.jsonl') }, featuresField: 'x', validationSplit: 0.25 },
      optimizer: { type: 'sgd', learningRate: 0.2, momentum: 0.9 },
      training: { epochs: 2, batchSize: 12, seed: 5 },
      workers: { replicas: 2 },
      output: { path: join(dir, 'out') },
    },
  });
}


test('two ranks report steps, samples, phases, the exact all-reduce payload and checkpoints; rank 0 writes metrics.prom', async () => {
  const dir = workspace();
  const links = createMemoryRing(2);
  const metrics = links.map((l) => new WorkerMetrics({ job: 'team-a/metrics', rank: l.rank, defaultMetrics: false }));
  const results = await Promise.all(
    links.map(async (link, r) => runTraining(await prepareRun(job(dir)), { threads: 1, parallel: dataParallelOver(link), metrics: metrics[r]! })),
  );
  const summary = results[0]!.summary;
  assert.equal(summary.final.step, 30);
  const evaluations = summary.eval.length;
  assert.equal(evaluations, 2);

  for (const rank of [0, 1]) {
    const { samples } = parseExposition(await metrics[rank]!.exposition());
    const v = (name: string, labels: Record<string, string> = {}) => valueOf(samples, name, { job: 'team-a/metrics', rank: String(rank), ...labels });
    assert.equal(v('finetune_worker_step'), 30, `rank ${rank} step`);
    assert.equal(v('finetune_worker_total_steps'), 30);
    assert.equal(v('finetune_worker_epoch'), 1, 'the epoch of the last step');
    assert.equal(v('finetune_worker_world_size'), 2);
    assert.equal(v('finetune_worker_samples_total'), 180, 'each rank sees half of 2 epochs of 180 examples');
    assert.equal(v('finetune_worker_tokens_total'), 0, 'not a text model');
    assert.equal(Math.fround(v('finetune_worker_loss')!), Math.fround(summary.train.at(-1)!.loss));
    assert.equal(v('finetune_worker_learning_rate'), summary.train.at(-1)!.learningRate);
    assert.equal(v('finetune_worker_validation_loss'), summary.eval.at(-1)!.loss);
    assert.equal(v('finetune_worker_validation_accuracy'), summary.eval.at(-1)!.accuracy);
    for (const phase of ['data', 'compute', 'allreduce', 'optimizer']) {
      assert.equal(v('finetune_worker_step_duration_seconds_count', { phase }), 30, `${phase} observed once per step`);
      assert.ok(v('finetune_worker_step_duration_seconds_sum', { phase })! > 0, `${phase} took time`);
    }
    // Per step: the gradients plus the loss cell; per evaluation: 4 sums. All float32.
    assert.equal(v('finetune_worker_allreduce_bytes_total'), 30 * (TRAINABLE_VALUES + 1) * 4 + evaluations * 4 * 4);
    assert.equal(v('finetune_worker_allreduce_duration_seconds_count'), 30 + evaluations);
    const checkpoints = v('finetune_worker_checkpoint_duration_seconds_count');
    if (rank === 0) {
      assert.equal(checkpoints, 2, 'one checkpoint per epoch');
      const latest = loadLatestCheckpoint(join(dir, 'out', 'checkpoints'))!;
      assert.equal(v('finetune_worker_checkpoint_size_bytes'), checkpointBytes(latest.path));
    } else {
      assert.equal(checkpoints, 0, 'only rank 0 writes checkpoints');
      assert.equal(v('finetune_worker_checkpoint_size_bytes'), 0);
    }
  }
  const file = readFileSync(join(dir, 'out', 'metrics.prom'), 'utf8');
  assert.equal(valueOf(parseExposition(file).samples, 'finetune_worker_step', { rank: '0' }), 30);
  assert.ok(!file.includes('rank="1"'), 'rank 0 writes only its own registry');
});

test('without a metrics observer the loop writes no metrics.prom', async () => {
  const dir = workspace();
  const j = job(dir);
  await runTraining(await prepareRun({ ...j, spec: { ...j.spec, training: { ...j.spec.training, epochs: 1 } } }), { threads: 1 });
  assert.ok(existsSync(join(dir, 'out', 'metrics.json')));
  assert.ok(!existsSync(join(dir, 'out', 'metrics.prom')));
});

test('tokens are the non-pad ids of a text input; other inputs count 0', () => {
  const ids = BigInt64Array.from([5n, 9n, 0n, 0n, 7n, 0n, 0n, 0n]);
  const batch = { feeds: { input_ids: { type: 'int64' as const, dims: [2, 4], data: ids }, x: { type: 'float32' as const, dims: [2], data: new Float32Array(2) } }, labels: { type: 'int64' as const, dims: [2], data: new BigInt64Array(2) } };
  assert.equal(nonPadTokens(batch, 'input_ids'), 3);
  assert.equal(nonPadTokens(batch, 'x'), 0);
  assert.equal(nonPadTokens(batch, 'missing'), 0);
});

/** Bytes on disk of one checkpoint folder, read back independently of what the writer reported. */
function checkpointBytes(path: string): number {
  return readdirSync(path).reduce((sum, f) => sum + statSync(join(path, f)).size, 0);
}
