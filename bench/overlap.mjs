#!/usr/bin/env node
// Benchmark: data-parallel training steps with and without overlapping the gradient all-reduce
// with the backward pass (TrainerOptions.overlap), side by side in one run, plus one worker alone
// for the scaling efficiency. Every rank is a real OS process; ranks talk gRPC over loopback.
// Not a test: it asserts nothing and prints figures.
//
//   npx tsc -b packages/worker && node bench/overlap.mjs
//   node bench/overlap.mjs --hidden 2048 --batch 64 --steps 30 --rounds 3 --accum 1 --bucket-mib 4
//   node bench/overlap.mjs --world 1 --skip-alone      (the gradient thread's own cost, alone)
//
// Model: MLP 784-H-H-10 (H = --hidden; 2048 gives 5.8M parameters, 23 MB of gradients per step),
// cross-entropy, SGD, one onnxruntime intra-op thread per rank. --batch is per worker (the global
// batch grows with the world). Modes alternate within each round, so slow drifts in machine load
// hit both. Per step, from the trainer's own metrics (StepReport.seconds, allReduced):
//   step      wall time of an optimizer step (median over the measured steps)
//   compute   forward + backward as the main thread saw it (overlapped all-reduces included)
//   exposed   time the step waited for all-reduces after the gradients were complete
//   busy      time the gradient all-reduces ran (sum over buckets)
//   hidden    1 - exposed / busy: the share of all-reduce time spent behind computation
// The "1 worker" row trains alone with overlap off (the default path), same per-worker batch.
// Scaling efficiency = samples/s(N workers) / (N x samples/s(1 worker)).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({
  options: {
    hidden: { type: 'string', default: '2048' },
    batch: { type: 'string', default: '64' },
    steps: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '5' },
    accum: { type: 'string', default: '1' },
    'bucket-mib': { type: 'string', default: '4' },
    rounds: { type: 'string', default: '2' },
    world: { type: 'string', default: '2' },
    modes: { type: 'string', default: 'off,on' },
    'skip-alone': { type: 'boolean', default: false },
    // Internal: run one rank.
    rank: { type: 'string' },
    dir: { type: 'string' },
    mode: { type: 'string' },
  },
});
function fail(message) {
  console.error(`bench/overlap.mjs: ${message}`);
  process.exit(2);
}
const count = (flag) => {
  const v = Number(args[flag]);
  if (!(Number.isInteger(v) && v > 0)) fail(`--${flag}: expected a positive integer, got '${args[flag]}'`);
  return v;
};
const cfg = {
  hidden: count('hidden'),
  batch: count('batch'),
  steps: count('steps'),
  warmup: count('warmup'),
  accum: count('accum'),
  bucketBytes: Math.round(Number(args['bucket-mib']) * 2 ** 20),
  rounds: count('rounds'),
  world: count('world'),
};
if (!(cfg.bucketBytes > 0)) fail(`--bucket-mib: expected a positive number, got '${args['bucket-mib']}'`);
if (cfg.batch % cfg.accum !== 0) fail(`--accum ${cfg.accum} must divide --batch ${cfg.batch}`);
const MODES = ['off', 'on', 'auto'];
for (const m of args.modes.split(',')) if (!MODES.includes(m)) fail(`--modes: '${m}' is not one of ${MODES.join(', ')}`);
const INPUTS = 784;
const CLASSES = 10;
const TOKEN = 'bench-overlap-token-0123456789';

if (args.rank !== undefined) await rank(Number(args.rank), Number(args.world), args.mode, args.dir);
else await main();

// ---- the parent: data, model, rounds, table -----------------------------------------------

