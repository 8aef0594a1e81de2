export * from './schema.js';
export { parseFineTuneJob, validateFineTuneJob, SpecError } from './validate.js';
export { renderFieldTable } from './docs.js';
export { buildCrd, renderCrdYaml, toStructural } from './crd.js';
export { WORKER_EXIT, isRetryableExit } from './exit-codes.js';
