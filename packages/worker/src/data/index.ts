/** The worker's data layer: datasets in memory, sampling, tokenization, loaders. */
export * from './dataset.js';
export * from './sampler.js';
export * from './tokenizer.js';
export * from './builtin.js';
export * from './files.js';
export * from './validate.js';
export { mulberry32, permutation, shuffleInPlace } from './random.js';
export { parseCsv, type CsvRecord } from './csv.js';
export { parseNpy, readNpy, type NpyArray, type NpyData, type NpyDtype } from './npy.js';
export { resolveClassLabels, type ClassLabelOptions, type RawLabel, type ResolvedLabels } from './labels.js';
