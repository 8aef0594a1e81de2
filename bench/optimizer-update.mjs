#!/usr/bin/env node
// Benchmark: one AdamW update of a flat float32 parameter tensor, done (a) in TypeScript by
// createOptimizer('adamw') and (b) as an ONNX graph of standard ops (Mul/Add/Sub/Div/Sqrt) run by
// onnxruntime-node, including moving data in and out of the session. Prints ms per update and the
// ratio, to decide where the update runs. Not a test: besides a one-step agreement check it asserts nothing.
//
//   npx tsc -b packages/worker && node bench/optimizer-update.mjs
//   node bench/optimizer-update.mjs --sizes 1000000,10000000 --iters 20 --threads 1,2
//
// Page faults and kernel time are printed because they dominate the ONNX path at large sizes:
// onnxruntime's intermediates above glibc's mmap threshold (32 MiB at most) are mmap'd fresh and
// first-touched on every run. MALLOC_MMAP_THRESHOLD_=4294967296 in the environment keeps them in
// the heap and shows the ONNX cost without that effect.
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { ModelBuilder, modelToBytes, createOptimizer, rng, randomValues } from '@finetune/worker';

const { values: args } = parseArgs({
  options: {
    sizes: { type: 'string', default: '1000000,10000000' },
    iters: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '5' },
    threads: { type: 'string', default: [...new Set([1, cpus().length])].join(',') },
  },
});
const sizes = args.sizes.split(',').map(Number);
const threadCounts = args.threads.split(',').map(Number);
const iters = Number(args.iters);
const warmup = Number(args.warmup);
const hp = { beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 0.01 };
const LR = 1e-3;

