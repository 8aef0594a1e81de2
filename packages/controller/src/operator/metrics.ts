/**
 * The controller's Prometheus metrics (names documented in docs/metrics.md; the operator
 * dashboard queries them). One registry per controller so tests can run several.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { JOB_PHASES, type JobPhase } from '@finetune/api';

export type ReconcileResult = 'success' | 'error' | 'requeue';
const RESULTS: ReconcileResult[] = ['success', 'error', 'requeue'];
/** The requests the controller makes (verb → resources), for zero-initialised error series. */
const API_CALLS: [string, string[]][] = [
  ['list', ['finetunejobs', 'pods', 'services', 'configmaps', 'secrets']],
  ['get', ['leases']],
  ['create', ['pods', 'services', 'configmaps', 'secrets', 'events', 'leases']],
  ['update', ['leases']],
  ['update/status', ['finetunejobs']],
  ['patch', ['configmaps']],
  ['delete', ['pods', 'finetunejobs']],
];

export class ControllerMetrics {
  readonly registry = new Registry();
  readonly reconcileDuration = new Histogram({
    name: 'finetune_controller_reconcile_duration_seconds',
    help: 'Time to reconcile one FineTuneJob, by result.',
    labelNames: ['result'] as const,
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly reconciles = new Counter({
    name: 'finetune_controller_reconcile_total',
    help: 'FineTuneJob reconciles, by result (success, error, requeue).',
    labelNames: ['result'] as const,
    registers: [this.registry],
  });
  readonly jobs = new Gauge({
    name: 'finetune_controller_jobs',
    help: 'FineTuneJobs the controller sees, by phase.',
    labelNames: ['phase'] as const,
    registers: [this.registry],
  });
  readonly restarts = new Counter({
    name: 'finetune_controller_job_restarts_total',
    help: 'Gang restarts after a worker failed, by namespace.',
    labelNames: ['namespace'] as const,
    registers: [this.registry],
  });
  readonly timeToRunning = new Histogram({
    name: 'finetune_controller_time_to_running_seconds',
    help: 'Time from a FineTuneJob\'s creation until all its workers ran.',
    buckets: [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800],
    registers: [this.registry],
  });
  readonly apiErrors = new Counter({
    name: 'finetune_controller_api_errors_total',
    help: 'Failed Kubernetes API requests, by verb and resource.',
    labelNames: ['verb', 'resource'] as const,
    registers: [this.registry],
  });
  readonly isLeader = new Gauge({
    name: 'finetune_controller_is_leader',
    help: '1 while this replica holds the leader lease (or runs without leader election).',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'finetune_controller_' });
    for (const phase of JOB_PHASES) this.jobs.set({ phase }, 0);
    this.isLeader.set(0);
    // Every series exists from the start, so rates and dashboards read 0, not "no data".
    for (const result of RESULTS) {
      this.reconciles.inc({ result }, 0);
      this.reconcileDuration.zero({ result });
    }
    for (const [verb, resources] of API_CALLS) for (const resource of resources) this.apiErrors.inc({ verb, resource }, 0);
  }

  /** Creates the namespace's restart series at 0 the first time a job there is seen. */
  seeNamespace(namespace: string): void {
    this.restarts.inc({ namespace }, 0);
  }

  /** Sets the per-phase job counts (zero for phases with no job, so every series exists). */
  setJobPhases(counts: Map<JobPhase, number>): void {
    for (const phase of JOB_PHASES) this.jobs.set({ phase }, counts.get(phase) ?? 0);
  }
}
