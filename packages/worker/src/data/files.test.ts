import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { detectFormat, loadCsv, loadDatasetFiles, loadJsonl, loadNpy, readTexts } from './files.js';
import { labelIds, type Dataset } from './dataset.js';
import { Tokenizer } from './tokenizer.js';
import { npyBytes } from './fixtures.js';
import { UserError } from '../errors.js';

const dir = mkdtempSync(join(tmpdir(), 'ftjob-data-'));
mkdirSync(join(dir, 'data'));
let counter = 0;

/** Writes `content` to a fresh file with extension `ext` and returns its path. */
function file(ext: string, content: string | Uint8Array): string {
  const path = join(dir, 'data', `f${counter++}.${ext}`);
  writeFileSync(path, content);
  return path;
}

const jsonl = (rows: unknown[]) => rows.map((r) => (typeof r === 'string' ? r : JSON.stringify(r))).join('\n') + '\n';
const tokenizer = Tokenizer.train(['good great fine', 'bad awful'], { vocabSize: 20 });
const floats = (ds: Dataset, name: string) => Array.from(ds.features[name]!.data as Float32Array);

/** Rejects with exactly a UserError whose message is `message` (string) or matches it (RegExp). */
async function rejectsWith(p: Promise<unknown>, message: string | RegExp): Promise<void> {
  await assert.rejects(p, (e: Error) => {
    assert.ok(e instanceof UserError, `not a UserError: ${e.stack}`);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

test('JSONL text rows: tokenized ids, class names mapped in sorted order', async () => {
  const path = file('jsonl', jsonl([{ text: 'good fine', label: 'pos' }, '', { text: 'awful thing', label: 'neg' }, { text: 'great', label: 'pos' }]));
  const ds = await loadJsonl(path, { inputName: 'ids', textField: 'text', tokenizer, maxLength: 3 });
  assert.equal(ds.length, 3);
  assert.deepEqual(ds.classes, ['neg', 'pos']);
  assert.deepEqual(labelIds(ds), [1, 0, 1]);
  assert.deepEqual(ds.features.ids!.shape, [3]);
  assert.deepEqual(Array.from(ds.features.ids!.data as BigInt64Array, Number), [
    ...tokenizer.encode('good fine', 3),
    ...tokenizer.encode('awful thing', 3),
    ...tokenizer.encode('great', 3),
  ]);
  // Given classes fix the ids, whatever the file holds.
  const fixed = await loadJsonl(path, { inputName: 'ids', textField: 'text', tokenizer, maxLength: 3, classes: ['pos', 'neg'] });
  assert.deepEqual(labelIds(fixed), [0, 1, 0]);
  assert.deepEqual(await readTexts({ path, textField: 'text' }), ['good fine', 'awful thing', 'great']);
});

test('JSONL numeric features (nested arrays keep their shape) with integer ids or regression targets', async () => {
  const path = file('jsonl', jsonl([{ x: [[1, 2], [3, 4]], y: 2 }, { x: [[5, 6], [7, 8.5]], y: 0 }]));
  const ds = await loadJsonl(path, { inputName: 'img', featuresField: 'x', labelField: 'y', numClasses: 3 });
  assert.deepEqual(ds.features.img!.shape, [2, 2]);
  assert.deepEqual(floats(ds, 'img'), [1, 2, 3, 4, 5, 6, 7, 8.5]);
  assert.deepEqual(labelIds(ds), [2, 0]);
  assert.equal(ds.classes, undefined);
  const reg = file('jsonl', jsonl([{ x: [1], t: [0.5, 1] }, { x: [2], t: [-1, 2] }]));
  const r = await loadJsonl(reg, { inputName: 'x', featuresField: 'x', labelField: 't', labelKind: 'regression' });
  assert.deepEqual(r.labels, { type: 'float32', shape: [2], data: Float32Array.from([0.5, 1, -1, 2]) });
});

test('JSONL errors name the file, the line and the field', async () => {
  const rel = (p: string) => p; // paths appear as given
  const missing = file('jsonl', jsonl([{ text: 'a', label: 'x' }, { text: 'b', label: 'y' }, { text: 'c' }]));
  const t = { inputName: 'ids', textField: 'text', tokenizer, maxLength: 4 };
  await rejectsWith(loadJsonl(missing, { ...t, labelField: 'label' }), `${rel(missing)} line 3: missing label field 'label'`);
  const noText = file('jsonl', jsonl([{ body: 'a', label: 'x' }]));
  await rejectsWith(loadJsonl(noText, t), `${noText} line 1: missing text field 'text'`);
  const notString = file('jsonl', jsonl([{ text: 5, label: 'x' }]));
  await rejectsWith(loadJsonl(notString, t), `${notString} line 1: text field 'text' must be a string, not number`);
  const badJson = file('jsonl', jsonl([{ text: 'a', label: 'x' }, '{"text": "b", label: 1}']));
  await rejectsWith(loadJsonl(badJson, t), new RegExp(`^${badJson} line 2: invalid JSON`));
  const array = file('jsonl', jsonl([[1, 2]]));
  await rejectsWith(loadJsonl(array, t), `${array} line 1: expected a JSON object`);
  const unknown = file('jsonl', jsonl([{ text: 'a', label: 'ham' }, { text: 'b', label: 'eggs' }]));
  await rejectsWith(loadJsonl(unknown, { ...t, classes: ['ham', 'spam'] }), `${unknown} line 2: label 'eggs' is not one of the classes 'ham', 'spam'`);
  const big = file('jsonl', jsonl([{ text: 'a', label: 0 }, { text: 'b', label: 3 }]));
  await rejectsWith(loadJsonl(big, { ...t, numClasses: 3 }), `${big} line 2: label 3 is outside the 3 classes (ids 0..2)`);
  await rejectsWith(loadJsonl(big, { ...t, classes: ['a', 'b'] }), `${big} line 2: label 3 is outside the 2 classes (ids 0..1)`);
  const frac = file('jsonl', jsonl([{ text: 'a', label: 1.5 }]));
  await rejectsWith(loadJsonl(frac, t), /line 1: label 1\.5 is not a class id/);
  const mixed = file('jsonl', jsonl([{ text: 'a', label: 'x' }, { text: 'b', label: 1 }]));
  await rejectsWith(loadJsonl(mixed, t), /line 2: label 1 mixes class names and integer ids/);
  const tooMany = file('jsonl', jsonl([{ text: 'a', label: 'x' }, { text: 'b', label: 'y' }, { text: 'c', label: 'z' }]));
  await rejectsWith(loadJsonl(tooMany, { ...t, numClasses: 2 }), /the labels name 3 classes \('x', 'y', 'z'\) but numClasses is 2/);
  const boolLabel = file('jsonl', jsonl([{ text: 'a', label: true }]));
  await rejectsWith(loadJsonl(boolLabel, t), `${boolLabel} line 1: label must be a class name or an integer class id, not boolean`);
  await rejectsWith(loadJsonl(file('jsonl', '\n\n'), t), /: no examples$/);
  await rejectsWith(loadJsonl(missing, { inputName: 'ids', textField: 'text' }), /text field 'text' needs a tokenizer and maxLength/);
  await rejectsWith(loadJsonl(join(dir, 'nope.jsonl'), t), /nope\.jsonl: cannot read/);
});

test('JSONL feature shape errors: ragged arrays, shape changes between lines, non-numbers', async () => {
  const f = { inputName: 'x', featuresField: 'x' };
  const ragged = file('jsonl', jsonl([{ x: [[1, 2], [3]], label: 0 }]));
  await rejectsWith(loadJsonl(ragged, f), `${ragged} line 1: field 'x' is ragged: [1] has shape [1] but [0] has [2]`);
  const changes = file('jsonl', jsonl([{ x: [1, 2, 3], label: 0 }, { x: [1, 2, 3], label: 0 }, { x: [1, 2], label: 1 }]));
  await rejectsWith(loadJsonl(changes, f), `${changes} line 3: field 'x' has shape [2], but ${changes} line 1 has [3]`);
  const text = file('jsonl', jsonl([{ x: [1, 'two'], label: 0 }]));
  await rejectsWith(loadJsonl(text, f), `${text} line 1: field 'x' [1] must be a number or a (nested) array of numbers, not string`);
  const noFeatures = file('jsonl', jsonl([{ y: [1], label: 0 }]));
  await rejectsWith(loadJsonl(noFeatures, f), `${noFeatures} line 1: missing features field 'x'`);
  await rejectsWith(loadJsonl(noFeatures, { inputName: 'x' }), /set textField or featuresField/);
  await rejectsWith(loadJsonl(noFeatures, { ...f, textField: 't' }), /not both/);
});

test('CSV numeric columns: every column but the label by default, in header order', async () => {
  const path = file('csv', 'a,b,label,c\n1,2,cat,3\n4, 5.5 ,dog,-6\n"7",8,cat,9\n');
  const ds = await loadCsv(path, { inputName: 'x' });
  assert.deepEqual(ds.features.x!.shape, [3]);
  assert.deepEqual(floats(ds, 'x'), [1, 2, 3, 4, 5.5, -6, 7, 8, 9]);
  assert.deepEqual(ds.classes, ['cat', 'dog']);
  assert.deepEqual(labelIds(ds), [0, 1, 0]);
  const some = await loadCsv(path, { inputName: 'x', featureFields: ['c', 'a'] });
  assert.deepEqual(floats(some, 'x'), [3, 1, -6, 4, 9, 7]);
  // All-integer labels are ids; with classes, names and ids both work.
  const ids = file('csv', 'v,label\n1,2\n2,0\n');
  assert.deepEqual(labelIds(await loadCsv(ids, { inputName: 'x' })), [2, 0]);
  assert.deepEqual(labelIds(await loadCsv(file('csv', 'v,label\n1,b\n2,0\n'), { inputName: 'x', classes: ['a', 'b'] })), [1, 0]);
  // A class literally named "1" wins over id 1.
  assert.deepEqual(labelIds(await loadCsv(file('csv', 'v,label\n1,1\n2,0\n'), { inputName: 'x', classes: ['0', 'x', '1'] })), [2, 0]);
});

test('CSV text column and TSV by extension', async () => {
  const path = file('tsv', 'label\ttext\npos\t"good, great"\nneg\tbad\n');
  const ds = await loadDatasetFiles({ path, inputName: 'ids', textField: 'text', tokenizer, maxLength: 2, cls: true });
  assert.deepEqual(Array.from(ds.features.ids!.data as BigInt64Array, Number), [
    ...tokenizer.encode('good, great', 2, { cls: true }),
    ...tokenizer.encode('bad', 2, { cls: true }),
  ]);
  assert.deepEqual(labelIds(ds), [1, 0]);
  assert.deepEqual(await readTexts({ path, textField: 'text' }), ['good, great', 'bad']);
});

test('CSV errors name the file, the line and the column', async () => {
  const badNumber = file('csv', 'a,b,label\n1,2,x\n3,abc,y\n');
  await rejectsWith(loadCsv(badNumber, { inputName: 'x' }), `${badNumber} line 3, column 'b': 'abc' is not a number`);
  const empty = file('csv', 'a,label\n1,x\n,y\n');
  await rejectsWith(loadCsv(empty, { inputName: 'x' }), `${empty} line 3, column 'a': empty value is not a number`);
  const width = file('csv', 'a,label\n1,"multi\nline"\n1,2,y\n');
  await rejectsWith(loadCsv(width, { inputName: 'x' }), `${width} line 4: 3 fields, but the header has 2`);
  const noLabel = file('csv', 'a,b\n1,2\n');
  await rejectsWith(loadCsv(noLabel, { inputName: 'x' }), `${noLabel}: no label column 'label' in the header (columns: a, b)`);
  await rejectsWith(loadCsv(noLabel, { inputName: 'x', labelField: 'b', featureFields: ['z'] }), `${noLabel}: no feature column 'z' in the header (columns: a, b)`);
  const blankLabel = file('csv', 'a,label\n1,x\n2, \n');
  await rejectsWith(loadCsv(blankLabel, { inputName: 'x' }), `${blankLabel} line 3: missing label in column 'label'`);
  const outside = file('csv', 'a,label\n1,0\n2,5\n');
  await rejectsWith(loadCsv(outside, { inputName: 'x', numClasses: 2 }), `${outside} line 3: label 5 is outside the 2 classes (ids 0..1)`);
  await rejectsWith(loadCsv(file('csv', ''), { inputName: 'x' }), /empty file/);
  await rejectsWith(loadCsv(file('csv', 'a,label\n'), { inputName: 'x' }), /no examples/);
});

test('npy pairs: uint8 images scaled to [0, 1], int32 labels as class ids', async () => {
  const x = file('npy', npyBytes('|u1', [2, 1, 2, 2], Uint8Array.from([0, 51, 102, 255, 255, 0, 0, 0])));
  const y = file('npy', npyBytes('<i4', [2], Int32Array.from([1, 0])));
  const ds = await loadDatasetFiles({ path: x, labelsPath: y, inputName: 'image', numClasses: 2 });
  assert.deepEqual(ds.features.image!.shape, [1, 2, 2]);
  assert.deepEqual(floats(ds, 'image'), [0, 0.2, 0.4, 1, 1, 0, 0, 0].map(Math.fround));
  assert.equal(ds.labels.type, 'int64');
  assert.deepEqual(labelIds(ds), [1, 0]);
  const raw = await loadNpy(x, y, { inputName: 'image', scaleUint8: false });
  assert.deepEqual(floats(raw, 'image'), [0, 51, 102, 255, 255, 0, 0, 0]);
  const named = await loadNpy(x, y, { inputName: 'image', classes: ['cat', 'dog'] });
  assert.deepEqual(named.classes, ['cat', 'dog']);
  // float64 features become float32; int64 features stay int64 (token ids).
  const f8 = file('npy', npyBytes('<f8', [2, 1], Float64Array.from([0.1, 2])));
  assert.deepEqual(floats(await loadNpy(f8, y, { inputName: 'x' }), 'x'), [Math.fround(0.1), 2]);
  const tokens = file('npy', npyBytes('<i8', [2, 3], BigInt64Array.from([3n, 4n, 0n, 3n, 9n, 9n])));
  const t = await loadNpy(tokens, y, { inputName: 'ids' });
  assert.equal(t.features.ids!.type, 'int64');
  assert.deepEqual(t.features.ids!.shape, [3]);
  // Regression targets from float labels.
  const targets = file('npy', npyBytes('<f4', [2, 2], Float32Array.from([1, 2, 3, 4])));
  const reg = await loadNpy(x, targets, { inputName: 'image', labelKind: 'regression' });
  assert.deepEqual(reg.labels, { type: 'float32', shape: [2], data: Float32Array.from([1, 2, 3, 4]) });
});

test('npy errors: count mismatch, float class labels, labels out of range, missing labels file', async () => {
  const x = file('npy', npyBytes('<f4', [3, 2], new Float32Array(6)));
  const y2 = file('npy', npyBytes('<i8', [2], BigInt64Array.from([0n, 1n])));
  await rejectsWith(loadNpy(x, y2, { inputName: 'x' }), `${x} has 3 examples but ${y2} has 2`);
  const yf = file('npy', npyBytes('<f4', [3], new Float32Array(3)));
  await rejectsWith(loadNpy(x, yf, { inputName: 'x' }), `${yf}: dtype float32; class labels must be integers (int64 or int32), or set labelKind 'regression'`);
  const y3 = file('npy', npyBytes('<i8', [3], BigInt64Array.from([0n, 7n, 1n])));
  await rejectsWith(loadNpy(x, y3, { inputName: 'x', numClasses: 5 }), `${y3} example 1: label 7 is outside the 5 classes (ids 0..4)`);
  const yneg = file('npy', npyBytes('<i8', [3], BigInt64Array.from([0n, 1n, -1n])));
  await rejectsWith(loadNpy(x, yneg, { inputName: 'x' }), `${yneg} example 2: label -1 is not a class id (a non-negative integer) or a class name`);
  const y2d = file('npy', npyBytes('<i8', [3, 2], new BigInt64Array(6)));
  await rejectsWith(loadNpy(x, y2d, { inputName: 'x' }), /class labels must have shape \(3,\), got \(3, 2\)/);
  await rejectsWith(loadDatasetFiles({ path: x, inputName: 'x' }), /needs labelsPath/);
});

test('the format comes from the spec or the extension', async () => {
  assert.equal(detectFormat('a/b.JSONL'), 'jsonl');
  assert.equal(detectFormat('a.ndjson'), 'jsonl');
  assert.equal(detectFormat('x.csv'), 'csv');
  assert.equal(detectFormat('x.npy'), 'npy');
  assert.throws(() => detectFormat('data/train.txt'), /data\/train\.txt: cannot tell the dataset format/);
  const path = file('txt', jsonl([{ x: [1], label: 0 }]));
  const ds = await loadDatasetFiles({ path, format: 'jsonl', inputName: 'x', featuresField: 'x' });
  assert.equal(ds.length, 1);
});
