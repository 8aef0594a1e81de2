// A real Prometheus (Debian's `prometheus`) scrapes a local 2-worker run (`ftjob run --workers 2
// --metrics-port BASE`); then its HTTP API must return every worker metric for both ranks and
// data for every panel query of the Grafana dashboards (variables resolved as Grafana would).
//   node --test test/metrics/
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import { freePort, prometheusInstalled, PROMETHEUS, startPrometheus } from './prometheus.mjs';
import { startDcgmStandIn } from './dcgm-stand-in.mjs';
import { checkDashboardPanels } from './grafana.mjs';
import { ftjob, toyJob } from './toy-job.mjs';

const DASHBOARDS = fileURLToPath(new URL('../../deploy/helm/finetune-operator/dashboards/', import.meta.url));
const SKIP = prometheusInstalled() ? false : `${PROMETHEUS} is not installed (apt-get install prometheus; .ci/run does)`;
/**
 * Scrapes every 250 ms: a fast machine trains the run below in ~3 s, and the checks need several
 * samples taken while it trained, whatever the machine's speed.
 */
const SCRAPE_INTERVAL_S = 0.25;
/** Grafana's floor for $__rate_interval: four scrape intervals. */
const RATE_INTERVAL = `${4 * SCRAPE_INTERVAL_S}s`;

/** The worker metrics of docs/metrics.md; histograms are checked through their _count series. */
const WORKER_METRICS = [
  'finetune_worker_loss',
  'finetune_worker_validation_loss',
  'finetune_worker_validation_accuracy',
  'finetune_worker_learning_rate',
  'finetune_worker_samples_total',
  'finetune_worker_tokens_total',
  'finetune_worker_step_duration_seconds_count',
  'finetune_worker_allreduce_bytes_total',
  'finetune_worker_allreduce_duration_seconds_count',
  'finetune_worker_world_size',
  'finetune_worker_checkpoint_duration_seconds_count',
  'finetune_worker_checkpoint_size_bytes',
  'finetune_worker_epoch',
  'finetune_worker_step',
  'finetune_worker_total_steps',
];

const JOB_NAME = 'metrics-e2e';
const STEPS = 2500;
const JOB_LABEL = `local/${JOB_NAME}`;

let scrapeJobs = [];
let prom;
let dcgm;
let job;
let run;
/** The run's time window, in Unix seconds, for range queries. */
let window;

before(async () => {
  if (SKIP) return;
  // 2500 steps of a tiny MLP on 2 workers: 1.4 ms a step on a fast idle machine, 10 ms on a busy
  // 2-core one, so 3.5-30 s of training (after a few seconds of start-up), with an evaluation every 25 steps and a
  // checkpoint every 250: every metric changes while Prometheus watches.
  job = toyJob({ name: JOB_NAME, training: { epochs: 1000, maxSteps: STEPS, evalEvery: 25, checkpointEvery: 250 } });
  const base = await freePort(2);
  dcgm = await startDcgmStandIn({ namespace: 'local', pods: [`${JOB_NAME}-worker-0`, `${JOB_NAME}-worker-1`] });
  scrapeJobs = [
    { name: 'finetune-workers', targets: [`127.0.0.1:${base}`, `127.0.0.1:${base + 1}`] },
    { name: 'dcgm-exporter', targets: [dcgm.address] }, // the stand-in: no GPU here
  ];
  prom = await startPrometheus(scrapeJobs, { scrapeIntervalS: SCRAPE_INTERVAL_S });
  const start = Date.now() / 1000;
  run = await ftjob(['run', job.file, '--workers', '2', '--metrics-port', String(base)]);
  // One more scrape interval, so the dcgm stand-in's last sample is inside the window too.
  await new Promise((r) => setTimeout(r, 1000 * SCRAPE_INTERVAL_S));
  window = { start: Math.floor(start), end: Math.ceil(Date.now() / 1000) };
});

after(async () => {
  await prom?.stop();
  await dcgm?.close();
});

