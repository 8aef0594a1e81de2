export * from './link.js';
export * from './wire.js';
export * from './ring.js';
export * from './memory-link.js';
export { allocateCollectiveBuffer, freeCollectiveBuffer } from './collective-memory.js';
export {
  connectRing,
  startCollectiveServer,
  ringConfigFromEnv,
  loadTls,
  type CollectiveServer,
  type GrpcRingLink,
  type RingEnvConfig,
  type WorkerStatus,
} from './transport/index.js';
export { dataParallelOver, joinRing, statusSink, type Ring } from './data-parallel.js';
export { benchmarkAllReduce, busBandwidthFactor, type AllReduceBenchRow } from './bench.js';
