export type { TrainingObserver, StepReport, StepPhaseSeconds } from './observer.js';
export { WorkerMetrics, METRIC_PREFIX, STEP_PHASES, type WorkerMetricsOptions } from './worker-metrics.js';
export { serveMetrics, METRICS_PATH, type MetricsServer } from './server.js';
export { metricsEnv, metricsJobLabel, parseMetricsPort, DEFAULT_CLUSTER_METRICS_PORT, type MetricsEnv } from './env.js';
export { startWorkerMetrics, type StartedMetrics } from './start.js';