/** query_range over the run, 1 s steps: [{ metric, values: [[t, "v"], ...] }]. */
const range = async (query) => (await prom.api('query_range', { query, start: window.start, end: window.end, step: SCRAPE_INTERVAL_S })).result;
const finite = (series) => series.values.some(([, v]) => Number.isFinite(Number(v)));

test('the 2-worker run finishes and was scraped on both ranks while it trained', { skip: SKIP, timeout: 240_000 }, async (t) => {
  assert.equal(run.code, 0, `ftjob run failed:\n${run.stderr}`);
  t.diagnostic(`ftjob run took ${window.end - window.start} s: ${run.stdout.split('\n').find((l) => l.startsWith('finished'))}`);
  const steps = await range(`finetune_worker_step{job="${JOB_LABEL}", rank="0"}`);
  const seen = new Set(steps[0]?.values.map(([, v]) => v));
  t.diagnostic(`Prometheus saw ${seen.size} distinct step values on rank 0`);
  assert.ok(seen.size >= 5, `Prometheus saw only ${seen.size} distinct step values: the run was too short for ${SCRAPE_INTERVAL_S} s scrapes`);
  const up = await range('max_over_time(up{job="finetune-workers"}[1h])');
  assert.deepEqual(up.map((s) => Math.max(...s.values.map(([, v]) => Number(v)))), [1, 1], `both worker targets up at some point:\n${prom.log()}`);
});

test('Prometheus has every worker metric for both ranks, labelled with the job', { skip: SKIP }, async (t) => {
  for (const name of WORKER_METRICS) {
    await t.test(name, async () => {
      const series = (await range(`${name}{job="${JOB_LABEL}"}`)).filter(finite);
      const ranks = [...new Set(series.map((s) => s.metric.rank))].sort();
      assert.deepEqual(ranks, ['0', '1'], `${name}: ranks with data`);
    });
  }
});

test('the step-time histogram has every phase, and the all-reduce moved bytes on both ranks', { skip: SKIP }, async () => {
  const phases = await range(`sum by (phase) (finetune_worker_step_duration_seconds_count{job="${JOB_LABEL}"})`);
  assert.deepEqual(phases.map((s) => s.metric.phase).sort(), ['allreduce', 'compute', 'data', 'optimizer']);
  const bytes = await range(`finetune_worker_allreduce_bytes_total{job="${JOB_LABEL}"}`);
  for (const s of bytes) assert.ok(Math.max(...s.values.map(([, v]) => Number(v))) > 0, `rank ${s.metric.rank} all-reduced nothing`);
});

// Controller metrics and panels (all of operator.json, the controller panels of training.json) are
// checked by test/operator/, where a real controller runs jobs on a real API server.
test('every worker panel query of training.json returns data', { skip: SKIP }, async (t) => {
  const pending = (expr) => (expr.includes('finetune_controller_') ? 'controller panel: checked by test/operator/' : false);
  await checkDashboardPanels(t, { file: join(DASHBOARDS, 'training.json'), prom, window, step: SCRAPE_INTERVAL_S, rateInterval: RATE_INTERVAL, pending });
});

test('rank 0 wrote metrics.prom next to metrics.json with the final figures', { skip: SKIP }, () => {
  const summary = JSON.parse(readFileSync(join(job.out, 'metrics.json'), 'utf8'));
  const prom = readFileSync(join(job.out, 'metrics.prom'), 'utf8');
  const value = (name) => Number(new RegExp(`^${name}\\{job="${JOB_LABEL}",rank="0"\\} (\\S+)$`, 'm').exec(prom)?.[1]);
  assert.equal(value('finetune_worker_step'), summary.final.step);
  assert.equal(value('finetune_worker_total_steps'), STEPS);
  assert.equal(value('finetune_worker_world_size'), 2);
  // Rank 0 processed half of every global batch of 12.
  assert.equal(value('finetune_worker_samples_total'), summary.final.step * 6);
  assert.equal(value('finetune_worker_validation_accuracy'), summary.eval.at(-1).accuracy);
  assert.ok(!prom.includes('rank="1"'), 'only rank 0 writes the file, with its own registry');
});