/** The AdamW update of torch.optim.AdamW as a graph; the bias corrections 1 - beta^t come in as inputs. */
function adamwGraph() {
  const m = new ModelBuilder(17);
  const p = m.input('param', ['n']);
  const g = m.input('grad', ['n']);
  const mo = m.input('m', ['n']);
  const vo = m.input('v', ['n']);
  const lr = m.input('lr', []);
  const bc1 = m.input('bias_correction1', []);
  const bc2 = m.input('bias_correction2', []);
  const c = (name, v) => m.param(name, [], [v]);
  const decay = m.node('Sub', [c('one', 1), m.node('Mul', [lr, c('wd', hp.weightDecay)])]);
  const p1 = m.node('Mul', [p, decay]);
  const mNew = m.node('Add', [m.node('Mul', [mo, c('b1', hp.beta1)]), m.node('Mul', [g, c('a1', 1 - hp.beta1)])]);
  const vNew = m.node('Add', [m.node('Mul', [vo, c('b2', hp.beta2)]), m.node('Mul', [m.node('Mul', [g, g]), c('a2', 1 - hp.beta2)])]);
  const denom = m.node('Add', [m.node('Div', [m.node('Sqrt', [vNew]), m.node('Sqrt', [bc2])]), c('eps', hp.eps)]);
  const pNew = m.node('Sub', [p1, m.node('Mul', [m.node('Div', [mNew, denom]), m.node('Div', [lr, bc1])])]);
  m.output(pNew).output(mNew).output(vNew);
  return { model: m.build(), outputs: { param: pNew, m: mNew, v: vNew } };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Median wall ms per call, plus page faults and kernel CPU per call: on VMs, first-touch page
 * faults on freshly allocated buffers can dominate a memory-bound update, so they are reported.
 */
async function timeIt(fn) {
  for (let i = 0; i < warmup; i++) await fn(i);
  const ms = [];
  const r0 = process.resourceUsage();
  for (let i = 0; i < iters; i++) {
    const t0 = process.hrtime.bigint();
    await fn(warmup + i);
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  const r1 = process.resourceUsage();
  return {
    ms: median(ms),
    min: Math.min(...ms),
    faults: (r1.minorPageFault - r0.minorPageFault) / iters,
    sysMs: (r1.systemCPUTime - r0.systemCPUTime) / iters / 1e3,
    userMs: (r1.userCPUTime - r0.userCPUTime) / iters / 1e3,
  };
}

const fmt = (t) => `${t.ms.toFixed(2)} ms (min ${t.min.toFixed(2)}; CPU user ${t.userMs.toFixed(1)} + sys ${t.sysMs.toFixed(1)} ms, ${Math.round(t.faults)} page faults)`;

function initial(n) {
  const r = rng(n);
  return { param: randomValues(r, n), grad: randomValues(r, n, -1e-2, 1e-2) };
}

const bias = (t) => [1 - hp.beta1 ** t, 1 - hp.beta2 ** t];
const scalar = (x) => new ort.Tensor('float32', Float32Array.of(x), []);

async function onnxUpdater(n, threads, prealloc) {
  const { model, outputs } = adamwGraph();
  const session = await ort.InferenceSession.create(modelToBytes(model), {
    graphOptimizationLevel: 'all',
    intraOpNumThreads: threads,
    interOpNumThreads: 1,
    executionMode: 'sequential',
  });
  const st = { m: new Float32Array(n), v: new Float32Array(n) };
  // Ping-pong buffers for the preallocated variant: the session writes the next state straight
  // into JS memory, so nothing is copied back; inputs and outputs never alias.
  const spare = prealloc ? { param: new Float32Array(n), m: new Float32Array(n), v: new Float32Array(n) } : undefined;
  return async (param, grad, step) => {
    const [bc1, bc2] = bias(step + 1);
    const feeds = {
      param: new ort.Tensor('float32', param.data, [n]),
      grad: new ort.Tensor('float32', grad, [n]),
      m: new ort.Tensor('float32', st.m, [n]),
      v: new ort.Tensor('float32', st.v, [n]),
      lr: scalar(LR),
      bias_correction1: scalar(bc1),
      bias_correction2: scalar(bc2),
    };
    if (spare) {
      const fetches = {
        [outputs.param]: new ort.Tensor('float32', spare.param, [n]),
        [outputs.m]: new ort.Tensor('float32', spare.m, [n]),
        [outputs.v]: new ort.Tensor('float32', spare.v, [n]),
      };
      await session.run(feeds, fetches);
      [param.data, spare.param] = [spare.param, param.data];
      [st.m, spare.m] = [spare.m, st.m];
      [st.v, spare.v] = [spare.v, st.v];
    } else {
      const out = await session.run(feeds);
      // Parameters live in JS memory (they feed the training session), so results are copied back.
      param.data.set(out[outputs.param].data);
      st.m.set(out[outputs.m].data);
      st.v.set(out[outputs.v].data);
    }
  };
}

/** One step of each path from the same start must agree, or the timing compares different work. */
async function check(n, threads) {
  const a = initial(n);
  const tsParam = a.param.slice();
  createOptimizer({ type: 'adamw', ...hp }, [n]).step([tsParam], [a.grad], LR);
  const holder = { data: a.param.slice() };
  await (await onnxUpdater(n, threads, false))(holder, a.grad, 0);
  let maxDiff = 0;
  for (let i = 0; i < n; i++) maxDiff = Math.max(maxDiff, Math.abs(holder.data[i] - tsParam[i]));
  if (maxDiff > 1e-6) throw new Error(`ONNX and TypeScript AdamW disagree: max |diff| ${maxDiff}`);
  return maxDiff;
}

console.log(`MALLOC_MMAP_THRESHOLD_=${process.env.MALLOC_MMAP_THRESHOLD_ ?? '(unset)'}`);
console.log(`AdamW update, median of ${iters} after ${warmup} warm-up; node ${process.version}, onnxruntime-node ${ort.env.versions?.common ?? ''}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'})`);
for (const n of sizes) {
  const { param, grad } = initial(n);
  const p = param.slice();
  const opt = createOptimizer({ type: 'adamw', ...hp }, [n]);
  const ts = await timeIt(() => opt.step([p], [grad], LR));
  // 7 streams of n floats: read param, grad, m, v; write param, m, v.
  console.log(`\nparams ${n.toLocaleString('en-US')}: TypeScript ${fmt(ts)} per update, ${((n * 4 * 7) / ts.ms / 1e6).toFixed(1)} GB/s effective`);
  for (const threads of threadCounts) {
    const maxDiff = await check(Math.min(n, 1 << 16), threads);
    const copy = await onnxUpdater(n, threads, false);
    const holderA = { data: param.slice() };
    const viaCopy = await timeIt((step) => copy(holderA, grad, step));
    let pre;
    try {
      const prealloc = await onnxUpdater(n, threads, true);
      const holderB = { data: param.slice() };
      pre = await timeIt((step) => prealloc(holderB, grad, step));
    } catch (e) {
      console.log(`  preallocated outputs not supported: ${e.message}`);
    }
    console.log(`  ONNX, ${threads} intra-op thread(s), one-step agreement with TS ${maxDiff.toExponential(1)}:`);
    console.log(`    outputs copied back:   ${fmt(viaCopy)}  ratio ONNX/TS ${(viaCopy.ms / ts.ms).toFixed(2)}`);
    if (pre) console.log(`    preallocated outputs: ${fmt(pre)}  ratio ONNX/TS ${(pre.ms / ts.ms).toFixed(2)}`);
  }
}
