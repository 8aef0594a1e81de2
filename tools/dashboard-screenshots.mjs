#!/usr/bin/env node
// Regenerates docs/dashboard-training.png and docs/dashboard-operator.png: the chart's Grafana
// dashboards, rendered from real Prometheus data by tools/render-dashboard.mjs (Grafana is not
// available here) and screenshotted by headless Chromium.
//
//   node tools/dashboard-screenshots.mjs    (1-2 minutes; needs the control-plane binaries of
//                                             test/control-plane/, /usr/bin/prometheus,
//                                             /usr/bin/chromium and packages/cli built)
//
// The data: the same real components as test/operator/ — etcd, kube-apiserver, kube-scheduler and
// kube-controller-manager, the node agent running worker pods as local processes, `ftjob
// controller` as a child process, a real Prometheus scraping the controller and the worker pods —
// running the 2-worker cluster example, plus a second job whose worker 1 is SIGKILLed mid-training
// so that a gang restart shows. GPU panels show a STAND-IN for dcgm-exporter (no GPU here).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runKubectl, startControlPlane, waitFor } from '../test/control-plane/harness.mjs';
import { startNodeAgent } from '../test/node-agent/agent.mjs';
import { digitsJob } from '../test/operator/jobs.mjs';
import { startPodDiscovery } from '../test/operator/pod-discovery.mjs';
import { freePort, PROMETHEUS, SCRAPE_INTERVAL_S, startPrometheus } from '../test/metrics/prometheus.mjs';
import { startDcgmStandIn } from '../test/metrics/dcgm-stand-in.mjs';
import { loadDashboard } from '../test/metrics/grafana.mjs';
import { CHROMIUM, chromiumScreenshot } from '../test/report/chromium.mjs';
import { renderForDevCluster } from './local-example.mjs';
import { pageSize, renderDashboard } from './render-dashboard.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CRD = join(ROOT, 'deploy/helm/finetune-operator/crds/finetunejobs.finetune.dev.yaml');
const DASHBOARDS = join(ROOT, 'deploy/helm/finetune-operator/dashboards');
const FTJOB = join(ROOT, 'packages/cli/bin/ftjob.js');
const NS = 'default';
const SHOTS = [
  { dashboard: 'training.json', png: 'docs/dashboard-training.png', noteSuffix: '; GPU panels: stand-in data (no GPU here)' },
  { dashboard: 'operator.json', png: 'docs/dashboard-operator.png', noteSuffix: '' },
];

const log = (line) => process.stderr.write(`[dashboard-screenshots] ${line}\n`);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/**
 * dcgm-exporter stand-ins, one per job while its pods run, announced to Prometheus through a
 * file_sd target file: the GPU panels then show each job's pods only while they exist.
 */
function gpuStandIns(dir) {
  const file = join(dir, 'dcgm-targets.json');
  const running = new Map();
  const write = () => writeFileSync(file, JSON.stringify([{ targets: [...running.values()].map((s) => s.address) }]));
  write();
  return {
    discovery: { file_sd_configs: [{ files: [file], refresh_interval: '1s' }] },
    async start(job, replicas) {
      const pods = Array.from({ length: replicas }, (_, r) => `${job}-worker-${r}`);
      running.set(job, await startDcgmStandIn({ namespace: NS, pods }));
      write();
    },
    async stop(job) {
      const standIn = running.get(job);
      running.delete(job);
      write();
      await standIn?.close();
    },
    stopAll: () => Promise.all([...running.keys()].map((job) => running.get(job).close())),
  };
}

/** The step a worker pod reports on its metrics port (9464 in the cluster, see docs/metrics.md). */
async function workerStep(podIp) {
  const text = await (await fetch(`http://${podIp}:9464/metrics`)).text();
  return Number(/^finetune_worker_step\{[^}]*\} (\S+)$/m.exec(text)?.[1] ?? 0);
}

