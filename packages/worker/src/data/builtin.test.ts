import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadBuiltin, loadMnist, loadSpamAssassin, loadSpamAssassinCorpus, spamAssassinTexts } from './builtin.js';
import { classCounts, exampleSize, labelIds, type Dataset } from './dataset.js';
import { emailBody, Tokenizer } from './tokenizer.js';
import { UserError } from '../errors.js';

// Per-digit counts in the mnist package's data files (mnist[d].length).
const MNIST_COUNTS = [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978];

function pixelSum(ds: Dataset, i: number): number {
  const f = ds.features.image!;
  const n = exampleSize(f.shape);
  return (f.data as Float32Array).subarray(i * n, (i + 1) * n).reduce((a, b) => a + b, 0);
}

test('mnist: all 10,000 digits, [1, 28, 28] in [0, 1], ordered by digit', async () => {
  const ds = await loadMnist({ inputName: 'image' });
  assert.equal(ds.length, 10000);
  assert.deepEqual(ds.features.image!.shape, [1, 28, 28]);
  assert.deepEqual(classCounts(ds), MNIST_COUNTS);
  assert.deepEqual(ds.classes, ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
  const px = ds.features.image!.data as Float32Array;
  assert.equal(px.length, 10000 * 784);
  assert.ok(px.every((v) => v >= 0 && v <= 1));
  // Known sums of the first image of digits 0 and 9 in the package data.
  assert.ok(Math.abs(pixelSum(ds, 0) - 121.921) < 1e-3, `first 0 sums to ${pixelSum(ds, 0)}`);
  assert.ok(Math.abs(pixelSum(ds, 10000 - 978) - 91.026) < 1e-3);
});

test('mnist: a digit subset is relabelled by position, deterministically', async () => {
  const ds = await loadBuiltin('mnist', { inputName: 'image', digits: [5, 6, 7, 8, 9] });
  assert.deepEqual(ds.classes, ['5', '6', '7', '8', '9']);
  assert.equal(ds.length, 863 + 1014 + 1070 + 944 + 978);
  assert.deepEqual(classCounts(ds), [863, 1014, 1070, 944, 978]);
  const ids = labelIds(ds);
  assert.equal(ids[0], 0);
  assert.equal(ids[863], 1);
  assert.equal(ids.at(-1), 4);
  assert.ok(Math.abs(pixelSum(ds, 0) - 107.938) < 1e-3, 'first image is the first 5');
  assert.ok(Math.abs(pixelSum(ds, 863) - 111.53) < 1e-3, 'then the first 6');
  const reversed = await loadMnist({ inputName: 'image', digits: [9, 5] });
  assert.deepEqual(classCounts(reversed), [978, 863]);
  assert.ok(Math.abs(pixelSum(reversed, 0) - 91.026) < 1e-3);
  await assert.rejects(loadMnist({ inputName: 'image', digits: [3, 10] }), UserError);
  await assert.rejects(loadMnist({ inputName: 'image', digits: [3, 3] }), /repeat/);
  await assert.rejects(loadBuiltin('cifar', { inputName: 'x' }), /unknown built-in dataset 'cifar'; known: mnist, spam-assassin/);
});

test('spam-assassin: 6,046 emails, ham=0 (4,150) and spam=1 (1,896), as token ids', async () => {
  const corpus = await loadSpamAssassinCorpus();
  const groups: Record<string, number> = {};
  for (const e of corpus) groups[e.group] = (groups[e.group] ?? 0) + 1;
  assert.deepEqual(groups, { 'easy-ham-1': 2500, 'easy-ham-2': 1400, 'hard-ham-1': 250, 'spam-1': 500, 'spam-2': 1396 });
  assert.ok(corpus.every((e) => e.label === (e.group.startsWith('spam') ? 1 : 0)));

  const texts = await spamAssassinTexts();
  assert.equal(texts.length, 6046);
  assert.equal(texts[17], emailBody(corpus[17]!.text));
  assert.ok(corpus[0]!.text.startsWith('From ') && !texts[0]!.startsWith('From '), 'headers are dropped by default');

  // A small vocabulary from a slice keeps the test quick; the loader does not care.
  const tokenizer = Tokenizer.train(texts.slice(0, 400), { vocabSize: 2000, minCount: 2 });
  const ds = await loadSpamAssassin({ inputName: 'ids', tokenizer, maxLength: 64 });
  assert.equal(ds.length, 6046);
  assert.deepEqual(ds.classes, ['ham', 'spam']);
  assert.deepEqual(classCounts(ds), [4150, 1896]);
  const f = ds.features.ids!;
  assert.equal(f.type, 'int64');
  assert.deepEqual(f.shape, [64]);
  assert.deepEqual(Array.from((f.data as BigInt64Array).subarray(17 * 64, 18 * 64), Number), tokenizer.encode(texts[17]!, 64));
  assert.ok((f.data as BigInt64Array).every((v) => v >= 0n && v < 2000n));
  await assert.rejects(loadBuiltin('spam-assassin', { inputName: 'ids' }), /needs a tokenizer and maxLength/);
});
