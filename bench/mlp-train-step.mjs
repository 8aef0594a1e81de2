#!/usr/bin/env node
// Benchmark: one training step (forward + backward + SGD update) of an MLP 784-1024-10 at batch 256,
// finetune-operator's generated training graph in onnxruntime-node vs PyTorch on the same machine,
// in the same run. Prints samples/s for each and the ratio. Not a test: it asserts nothing.
//
//   npm run bench:mlp                 (after npm ci; PyTorch side needs Debian's python3-torch)
//   node bench/mlp-train-step.mjs --steps 50 --batch 256 --threads 2
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { ModelBuilder, buildTrainingArtifacts, modelToBytes, gradName, rng, randomValues } from '@finetune/worker';

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '256' },
    hidden: { type: 'string', default: '1024' },
    steps: { type: 'string', default: '50' },
    warmup: { type: 'string', default: '5' },
    threads: { type: 'string', default: String(cpus().length) },
    python: { type: 'string', default: '/usr/bin/python3' },
  },
});
const cfg = {
  inputs: 784,
  hidden: Number(args.hidden),
  classes: 10,
  batch: Number(args.batch),
  steps: Number(args.steps),
  warmup: Number(args.warmup),
  threads: Number(args.threads),
};

function mlp() {
  const r = rng(1);
  const m = new ModelBuilder(17);
  const x = m.input('x', ['batch', cfg.inputs]);
  const limit1 = 1 / Math.sqrt(cfg.inputs);
  const limit2 = 1 / Math.sqrt(cfg.hidden);
  // PyTorch's Linear layout ([out, in], transB = 1), as torch.onnx.export writes it.
  const w1 = m.param('fc1.weight', [cfg.hidden, cfg.inputs], randomValues(r, cfg.hidden * cfg.inputs, -limit1, limit1));
  const b1 = m.param('fc1.bias', [cfg.hidden], randomValues(r, cfg.hidden, -limit1, limit1));
  const w2 = m.param('fc2.weight', [cfg.classes, cfg.hidden], randomValues(r, cfg.classes * cfg.hidden, -limit2, limit2));
  const b2 = m.param('fc2.bias', [cfg.classes], randomValues(r, cfg.classes, -limit2, limit2));
  const h = m.node('Relu', [m.node('Gemm', [x, w1, b1], { transB: 1 })]);
  m.output(m.node('Gemm', [h, w2, b2], { transB: 1 }));
  return m.build();
}

async function ours() {
  const model = mlp();
  const artifacts = await buildTrainingArtifacts(model, { loss: 'cross_entropy' });
  const session = await ort.InferenceSession.create(modelToBytes(artifacts.training), {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: cfg.threads,
    interOpNumThreads: 1,
  });
  const r = rng(2);
  const inits = new Map(model.graph.initializers.map((t) => [t.name, t]));
  const params = artifacts.params.map((p) => ({ ...p, values: Float32Array.from(inits.get(p.name).values) }));
  const labels = BigInt64Array.from({ length: cfg.batch }, () => BigInt(Math.floor(r() * cfg.classes)));
  const feeds = {
    x: new ort.Tensor('float32', randomValues(r, cfg.batch * cfg.inputs, 0, 1), [cfg.batch, cfg.inputs]),
    labels: new ort.Tensor('int64', labels, [cfg.batch]),
  };
  for (const p of params) feeds[p.name] = new ort.Tensor('float32', p.values, p.dims);
  const lr = 0.01;
  const step = async () => {
    const out = await session.run(feeds);
    for (const p of params) {
      const g = out[gradName(p.name)].data;
      const v = p.values;
      for (let i = 0; i < v.length; i++) v[i] -= lr * g[i];
    }
    return out.loss.data[0];
  };
  for (let i = 0; i < cfg.warmup; i++) await step();
  const start = performance.now();
  let loss = 0;
  for (let i = 0; i < cfg.steps; i++) loss = await step();
  const seconds = (performance.now() - start) / 1000;
  await session.release();
  return { seconds_per_step: seconds / cfg.steps, samples_per_second: (cfg.batch * cfg.steps) / seconds, loss };
}

function pytorch() {
  if (!existsSync(args.python)) return { skipped: `${args.python} not found` };
  const script = new URL('./pytorch_mlp_step.py', import.meta.url).pathname;
  // This machine sets OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE for old OpenBLAS builds; they slow current
  // ones, so the peer runs without them (OpenBLAS then picks its kernel for the real CPU).
  const env = { ...process.env };
  delete env.OPENBLAS_CORETYPE;
  delete env.OPENBLAS_L2_SIZE;
  const res = spawnSync(args.python, [script], { input: JSON.stringify(cfg), encoding: 'utf8', env });
  if (res.status !== 0) return { skipped: (res.stderr || '').trim().split('\n').pop() || `exit ${res.status}` };
  return JSON.parse(res.stdout.trim().split('\n').pop());
}

const flops = 2 * cfg.batch * (cfg.inputs * cfg.hidden + cfg.hidden * cfg.classes) * 3 - 2 * cfg.batch * cfg.inputs * cfg.hidden;
const a = await ours();
const b = pytorch();
console.log(`MLP ${cfg.inputs}-${cfg.hidden}-${cfg.classes}, batch ${cfg.batch}, ${cfg.steps} steps, ${cfg.threads} threads, SGD step included`);
console.log(`finetune-operator (onnxruntime-node ${ort.env.versions?.common ?? ''}): ${a.samples_per_second.toFixed(0)} samples/s, ${(a.seconds_per_step * 1000).toFixed(2)} ms/step, ${(flops / a.seconds_per_step / 1e9).toFixed(1)} GFLOP/s`);
if (b.skipped) {
  console.log(`PyTorch: skipped (${b.skipped})`);
} else {
  console.log(`PyTorch ${b.torch} (${b.threads} threads): ${b.samples_per_second.toFixed(0)} samples/s, ${(b.seconds_per_step * 1000).toFixed(2)} ms/step, ${(flops / b.seconds_per_step / 1e9).toFixed(1)} GFLOP/s; BLAS: ${b.blas.join(', ') || 'unknown'}`);
  console.log(`ratio (finetune-operator / PyTorch): ${(a.samples_per_second / b.samples_per_second).toFixed(2)}x`);
}
