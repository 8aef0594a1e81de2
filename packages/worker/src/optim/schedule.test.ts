import { test } from 'node:test';
import assert from 'node:assert/strict';
import { learningRateAt, lrMultiplier, type ScheduleSpec } from './schedule.js';

const close = (a: number, b: number, what: string) => assert.ok(Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(b)), `${what}: got ${a}, expected ${b}`);

/** transformers' lr_lambda bodies, restated in closed form for 0 <= step <= total. */
function hfLinear(s: number, w: number, total: number): number {
  return s < w ? s / Math.max(1, w) : Math.max(0, (total - s) / Math.max(1, total - w));
}
function hfCosine(s: number, w: number, total: number, minRatio = 0): number {
  if (s < w) return s / Math.max(1, w);
  const progress = (s - w) / Math.max(1, total - w);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)) * (1 - minRatio) + minRatio);
}

test('constant schedule is the base LR at every step', () => {
  for (const s of [0, 1, 99, 1000]) assert.equal(learningRateAt(s, { type: 'constant' }, 100, 3e-4), 3e-4);
});

test('linear schedule: 0 at step 0, base at the warmup boundary, half at the midpoint of decay, 0 at the end', () => {
  const spec: ScheduleSpec = { type: 'linear', warmupSteps: 10 };
  const lr = (s: number) => learningRateAt(s, spec, 110, 2);
  assert.equal(lr(0), 0);
  close(lr(5), 1, 'mid-warmup');
  close(lr(9), 1.8, 'last warmup step');
  close(lr(10), 2, 'warmup boundary');
  close(lr(60), 1, 'decay midpoint');
  close(lr(109), 2 / 100, 'last step');
  assert.equal(lr(110), 0);
  assert.equal(lr(150), 0);
  for (let s = 0; s <= 110; s++) close(lrMultiplier(s, spec, 110), hfLinear(s, 10, 110), `step ${s}`);
});

test('cosine schedule: warmup, half-cosine decay to base * minLrRatio, held after the end', () => {
  for (const minLrRatio of [undefined, 0.1]) {
    const ratio = minLrRatio ?? 0;
    const spec: ScheduleSpec = { type: 'cosine', warmupSteps: 10, minLrRatio };
    const lr = (s: number) => learningRateAt(s, spec, 110, 2);
    assert.equal(lr(0), 0);
    close(lr(5), 1, 'mid-warmup');
    close(lr(10), 2, 'warmup boundary');
    close(lr(60), 2 * (0.5 + 0.5 * ratio), 'decay midpoint');
    close(lr(35), 2 * (ratio + (1 - ratio) * (0.5 + 0.5 * Math.SQRT1_2)), 'quarter of decay');
    close(lr(110), 2 * ratio, 'end');
    close(lr(200), 2 * ratio, 'past the end');
    for (let s = 0; s <= 110; s++) close(lrMultiplier(s, spec, 110), hfCosine(s, 10, 110, ratio), `step ${s}`);
  }
});

test('cosine without warmup matches known transformers values', () => {
  // get_cosine_schedule_with_warmup(opt, 0, 4): lr_lambda(0..4).
  const expected = [1, 0.8535533905932737, 0.5, 0.14644660940672627, 0];
  expected.forEach((e, s) => close(lrMultiplier(s, { type: 'cosine', warmupSteps: 0 }, 4), e, `step ${s}`));
});

test('schedules are monotone: non-decreasing during warmup, non-increasing after', () => {
  const specs: ScheduleSpec[] = [
    { type: 'linear', warmupSteps: 7 },
    { type: 'cosine', warmupSteps: 7 },
    { type: 'cosine', warmupSteps: 7, minLrRatio: 0.2 },
  ];
  for (const spec of specs) {
    for (let s = 1; s <= 60; s++) {
      const prev = lrMultiplier(s - 1, spec, 50);
      const cur = lrMultiplier(s, spec, 50);
      if (s <= 7) assert.ok(cur > prev, `${spec.type} warmup step ${s}`);
      else assert.ok(cur <= prev, `${spec.type} decay step ${s}: ${cur} > ${prev}`);
    }
  }
});

test('zero warmup steps start at the base LR, never divide by zero', () => {
  for (const type of ['linear', 'cosine'] as const) {
    assert.equal(learningRateAt(0, { type, warmupSteps: 0 }, 10, 0.5), 0.5);
    assert.equal(learningRateAt(10, { type, warmupSteps: 0 }, 10, 0.5), 0);
    // One-step run: step 0 gets the full LR.
    assert.equal(learningRateAt(0, { type, warmupSteps: 0 }, 1, 0.5), 0.5);
    for (let s = 0; s <= 5; s++) assert.ok(Number.isFinite(lrMultiplier(s, { type, warmupSteps: 5 }, 5)));
  }
});

test('invalid schedule arguments are rejected', () => {
  assert.throws(() => lrMultiplier(0, { type: 'linear', warmupSteps: 11 }, 10), /warmupSteps/);
  assert.throws(() => lrMultiplier(0, { type: 'linear', warmupSteps: -1 }, 10), /warmupSteps/);
  assert.throws(() => lrMultiplier(0, { type: 'cosine', warmupSteps: 1.5 }, 10), /warmupSteps/);
  assert.throws(() => lrMultiplier(0, { type: 'cosine', warmupSteps: 1 }, 0), /totalSteps/);
  assert.throws(() => lrMultiplier(0, { type: 'cosine', warmupSteps: 1, minLrRatio: 2 }, 10), /minLrRatio/);
  assert.throws(() => lrMultiplier(-1, { type: 'constant' }, 10), /step/);
  assert.throws(() => learningRateAt(0, { type: 'constant' }, 10, -1), /base learning rate/);
  assert.throws(() => lrMultiplier(0, { type: 'step' } as never, 10), /unknown type/);
});
