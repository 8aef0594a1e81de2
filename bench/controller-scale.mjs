#!/usr/bin/env node
// How the controller copes with many jobs: N FineTuneJobs of W workers each are created at once on
// a real kube-apiserver (test/control-plane; no scheduler, so pods stay Pending — they need not
// run), and we time until every worker pod exists and every job has a status, and read the
// controller's peak memory (VmHWM of its process).
//
//   node bench/controller-scale.mjs [--jobs 500] [--workers 4] [--concurrency 4]
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startControlPlane, runKubectl } from '../test/control-plane/harness.mjs';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({ options: { jobs: { type: 'string', default: '500' }, workers: { type: 'string', default: '4' }, concurrency: { type: 'string', default: '4' } } });
const JOBS = Number(values.jobs);
const WORKERS = Number(values.workers);

const job = (i) => ({
  apiVersion: 'finetune.dev/v1alpha1',
  kind: 'FineTuneJob',
  metadata: { name: `scale-${String(i).padStart(4, '0')}`, namespace: 'default' },
  spec: {
    model: { source: '/models/base.onnx', head: { numClasses: 5 } },
    dataset: { builtin: 'mnist', digits: [5, 6, 7, 8, 9] },
    training: { batchSize: 4 * WORKERS },
    workers: { replicas: WORKERS, gpusPerWorker: 1 },
    runPolicy: { schedulingTimeoutSeconds: 86400 },
  },
});

/** Peak and current resident memory of a process, in MiB (Linux /proc). */
function memoryMiB(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = (key) => Number(new RegExp(`${key}:\\s+(\\d+)`).exec(status)?.[1] ?? NaN);
  return { peak: kib('VmHWM') / 1024, now: kib('VmRSS') / 1024 };
}

const cp = await startControlPlane({ scheduler: false });
let controller;
try {
  const kubectl = async (args, input) => {
    const r = await runKubectl(cp, args, { input, timeoutMs: 600_000 });
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  await kubectl(['apply', '--server-side', '-f', join(ROOT, 'deploy/helm/finetune-operator/crds/finetunejobs.finetune.dev.yaml')]);
  await kubectl(['wait', '--for=condition=Established', '--timeout=60s', 'crd/finetunejobs.finetune.dev']);
  controller = spawn(process.execPath, [join(ROOT, 'packages/cli/bin/ftjob.js'), 'controller', '--kubeconfig', cp.kubeconfigPath, '--metrics-port', '0', '--health-port', '0', '--concurrency', values.concurrency], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  controller.stderr.on('data', (d) => (log += d));
  while (!/caches synced/.test(log)) await new Promise((r) => setTimeout(r, 100));
  const idle = memoryMiB(controller.pid);

  const started = performance.now();
  await kubectl(['create', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items: Array.from({ length: JOBS }, (_, i) => job(i)) }));
  const created = performance.now();
  const want = JOBS * WORKERS;
  let pods = 0;
  let withStatus = 0;
  let peak = idle.peak;
  while (pods < want || withStatus < JOBS) {
    await new Promise((r) => setTimeout(r, 1000));
    pods = (await kubectl(['get', 'pods', '-n', 'default', '--no-headers', '-o', 'custom-columns=N:.metadata.name'])).trim().split('\n').filter(Boolean).length;
    withStatus = (await kubectl(['get', 'ftj', '-n', 'default', '--no-headers', '-o', 'custom-columns=P:.status.phase'])).split('\n').filter((l) => l.trim() === 'Pending').length;
    peak = Math.max(peak, memoryMiB(controller.pid).peak);
    process.stderr.write(`\r${((performance.now() - started) / 1000).toFixed(0)} s: ${pods}/${want} pods, ${withStatus}/${JOBS} jobs with a status   `);
  }
  const done = performance.now();
  process.stderr.write('\n');
  const mem = memoryMiB(controller.pid);
  const load = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  console.log(`controller scale: ${JOBS} FineTuneJobs x ${WORKERS} workers = ${want} pods (+ ${JOBS} Services, ConfigMaps, Secrets), concurrency ${values.concurrency}, load ${load}`);
  console.log(`  kubectl create of the ${JOBS} jobs:            ${((created - started) / 1000).toFixed(1)} s`);
  console.log(`  until every pod exists and every job has status: ${((done - started) / 1000).toFixed(1)} s (${(want / ((done - started) / 1000)).toFixed(0)} pods/s)`);
  console.log(`  controller memory: idle ${idle.now.toFixed(0)} MiB, peak ${peak.toFixed(0)} MiB, after ${mem.now.toFixed(0)} MiB (RSS)`);
} finally {
  controller?.kill('SIGTERM');
  await cp.stop();
}
