import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkLabels } from './validate.js';
import type { Dataset } from './dataset.js';
import { UserError } from '../errors.js';

function withLabels(labels: bigint[], classes?: string[]): Dataset {
  const ds: Dataset = {
    length: labels.length,
    features: { x: { type: 'float32', shape: [], data: new Float32Array(labels.length) } },
    labels: { type: 'int64', shape: [], data: BigInt64Array.from(labels) },
  };
  if (classes) ds.classes = classes;
  return ds;
}

const userError = (message: string) => (e: Error) => e instanceof UserError && e.message === message;

test('labels inside the model classes pass', () => {
  checkLabels(withLabels([0n, 4n, 2n]), 5);
  checkLabels(withLabels([0n, 1n], ['a', 'b']), 10); // fine-tuning a wider head on fewer classes
});

test('the first label outside [0, numClasses) is named by its example', () => {
  assert.throws(() => checkLabels(withLabels([0n, 1n, 5n, 9n]), 5), userError("example 2: label 5 is outside the model's 5 classes (ids 0..4)"));
  assert.throws(() => checkLabels(withLabels([-1n]), 3), userError("example 0: label -1 is outside the model's 3 classes (ids 0..2)"));
  // More named classes than outputs is caught even when the labels present would fit.
  assert.throws(() => checkLabels(withLabels([0n, 1n], ['a', 'b', 'c']), 2), userError('the dataset has 3 classes but the model has 2 outputs'));
});

test('regression targets or a bad class count are UserErrors', () => {
  const regression: Dataset = { ...withLabels([0n]), labels: { type: 'float32', shape: [], data: Float32Array.from([1]) } };
  assert.throws(() => checkLabels(regression, 2), /a classification loss needs one int64 class id per example/);
  const multi: Dataset = { ...withLabels([0n]), labels: { type: 'int64', shape: [2], data: BigInt64Array.from([0n, 1n]) } };
  assert.throws(() => checkLabels(multi, 2), UserError);
  assert.throws(() => checkLabels(withLabels([0n]), 0), /numClasses must be a positive integer/);
});
