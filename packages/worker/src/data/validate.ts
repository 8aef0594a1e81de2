/**
 * Checks that the labels fit the model before training starts: a class id outside the model's
 * outputs would otherwise surface as a NaN loss or an onnxruntime index error mid-epoch.
 */
import { UserError } from '../errors.js';
import { type Dataset, exampleSize } from './dataset.js';

/** Every label must be an integer class id in [0, numClasses); names the first example that is not. */
export function checkLabels(ds: Dataset, numClasses: number): void {
  if (!Number.isInteger(numClasses) || numClasses < 1) throw new UserError(`numClasses must be a positive integer, got ${numClasses}`);
  const { type, shape, data } = ds.labels;
  if (type !== 'int64' || exampleSize(shape) !== 1) {
    throw new UserError(`the labels are ${type} [${shape.join(', ')}] per example; a classification loss needs one int64 class id per example`);
  }
  if (ds.classes && ds.classes.length > numClasses) {
    throw new UserError(`the dataset has ${ds.classes.length} classes but the model has ${numClasses} outputs`);
  }
  const ids = data as BigInt64Array;
  const limit = BigInt(numClasses);
  for (let i = 0; i < ds.length; i++) {
    const v = ids[i]!;
    if (v < 0n || v >= limit) {
      throw new UserError(`example ${i}: label ${v} is outside the model's ${numClasses} classes (ids 0..${numClasses - 1})`);
    }
  }
}
