/** The worker's metrics: the fixed names, types and labels, observations in the exposition, the endpoint and its settings. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { validateFineTuneJob } from '@finetune/api';
import { WorkerMetrics, STEP_PHASES } from './worker-metrics.js';
import { serveMetrics } from './server.js';
import { metricsEnv, parseMetricsPort } from './env.js';
import { parseExposition, valueOf } from './exposition.test-support.js';
import { UserError } from '../errors.js';

/** The contract with the dashboards, the controller and the Helm chart (docs/metrics.md). */
const CONTRACT: Record<string, 'gauge' | 'counter' | 'histogram'> = {
  finetune_worker_loss: 'gauge',
  finetune_worker_validation_loss: 'gauge',
  finetune_worker_validation_accuracy: 'gauge',
  finetune_worker_learning_rate: 'gauge',
  finetune_worker_samples_total: 'counter',
  finetune_worker_tokens_total: 'counter',
  finetune_worker_step_duration_seconds: 'histogram',
  finetune_worker_allreduce_bytes_total: 'counter',
  finetune_worker_allreduce_duration_seconds: 'histogram',
  finetune_worker_world_size: 'gauge',
  finetune_worker_checkpoint_duration_seconds: 'histogram',
  finetune_worker_checkpoint_size_bytes: 'gauge',
  finetune_worker_epoch: 'gauge',
  finetune_worker_step: 'gauge',
  finetune_worker_total_steps: 'gauge',
};
const LABELS = { job: 'team-a/bert-ft', rank: '1' };

function exercised(): WorkerMetrics {
  const m = new WorkerMetrics({ job: LABELS.job, rank: 1 });
  m.runStarted({ worldSize: 4, totalSteps: 100, step: 0, epoch: 0 });
  m.stepFinished({ step: 1, epoch: 0, loss: 0.7, learningRate: 0.01, samples: 8, tokens: 300, seconds: { data: 0.003, compute: 0.2, allreduce: 0.05, optimizer: 0.001 } });
  m.evaluated({ loss: 0.6, accuracy: 0.8 });
  m.allReduced(4096, 0.05);
  m.checkpointWritten(0.3, 123456);
  return m;
}

test('every metric of the contract is exposed with its type and only the job and rank labels (plus phase)', async () => {
  const { samples, types } = parseExposition(await exercised().exposition());
  for (const [name, type] of Object.entries(CONTRACT)) {
    assert.equal(types.get(name), type, `${name} type`);
    const own = samples.filter((s) => s.name === name || (type === 'histogram' && s.name.startsWith(`${name}_`)));
    assert.ok(own.length > 0, `${name} has samples`);
    const allowed = new Set(['job', 'rank', ...(name.endsWith('step_duration_seconds') ? ['phase'] : []), ...(type === 'histogram' ? ['le'] : [])]);
    for (const s of own) {
      assert.deepEqual({ job: s.labels.job, rank: s.labels.rank }, LABELS, `${s.name} labels`);
      for (const label of Object.keys(s.labels)) assert.ok(allowed.has(label), `${s.name}: unexpected label ${label}`);
    }
  }
  const phases = new Set(samples.filter((s) => s.name === 'finetune_worker_step_duration_seconds_count').map((s) => s.labels.phase));
  assert.deepEqual([...phases].sort(), [...STEP_PHASES].sort());
  // The process and Node.js metrics are there too, prefixed and labelled like the rest.
  for (const name of ['finetune_worker_process_cpu_seconds_total', 'finetune_worker_process_resident_memory_bytes', 'finetune_worker_nodejs_heap_size_used_bytes']) {
    const s = samples.find((x) => x.name === name);
    assert.ok(s, name);
    assert.deepEqual({ job: s.labels.job, rank: s.labels.rank }, LABELS, `${name} labels`);
  }
  assert.ok(samples.every((s) => s.name.startsWith('finetune_worker_')), 'one prefix for everything');
  // Nothing beyond the contract, apart from the default process and Node.js metrics.
  const own = [...types.keys()].filter((n) => !/^finetune_worker_(process|nodejs)_/.test(n));
  assert.deepEqual(own.sort(), Object.keys(CONTRACT).sort());
});

test('docs/metrics.md lists every worker metric with its type', () => {
  const doc = readFileSync(new URL('../../../../docs/metrics.md', import.meta.url), 'utf8');
  for (const [name, type] of Object.entries(CONTRACT)) {
    assert.match(doc, new RegExp(`^\\| \`${name}\` \\| ${type} \\|`, 'm'), `${name} (${type}) in the docs' table`);
  }
});

