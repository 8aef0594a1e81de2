import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeSummary, summaryToJson, type RunSummary } from './summary.js';
import { sampleRunSummary } from './sample.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'report-summary-'));

test('writeSummary round-trips through JSON and leaves no temporary file', () => {
  const dir = tmp();
  const path = join(dir, 'nested', 'metrics.json');
  const summary = sampleRunSummary({ steps: 40, evalEvery: 10 });
  writeSummary(path, summary);
  const text = readFileSync(path, 'utf8');
  assert.ok(text.startsWith('{\n  "format": "finetune-operator/metrics@1"'), 'pretty-printed, format first');
  assert.deepEqual(JSON.parse(text), summary);
  assert.deepEqual(readdirSync(join(dir, 'nested')), ['metrics.json']);
});

test('writeSummary replaces an existing file', () => {
  const dir = tmp();
  const path = join(dir, 'metrics.json');
  writeFileSync(path, 'old contents that are not JSON');
  const summary = sampleRunSummary({ steps: 5, evalEvery: 5, job: 'second' });
  writeSummary(path, summary);
  assert.equal((JSON.parse(readFileSync(path, 'utf8')) as RunSummary).job, 'second');
  assert.deepEqual(readdirSync(dir), ['metrics.json']);
});

test('non-finite numbers serialize as null', () => {
  const summary = sampleRunSummary({ steps: 3, evalEvery: 1 });
  summary.train[0]!.loss = NaN;
  summary.train[1]!.gradNorm = Infinity;
  summary.train[2]!.learningRate = -Infinity;
  summary.eval[0]!.accuracy = NaN;
  summary.timing.samplesPerSecond = NaN;
  summary.config = { optimizer: { lr: NaN, betas: [0.9, Infinity] }, seed: 12n };
  const dir = tmp();
  const path = join(dir, 'metrics.json');
  writeSummary(path, summary);
  const text = readFileSync(path, 'utf8');
  assert.equal(text, summaryToJson(summary));
  assert.doesNotMatch(text, /NaN|Infinity/);
  const back = JSON.parse(text) as Record<string, any>;
  assert.equal(back.train[0].loss, null);
  assert.equal(back.train[1].gradNorm, null);
  assert.equal(back.train[2].learningRate, null);
  assert.equal(back.train[1].loss, summary.train[1]!.loss, 'finite neighbours are untouched');
  assert.equal(back.eval[0].accuracy, null);
  assert.equal(back.timing.samplesPerSecond, null);
  assert.deepEqual(back.config, { optimizer: { lr: null, betas: [0.9, null] }, seed: 12 });
});