/** `ftjob controller` as a child process; its output is kept for error messages. */
function startController(kubeconfigPath, metricsPort) {
  let output = '';
  const child = spawn(process.execPath, [FTJOB, 'controller', '--kubeconfig', kubeconfigPath, '--metrics-port', String(metricsPort), '--health-port', '0', '--worker-image', 'local/ftjob:dev'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout.on('data', (d) => (output = (output + d).slice(-20_000)));
  child.stderr.on('data', (d) => (output = (output + d).slice(-20_000)));
  const exited = new Promise((resolve) => child.on('exit', resolve));
  return {
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Runs the scenario with Prometheus watching; calls `use(prom, window)` before tearing it all down. */
export async function withScenario(use) {
  const work = mkdtempSync(join(tmpdir(), 'ft-dashboards-'));
  const stack = [];
  try {
    log('starting the control plane');
    const cp = await startControlPlane({ scheduler: true, controllers: true });
    stack.push(() => cp.stop());
    const kubectl = async (args, input) => {
      const r = await runKubectl(cp, args, { input });
      if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const job = async (name) => JSON.parse(await kubectl(['get', 'ftj', name, '-n', NS, '-o', 'json']));
    await kubectl(['apply', '--server-side', '-f', CRD]);
    await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/finetunejobs.finetune.dev']);
    const agent = await startNodeAgent({ kubeconfigPath: cp.kubeconfigPath, workdir: join(work, 'agent'), nodes: [{ name: 'node-a', gpus: 2 }, { name: 'node-b', gpus: 2 }] });
    stack.push(() => agent.stop());
    const discovery = await startPodDiscovery(cp);
    stack.push(() => discovery.stop());
    const gpus = gpuStandIns(work);
    stack.push(() => gpus.stopAll());
    const metricsPort = await freePort();
    const prom = await startPrometheus([
      { name: 'finetune-controller', targets: [`127.0.0.1:${metricsPort}`] },
      { name: 'finetune-workers', discovery: { http_sd_configs: [{ url: discovery.url, refresh_interval: '1s' }] } },
      { name: 'dcgm-exporter', discovery: gpus.discovery }, // stand-in: no GPU here
    ]);
    stack.push(() => prom.stop());
    const controller = startController(cp.kubeconfigPath, metricsPort);
    stack.push(() => controller.stop());
    const until = (what, fn, timeoutMs) => waitFor(what, fn, { timeoutMs, intervalMs: 250, context: () => `controller log:\n${controller.output().slice(-3000)}` });
    // Jobs start once Prometheus has the controller's first sample, so their first transitions count.
    await until('Prometheus to scrape the controller', async () => (await prom.api('query', { query: 'up{job="finetune-controller"} == 1' })).result.length > 0, 60_000);
    const start = Math.floor(Date.now() / 1000) - 2;
    const phase = async (name) => (await job(name)).status?.phase;

    /** Applies a job, keeps its GPU stand-in up while it runs, resolves when it has succeeded. */
    const runJob = async (name, manifest, duringRun = async () => {}) => {
      await kubectl(['apply', '-f', '-'], manifest);
      await until(`${name} to run`, async () => (await phase(name)) === 'Running', 120_000);
      await gpus.start(name, 2);
      log(`${name} is running`);
      await duringRun();
      await until(`${name} to succeed`, async () => (await phase(name)) === 'Succeeded', 300_000);
      await gpus.stop(name);
      log(`${name} succeeded after ${Math.round(Date.now() / 1000 - start)} s`);
    };
    const example = renderForDevCluster(readFileSync(join(ROOT, 'examples/cluster/digits-5to9.yaml'), 'utf8'), join(work, 'results'));
    const killWorker1 = async () => {
      // A third of the way in, after a checkpoint: the gang restarts and resumes from it. The step
      // comes from the worker's own /metrics (the job's status lags behind on a busy machine).
      let victim;
      await until('killed-worker-1 to pass step 400', async () => (victim = agent.pod(NS, 'killed-worker-1')) && (await workerStep(victim.ip)) >= 400, 120_000);
      process.kill(victim.pid, 'SIGKILL');
      log('SIGKILLed killed-worker-1');
      let seen;
      await until('killed to restart', async () => (seen = await job('killed')).status?.restarts >= 1, 60_000).catch((err) => {
        throw new Error(`${err.message}\nstatus: ${JSON.stringify(seen?.status)}\nworker 0: ${agent.podLog(NS, 'killed-worker-0')?.slice(-1500)}\nworker 1: ${agent.podLog(NS, 'killed-worker-1')?.slice(-800)}`);
      });
    };
    // One job after the other, so that each one's curves read on their own.
    await runJob('digits-5to9', example);
    await runJob('killed', digitsJob('killed', { outDir: join(work, 'out'), namespace: NS, epochs: 120, perClass: 20, training: { checkpointEvery: 50 } }), killWorker1);
    // A few more scrapes, so the end of both jobs is in the picture.
    await sleep(8_000);
    await use(prom, { start, end: Math.ceil(Date.now() / 1000) });
  } finally {
    for (const stop of stack.reverse()) await stop().catch((err) => log(`cleanup: ${err.message}`));
    rmSync(work, { recursive: true, force: true });
  }
}

/** Renders each dashboard over `window` and screenshots it into docs/; `pages` keeps the HTML. */
export async function screenshotDashboards(prom, window, { pages } = {}) {
  const dir = pages ?? mkdtempSync(join(tmpdir(), 'ft-dashboard-pages-'));
  mkdirSync(dir, { recursive: true });
  try {
    for (const shot of SHOTS) {
      const dashboard = loadDashboard(join(DASHBOARDS, shot.dashboard));
      const note = `panels of ${shot.dashboard} rendered from Prometheus data by tools/render-dashboard.mjs (Grafana is not available here)${shot.noteSuffix}`;
      const html = await renderDashboard(dashboard, prom, window, { scrapeIntervalS: SCRAPE_INTERVAL_S, note });
      const page = join(dir, shot.dashboard.replace(/\.json$/, '.html'));
      writeFileSync(page, html);
      await chromiumScreenshot(page, join(ROOT, shot.png), pageSize(dashboard));
      log(`wrote ${shot.png}`);
    }
  } finally {
    if (!pages) rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (process.argv.length > 2) {
    process.stderr.write(`dashboard-screenshots: unexpected argument '${process.argv[2]}' (it takes none; it writes ${SHOTS.map((s) => s.png).join(' and ')})\n`);
    process.exit(2);
  }
  for (const needed of [PROMETHEUS, CHROMIUM, join(ROOT, 'packages/cli/dist')]) {
    if (!existsSync(needed)) {
      process.stderr.write(`dashboard-screenshots: ${needed} is missing (apt-get install prometheus chromium; npx tsc -b packages/cli)\n`);
      process.exit(2);
    }
  }
  const began = Date.now();
  await withScenario((prom, window) => screenshotDashboards(prom, window));
  log(`done in ${Math.round((Date.now() - began) / 1000)} s`);
}
