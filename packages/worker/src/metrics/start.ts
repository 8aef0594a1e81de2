/** One call for the CLI: this process's metrics, served on /metrics when a port is configured. */
import type { FineTuneJob } from '@finetune/api';
import { metricsEnv } from './env.js';
import { serveMetrics, type MetricsServer } from './server.js';
import { WorkerMetrics } from './worker-metrics.js';

export interface StartedMetrics {
  metrics: WorkerMetrics;
  /** Present when FT_METRICS_PORT (or the port override) asked for an endpoint. */
  server?: MetricsServer;
  /** Stops serving; call when the worker is done. */
  close(): Promise<void>;
}

/** `port` overrides FT_METRICS_PORT (`ftjob run --metrics-port` in a single process). */
export async function startWorkerMetrics(job: FineTuneJob, rank: number, env: NodeJS.ProcessEnv, port?: number): Promise<StartedMetrics> {
  const settings = metricsEnv(job, env);
  const metrics = new WorkerMetrics({ job: settings.job, rank });
  const servePort = port ?? settings.port;
  const setting = port !== undefined ? '--metrics-port' : 'FT_METRICS_PORT';
  const server = servePort !== undefined ? await serveMetrics(metrics.registry, { port: servePort, host: settings.host, setting }) : undefined;
  return { metrics, ...(server ? { server } : {}), close: async () => server?.close() };
}