test('values a step, an evaluation, an all-reduce and a checkpoint report show up in the exposition', async () => {
  const { samples } = parseExposition(await exercised().exposition());
  const v = (name: string, labels: Record<string, string> = {}) => valueOf(samples, name, labels);
  assert.equal(v('finetune_worker_loss'), 0.7);
  assert.equal(v('finetune_worker_validation_loss'), 0.6);
  assert.equal(v('finetune_worker_validation_accuracy'), 0.8);
  assert.equal(v('finetune_worker_learning_rate'), 0.01);
  assert.equal(v('finetune_worker_samples_total'), 8);
  assert.equal(v('finetune_worker_tokens_total'), 300);
  assert.equal(v('finetune_worker_world_size'), 4);
  assert.equal(v('finetune_worker_total_steps'), 100);
  assert.equal(v('finetune_worker_step'), 1);
  assert.equal(v('finetune_worker_allreduce_bytes_total'), 4096);
  assert.equal(v('finetune_worker_checkpoint_size_bytes'), 123456);
  // A histogram observation: counted in every bucket at or above it, none below; sum and count.
  const data = { phase: 'data' };
  assert.equal(v('finetune_worker_step_duration_seconds_bucket', { ...data, le: '0.002' }), 0);
  assert.equal(v('finetune_worker_step_duration_seconds_bucket', { ...data, le: '0.004' }), 1);
  assert.equal(v('finetune_worker_step_duration_seconds_bucket', { ...data, le: '+Inf' }), 1);
  assert.equal(v('finetune_worker_step_duration_seconds_sum', data), 0.003);
  assert.equal(v('finetune_worker_step_duration_seconds_count', { phase: 'allreduce' }), 1);
  assert.equal(v('finetune_worker_checkpoint_duration_seconds_count'), 1);
  assert.equal(v('finetune_worker_checkpoint_duration_seconds_bucket', { le: '0.256' }), 0);
  assert.equal(v('finetune_worker_checkpoint_duration_seconds_bucket', { le: '1.024' }), 1);
  assert.equal(v('finetune_worker_allreduce_duration_seconds_bucket', { le: '0.064' }), 1);
  assert.equal(v('finetune_worker_allreduce_duration_seconds_bucket', { le: '0.032' }), 0);
});

test('before any step: counters and histograms at 0, loss, learning rate and validation gauges absent', async () => {
  const { samples } = parseExposition(await new WorkerMetrics({ job: 'local/x', rank: 0, defaultMetrics: false }).exposition());
  for (const name of ['finetune_worker_loss', 'finetune_worker_validation_loss', 'finetune_worker_validation_accuracy', 'finetune_worker_learning_rate']) {
    assert.equal(valueOf(samples, name), undefined, `${name} is absent until known`);
  }
  assert.equal(valueOf(samples, 'finetune_worker_samples_total'), 0);
  assert.equal(valueOf(samples, 'finetune_worker_step_duration_seconds_count', { phase: 'compute' }), 0);
  assert.equal(valueOf(samples, 'finetune_worker_checkpoint_duration_seconds_count'), 0);
  // No process metrics were asked for.
  assert.ok(!samples.some((s) => s.name.includes('process_')));
});

function get(port: number, path: string): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    })
      .on('error', reject)
      .end();
  });
}

test('the endpoint serves GET /metrics in the text format and nothing else; a taken port is a clear error', async () => {
  const metrics = exercised();
  const server = await serveMetrics(metrics.registry, { port: 0, host: '127.0.0.1' });
  try {
    const ok = await get(server.port, '/metrics');
    assert.equal(ok.status, 200);
    assert.match(ok.type, /^text\/plain; version=0\.0\.4/);
    assert.match(ok.body, /^finetune_worker_loss\{job="team-a\/bert-ft",rank="1"\} 0\.7$/m);
    assert.equal((await get(server.port, '/')).status, 404);
    await assert.rejects(serveMetrics(metrics.registry, { port: server.port, host: '127.0.0.1' }), (err: Error) => {
      assert.ok(err instanceof UserError);
      assert.match(err.message, new RegExp(`^FT_METRICS_PORT: cannot serve metrics on 127\\.0\\.0\\.1:${server.port} \\(EADDRINUSE\\)`));
      return true;
    });
  } finally {
    await server.close();
  }
});

test('settings from the environment: port, bind address and the job label', () => {
  const job = validateFineTuneJob({
    apiVersion: 'finetune.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: { name: 'digits' },
    spec: { model: { source: 'm.onnx' }, dataset: { builtin: 'mnist' }, optimizer: { type: 'sgd', learningRate: 0.1 }, training: { epochs: 1, batchSize: 8 } },
  });
  assert.deepEqual(metricsEnv(job, {}), { host: '0.0.0.0', job: 'local/digits' });
  assert.deepEqual(metricsEnv(job, { FT_METRICS_PORT: '9464', FT_BIND_HOST: '10.0.0.7', FT_JOB_ID: 'team-a/digits' }), { port: 9464, host: '10.0.0.7', job: 'team-a/digits' });
  assert.deepEqual(metricsEnv({ ...job, metadata: { ...job.metadata, namespace: 'ml' } }, {}).job, 'ml/digits');
  for (const bad of ['0', '65536', 'http', '94.5', '-1']) {
    assert.throws(() => metricsEnv(job, { FT_METRICS_PORT: bad }), new RegExp(`^UserError: FT_METRICS_PORT: expected a port number 1-65535, got '${bad.replace('.', '\\.')}'$`));
  }
  assert.equal(parseMetricsPort('19000', '--metrics-port'), 19000);
  assert.throws(() => parseMetricsPort('x', '--metrics-port'), /^UserError: --metrics-port: expected a port number/);
});
