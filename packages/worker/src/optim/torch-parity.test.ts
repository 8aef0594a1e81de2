/**
 * Cross-checks against PyTorch itself (torch.optim.SGD, torch.optim.AdamW,
 * torch.nn.utils.clip_grad_norm_) when /usr/bin/python3 can import torch; skipped otherwise, so
 * machines without PyTorch still pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rng, randomValues } from '../testing/model-builder.js';
import { clipByGlobalNorm } from './clip.js';
import { createOptimizer, type OptimizerSpec } from './optimizer.js';

const PYTHON = '/usr/bin/python3';

// torch computes in float32 per op, we in float64 per element: a few float32 ulps per step.
const RTOL = 1e-5;
const ATOL = 1e-6;

function torchAvailable(): string | undefined {
  const probe = spawnSync(PYTHON, ['-c', 'import torch'], { encoding: 'utf8', timeout: 120_000 });
  if (probe.error) return `${PYTHON} not runnable (${probe.error.message})`;
  if (probe.status !== 0) return `torch not importable by ${PYTHON}`;
  return undefined;
}

/** Reads cases as JSON on stdin; prints, per case, the parameters after all steps. */
const SCRIPT = `
import json, sys, torch
cases = json.load(sys.stdin)
out = []
for c in cases:
    spec = c['spec']
    params = [torch.tensor(p, dtype=torch.float32, requires_grad=True) for p in c['params']]
    wd = spec.get('weightDecay', 0.01 if spec['type'] == 'adamw' else 0.0)
    groups = [{'params': [p], 'weight_decay': wd if decays else 0.0} for p, decays in zip(params, c['mask'])]
    if spec['type'] == 'sgd':
        opt = torch.optim.SGD(groups, lr=c['lrs'][0], momentum=spec.get('momentum', 0.0),
                              dampening=spec.get('dampening', 0.0), nesterov=spec.get('nesterov', False))
    else:
        opt = torch.optim.AdamW(groups, lr=c['lrs'][0], betas=(spec.get('beta1', 0.9), spec.get('beta2', 0.999)),
                                eps=spec.get('eps', 1e-8))
    for lr, grads in zip(c['lrs'], c['grads']):
        for g in opt.param_groups:
            g['lr'] = lr
        for p, g in zip(params, grads):
            p.grad = torch.tensor(g, dtype=torch.float32)
        if c['maxNorm'] is not None:
            torch.nn.utils.clip_grad_norm_(params, c['maxNorm'])
        opt.step()
    out.append([p.detach().tolist() for p in params])
json.dump(out, sys.stdout)
`;

interface Case {
  spec: OptimizerSpec;
  params: number[][];
  grads: number[][][];
  lrs: number[];
  mask: boolean[];
  maxNorm: number | null;
}

function makeCase(spec: OptimizerSpec, seed: number, maxNorm: number | null = null): Case {
  const r = rng(seed);
  const sizes = [8, 3];
  const steps = 5;
  return {
    spec,
    params: sizes.map((n) => Array.from(randomValues(r, n))),
    grads: Array.from({ length: steps }, () => sizes.map((n) => Array.from(randomValues(r, n, -2, 2)))),
    lrs: [0.1, 0.08, 0.2, 0.05, 0.1],
    mask: [true, false],
    maxNorm,
  };
}

function ours(c: Case): Float32Array[] {
  const params = c.params.map((p) => Float32Array.from(p));
  const opt = createOptimizer(c.spec, params.map((p) => p.length), c.mask);
  c.lrs.forEach((lr, t) => {
    const grads = c.grads[t]!.map((g) => Float32Array.from(g));
    if (c.maxNorm !== null) clipByGlobalNorm(grads, c.maxNorm);
    opt.step(params, grads, lr);
  });
  return params;
}

test('SGD, AdamW and gradient clipping match PyTorch over 5 steps', (t) => {
  const missing = torchAvailable();
  if (missing !== undefined) {
    t.skip(`PyTorch cross-check skipped: ${missing}`);
    return;
  }
  const cases: Case[] = [
    makeCase({ type: 'sgd', weightDecay: 0.1 }, 1),
    makeCase({ type: 'sgd', momentum: 0.9, dampening: 0.3, weightDecay: 0.05 }, 2),
    makeCase({ type: 'sgd', momentum: 0.9, nesterov: true, weightDecay: 0.2 }, 3),
    makeCase({ type: 'adamw' }, 4),
    makeCase({ type: 'adamw', beta1: 0.8, beta2: 0.95, eps: 1e-6, weightDecay: 0.3 }, 5),
    makeCase({ type: 'adamw', weightDecay: 0.1 }, 6, 0.5),
    makeCase({ type: 'sgd', momentum: 0.5, nesterov: true }, 7, 1.0),
  ];
  const run = spawnSync(PYTHON, ['-c', SCRIPT], { input: JSON.stringify(cases), encoding: 'utf8', timeout: 120_000, maxBuffer: 1 << 24 });
  assert.equal(run.status, 0, `python failed: ${run.error?.message ?? run.stderr}`);
  const torchOut = JSON.parse(run.stdout) as number[][][];
  assert.equal(torchOut.length, cases.length);
  cases.forEach((c, k) => {
    const got = ours(c);
    got.forEach((p, i) => {
      const expected = torchOut[k]![i]!;
      for (let j = 0; j < expected.length; j++) {
        const e = expected[j]!;
        // Every case must move the parameters, or agreement would prove nothing.
        assert.notEqual(e, c.params[i]![j], `case ${k} param ${i}[${j}] did not move`);
        assert.ok(Math.abs(p[j]! - e) <= RTOL * Math.abs(e) + ATOL, `case ${k} (${JSON.stringify(c.spec)}) param ${i}[${j}]: ours ${p[j]}, torch ${e}`);
      }
    });
  });
});
