/**
 * The gRPC transport of the collective: a RingLink over CollectiveService.Subscribe streams
 * (bulk bytes flow server → client), rendezvous by Ping, job-token auth, optional TLS, and the
 * ring configuration from a worker's environment.
 */
export {
  connectRing,
  startCollectiveServer,
  DEFAULT_CHUNK_BYTES,
  FLOW_CONTROL_WINDOW_BYTES,
  MAX_CHUNK_BYTES,
  type CollectiveServer,
  type ConnectRingOptions,
  type GrpcRingLink,
  type Log,
  type StartCollectiveServerOptions,
  type WorkerStatus,
} from './grpc.js';
export {
  DEFAULT_COLLECTIVE_TIMEOUT_MS,
  DEFAULT_CONNECT_DEADLINE_MS,
  MIN_TOKEN_LENGTH,
  loadTls,
  parseHostPort,
  ringConfigFromEnv,
  type RingEnvConfig,
  type TlsFiles,
  type TlsMaterial,
} from './config.js';
export { bearerMetadata, checkBearer, tokenDigest } from './auth.js';
export { Phase } from '@finetune/proto';
