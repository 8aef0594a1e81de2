/**
 * @finetune/proto: the workers' wire protocol. `proto/` holds the .proto files; `gen/` is
 * generated from them by `npm run generate` (ts-proto, run by `npm run build`).
 */
export * from './gen/finetune/collective/v1/collective.js';
export * from './frame.js';
export * from './service.js';