async function main() {
  const { ModelBuilder, saveModel, rng, randomValues } = await import('@finetune/worker');
  const dir = mkdtempSync(join(tmpdir(), 'ftjob-overlap-'));
  try {
    const r = rng(11);
    const m = new ModelBuilder(17);
    const x = m.input('x', ['batch', INPUTS]);
    const layer = (input, name, inDim, outDim, relu) => {
      const limit = 1 / Math.sqrt(inDim);
      const y = m.node('Gemm', [input, m.param(`${name}.weight`, [outDim, inDim], randomValues(r, outDim * inDim, -limit, limit)), m.param(`${name}.bias`, [outDim], randomValues(r, outDim, -limit, limit))], { transB: 1 });
      return relu ? m.node('Relu', [y]) : y;
    };
    m.output(layer(layer(layer(x, 'fc1', INPUTS, cfg.hidden, true), 'fc2', cfg.hidden, cfg.hidden, true), 'fc3', cfg.hidden, CLASSES, false));
    saveModel(m.build(), join(dir, 'mlp.onnx'));
    // Enough examples that no rank finishes an epoch during the measured steps (no evaluation, no checkpoint).
    const examples = cfg.batch * cfg.world * (cfg.steps + cfg.warmup + 2) + 64;
    writeNpy(join(dir, 'x.npy'), '<f4', [examples, INPUTS], randomValues(r, examples * INPUTS, 0, 1));
    writeNpy(join(dir, 'y.npy'), '<i8', [examples], BigInt64Array.from({ length: examples }, () => BigInt(Math.floor(r() * CLASSES))));
    const params = INPUTS * cfg.hidden + cfg.hidden + cfg.hidden * cfg.hidden + cfg.hidden + cfg.hidden * CLASSES + CLASSES;

    console.log(`MLP ${INPUTS}-${cfg.hidden}-${cfg.hidden}-${CLASSES}: ${(params / 1e6).toFixed(2)}M parameters (${((params * 4) / 2 ** 20).toFixed(1)} MiB of gradients per step); batch ${cfg.batch} per worker in ${cfg.accum} micro-batch(es); ${cfg.steps} measured steps after ${cfg.warmup}; bucket ${args['bucket-mib']} MiB; 1 intra-op thread per rank`);
    console.log(`load average before: ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const modes = args.modes.split(',');
    const results = new Map();
    const record = (key, res) => results.set(key, [...(results.get(key) ?? []), res]);
    for (let round = 0; round < cfg.rounds; round++) {
      if (!args['skip-alone']) record('1 worker', await runRanks(dir, 1, 'off'));
      for (const mode of round % 2 === 0 ? modes : [...modes].reverse()) record(`${cfg.world} workers, overlap ${mode}`, await runRanks(dir, cfg.world, mode));
    }
    console.log(`load average after: ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);

    console.log('| run | step ms | data ms | compute ms | exposed all-reduce ms | optimizer ms | all-reduce busy ms | hidden | samples/s | CPU ms/step/rank (main thread) |');
    console.log('| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |');
    const summary = new Map();
    for (const [key, runs] of results) {
      const m = { step: median(runs.map((r) => r.step)), data: median(runs.map((r) => r.data)), optimizer: median(runs.map((r) => r.optimizer)), cpu: median(runs.map((r) => r.cpuPerStep)), mainCpu: median(runs.map((r) => r.mainCpuPerStep)), compute: median(runs.map((r) => r.compute)), exposed: median(runs.map((r) => r.exposed)), busy: median(runs.map((r) => r.busy)), sps: median(runs.map((r) => r.samplesPerSecond)) };
      summary.set(key, m);
      const hidden = m.busy > 0 ? `${Math.max(0, 100 * (1 - m.exposed / m.busy)).toFixed(0)}%` : "-";
      console.log(`| ${key} | ${ms(m.step)} | ${ms(m.data)} | ${ms(m.compute)} | ${ms(m.exposed)} | ${ms(m.optimizer)} | ${ms(m.busy)} | ${hidden} | ${m.sps.toFixed(0)} | ${ms(m.cpu)} (${ms(m.mainCpu)}) |`);
    }
    console.log(`(medians over ${cfg.rounds} round(s); each round's figure is the median step of every rank)`);
    const off = summary.get(`${cfg.world} workers, overlap off`);
    const on = summary.get(`${cfg.world} workers, overlap on`);
    if (off && on) console.log(`\noverlap on / off: step time ${(on.step / off.step).toFixed(3)}x, samples/s ${(on.sps / off.sps).toFixed(3)}x`);
    const alone = summary.get('1 worker');
    if (alone) {
      for (const [key, m] of summary) if (key !== '1 worker') console.log(`scaling efficiency, ${key}: ${(m.sps / (cfg.world * alone.sps)).toFixed(3)} (samples/s ${m.sps.toFixed(0)} vs ${cfg.world} x ${alone.sps.toFixed(0)})`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Starts `world` rank processes, wires their ring, and returns the slowest rank's figures. */
async function runRanks(dir, world, mode) {
  const script = fileURLToPath(import.meta.url);
  const children = Array.from({ length: world }, (_, r) =>
    spawn(process.execPath, ['--initial-old-space-size=64', script, '--rank', String(r), '--world', String(world), '--mode', mode, '--dir', dir, ...passOn()], { stdio: ['pipe', 'pipe', 'inherit'] }),
  );
  const lines = children.map((c) => createInterface({ input: c.stdout }));
  const next = (i) => new Promise((resolve, reject) => {
    lines[i].once('line', (l) => resolve(JSON.parse(l)));
    children[i].once('exit', (code) => code !== 0 && reject(new Error(`rank ${i} (${mode}) exited with ${code}`)));
  });
  const ports = await Promise.all(children.map((_, i) => next(i)));
  const peers = ports.map((p) => `127.0.0.1:${p.port}`).join(',');
  children.forEach((c) => c.stdin.write(JSON.stringify({ peers }) + '\n'));
  const figures = await Promise.all(children.map((_, i) => next(i)));
  await Promise.all(children.map((c) => new Promise((resolve) => (c.exitCode !== null ? resolve() : c.once('exit', resolve)))));
  // The ring moves at the pace of its slowest rank: report that one.
  return figures.reduce((a, b) => (b.step > a.step ? b : a));
}

function passOn() {
  return ['--hidden', args.hidden, '--batch', args.batch, '--steps', args.steps, '--warmup', args.warmup, '--accum', args.accum, '--bucket-mib', args['bucket-mib']];
}

// ---- one rank ---------------------------------------------------------------------------

async function rank(r, world, mode, dir) {
  const worker = await import('@finetune/worker');
  const { validateFineTuneJob } = await import('@finetune/api');
  const lines = createInterface({ input: process.stdin });
  let parallel;
  let close = async () => {};
  if (world > 1) {
    const server = await worker.startCollectiveServer({ port: 0, host: '127.0.0.1', token: TOKEN, jobId: 'bench-overlap', rank: r, worldSize: world });
    process.stdout.write(JSON.stringify({ port: server.port }) + '\n');
    const { peers } = JSON.parse(await new Promise((resolve) => lines.once('line', resolve)));
    const link = await worker.connectRing({ server, rank: r, worldSize: world, peers: peers.split(','), token: TOKEN, jobId: 'bench-overlap', timeoutMs: 120_000, connectDeadlineMs: 30_000 });
    parallel = worker.dataParallelOver(link);
    close = async () => {
      await link.close();
      await server.close();
    };
  } else {
    process.stdout.write(JSON.stringify({ port: 0 }) + '\n');
    await new Promise((resolve) => lines.once('line', resolve));
  }
  lines.close();
  const job = validateFineTuneJob({
    apiVersion: 'finetune.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: { name: 'bench-overlap' },
    spec: {
      model: { source: join(dir, 'mlp.onnx') },
      dataset: { train: { path: join(dir, 'x.npy'), labels: join(dir, 'y.npy') }, validationSplit: 0.01 },
      optimizer: { type: 'sgd', learningRate: 0.01, momentum: 0.9 },
      training: { maxSteps: cfg.steps + cfg.warmup, batchSize: cfg.batch * world, gradientAccumulationSteps: cfg.accum, seed: 1 },
      workers: { replicas: world },
      output: { path: join(dir, `out-${world}-${mode}`) },
    },
  });
  const steps = [];
  let busy = 0;
  let cpuAtWarmup;
  let cpuMeasured;
  const observer = {
    runStarted() {},
    stepFinished(report) {
      steps.push({ ...report.seconds, busy });
      busy = 0;
      // CPU time of the whole process (all threads) over the measured steps.
      if (report.step === cfg.warmup) cpuAtWarmup = { all: process.cpuUsage(), main: mainThreadCpu() };
      if (report.step === cfg.warmup + cfg.steps) {
        const all = process.cpuUsage(cpuAtWarmup.all);
        cpuMeasured = { all: (all.user + all.system) / 1e6, main: mainThreadCpu() - cpuAtWarmup.main };
      }
    },
    evaluated() {},
    // Gradient all-reduces only (evaluation sums and parameter checks are a few bytes).
    allReduced(bytes, seconds) {
      if (bytes > 1024) busy += seconds;
    },
    checkpointWritten() {},
    exposition: async () => '',
  };
  const prepared = await worker.prepareRun(job);
  await worker.runTraining(prepared, { threads: 1, metrics: observer, overlap: mode, bucketBytes: cfg.bucketBytes, ...(parallel ? { parallel } : {}) });
  await close();
  const measured = steps.slice(cfg.warmup);
  const total = (s) => s.data + s.compute + (s.allreduce ?? 0) + s.optimizer;
  const step = median(measured.map(total));
  process.stdout.write(
    JSON.stringify({
      step,
      data: median(measured.map((s) => s.data)),
      optimizer: median(measured.map((s) => s.optimizer)),
      compute: median(measured.map((s) => s.compute)),
      exposed: median(measured.map((s) => s.allreduce ?? 0)),
      busy: median(measured.map((s) => s.busy)),
      samplesPerSecond: (cfg.batch * world) / step,
      cpuPerStep: cpuMeasured.all / cfg.steps,
      mainCpuPerStep: cpuMeasured.main / cfg.steps,
    }) + '\n',
  );
}

// ---- helpers ----------------------------------------------------------------------------

/** CPU seconds of this process's main thread (Linux: utime + stime of the thread, in clock ticks of 10 ms). */
function mainThreadCpu() {
  try {
    const fields = readFileSync(`/proc/${process.pid}/task/${process.pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  return s.length === 0 ? 0 : s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

function ms(seconds) {
  return (seconds * 1000).toFixed(1);
}

/** A NumPy .npy file (format 1.0): magic, header dict padded to 64 bytes, then the raw data. */
function writeNpy(path, descr, shape, data) {
  const dict = `{'descr': '${descr}', 'fortran_order': False, 'shape': (${shape.join(', ')}${shape.length === 1 ? ',' : ''}), }`;
  const unpadded = 10 + dict.length + 1;
  const header = dict + ' '.repeat((64 - (unpadded % 64)) % 64) + '\n';
  const head = Buffer.alloc(10);
  head.write('\x93NUMPY', 0, 'latin1');
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  writeFileSync(path, Buffer.concat([head, Buffer.from(header, 'latin1'), Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}
