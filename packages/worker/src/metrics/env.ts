/**
 * How a worker learns its metrics settings: FT_METRICS_PORT (serve /metrics there; unset = do not
 * serve), FT_BIND_HOST (the address, default 0.0.0.0, shared with the collective server) and
 * FT_JOB_ID (namespace/name, the `job` label; the controller and the local runner set it).
 */
import type { FineTuneJob } from '@finetune/api';
import { UserError } from '../errors.js';

/** The port the controller gives worker pods (containerPort `metrics`). */
export const DEFAULT_CLUSTER_METRICS_PORT = 9464;

export interface MetricsEnv {
  /** Undefined: do not serve (the summary file is still written). */
  port?: number;
  host: string;
  job: string;
}

export function parseMetricsPort(value: string, what: string): number {
  const port = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UserError(`${what}: expected a port number 1-65535, got '${value}'`);
  }
  return port;
}

/** The `job` label: FT_JOB_ID when set, else the job's own namespace/name ('local' without a namespace). */
export function metricsJobLabel(job: FineTuneJob, env: NodeJS.ProcessEnv): string {
  const id = env.FT_JOB_ID?.trim();
  return id ? id : `${job.metadata.namespace ?? 'local'}/${job.metadata.name}`;
}

export function metricsEnv(job: FineTuneJob, env: NodeJS.ProcessEnv): MetricsEnv {
  const raw = env.FT_METRICS_PORT?.trim();
  const host = env.FT_BIND_HOST?.trim() || '0.0.0.0';
  return { ...(raw ? { port: parseMetricsPort(raw, 'FT_METRICS_PORT') } : {}), host, job: metricsJobLabel(job, env) };
}
