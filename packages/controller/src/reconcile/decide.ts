/**
 * The reconciler's brain: from a job and what exists for it now, the status it should have, the
 * changes to make and the events to record. Pure (the clock and rank 0's progress are inputs), so
 * every rule of the job's life is unit-tested without an API server.
 *
 * Life of a job: Pending (pods created, waiting to run) → Running (every worker running) →
 * Succeeded (every worker exited 0). A worker failing with a retryable exit code restarts the
 * whole gang (Restarting: delete every pod, wait until they are gone, create them again; workers
 * resume from the latest checkpoint) until runPolicy.backoffLimit restarts were spent; a
 * non-retryable exit (bad input), a pod Pending past runPolicy.schedulingTimeoutSeconds, or
 * activeDeadlineSeconds fail it. `spec.suspend` deletes the pods and keeps the status.
 */
import { isRetryableExit, WORKER_EXIT, type Condition, type FineTuneJobStatus, type JobPhase, type TrainingProgress } from '@finetune/api';
import { objectNames, type ClusterFineTuneJob } from '../plan/objects.js';
import { CONDITION, conditionIs, setCondition, type ConditionType } from './conditions.js';
import type { PodView } from './pod-view.js';

export interface JobEvent {
  type: 'Normal' | 'Warning';
  reason: string;
  message: string;
}

export type Action =
  /** Make sure the Service, ConfigMap and token Secret exist and match the plan. */
  | { kind: 'ensureSupportObjects' }
  | { kind: 'createPods'; ranks: number[] }
  | { kind: 'deletePods'; pods: { name: string; uid: string }[] }
  | { kind: 'deleteJob' };

export interface Observed {
  job: ClusterFineTuneJob & { status?: FineTuneJobStatus; metadata: { generation?: number; creationTimestamp?: string } };
  /** The job's worker pods (owned by it). */
  pods: PodView[];
  /** Hash of the pod spec the plan gives now. */
  specHash: string;
  /** Rank 0's last report, when it answered. */
  progress?: TrainingProgress;
  now: Date;
}

export interface Decision {
  status: FineTuneJobStatus;
  actions: Action[];
  events: JobEvent[];
  /** Look again after this long (progress polling, timeouts, TTL). */
  requeueAfterMs?: number;
  /** The job just reached Running: seconds since it was created (a metric). */
  becameRunningAfterS?: number;
  /** The gang is being restarted after a failure (a metric). */
  restarted?: boolean;
}

/** How often rank 0 is asked for progress while the job runs. */
export const PROGRESS_POLL_MS = 2_000;

export function decide(observed: Observed): Decision {
  return new Decider(observed).run();
}

class Decider {
  private readonly status: FineTuneJobStatus;
  private readonly actions: Action[] = [];
  private readonly events: JobEvent[] = [];
  private requeueAfterMs: number | undefined;
  private becameRunningAfterS: number | undefined;
  private restarted = false;
  private readonly generation: number | undefined;
  private readonly replicas: number;
  private readonly live: PodView[];

  constructor(private readonly o: Observed) {
    this.status = structuredClone(o.job.status ?? {});
    this.generation = o.job.metadata.generation;
    this.replicas = o.job.spec.workers.replicas;
    this.live = o.pods.filter((p) => !p.terminating);
  }

  run(): Decision {
    const { status } = this;
    if (this.generation !== undefined) status.observedGeneration = this.generation;
    status.replicas = this.replicas;
    if (!status.phase) this.enterPhase('Pending');
    if (!conditionIs(status.conditions, CONDITION.created)) {
      this.setCondition(CONDITION.created, true, 'WorkersPlanned', `${this.replicas} worker pod(s), a headless Service, the job spec and its token`);
      this.emit('Normal', 'Created', `creating ${this.replicas} worker pod(s)`);
    }

    if (status.phase === 'Succeeded' || status.phase === 'Failed') this.finished();
    else if (this.o.job.spec.suspend) this.suspend();
    else this.active();

    this.countWorkers();
    return {
      status,
      actions: this.actions,
      events: this.events,
      ...(this.requeueAfterMs !== undefined ? { requeueAfterMs: Math.max(0, Math.ceil(this.requeueAfterMs)) } : {}),
      ...(this.becameRunningAfterS !== undefined ? { becameRunningAfterS: this.becameRunningAfterS } : {}),
      ...(this.restarted ? { restarted: true } : {}),
    };
  }

  // ---- the phases ----

  private finished(): void {
    const policy = this.o.job.spec.runPolicy.cleanPodPolicy;
    const doomed = this.live.filter((p) => policy === 'All' || (policy === 'Running' && (p.phase === 'Running' || p.phase === 'Pending')));
    this.deletePods(doomed);
    const ttl = this.o.job.spec.runPolicy.ttlSecondsAfterFinished;
    if (ttl === undefined) return;
    // A finished status without completionTime (edited by hand) starts its TTL now, once, not on every pass.
    this.status.completionTime ??= this.o.now.toISOString();
    const left = Date.parse(this.status.completionTime) + ttl * 1000 - this.o.now.getTime();
    if (left <= 0) this.actions.push({ kind: 'deleteJob' });
    else this.requeue(left);
  }

  private suspend(): void {
    this.deletePods(this.live);
    if (this.status.phase === 'Suspended') return;
    this.enterPhase('Suspended');
    delete this.status.startTime;
    this.setCondition(CONDITION.suspended, true, 'JobSuspended', 'spec.suspend is true: worker pods deleted');
    this.setCondition(CONDITION.running, false, 'JobSuspended', 'the job is suspended');
    // Suspending ends a gang restart under way: on resume the gang starts from Pending.
    if (conditionIs(this.status.conditions, CONDITION.restarting)) this.setCondition(CONDITION.restarting, false, 'JobSuspended', 'the job was suspended while its workers were restarting');
    this.emit('Normal', 'Suspended', `job suspended: deleting ${this.live.length} worker pod(s)`);
  }

  private active(): void {
    const { status } = this;
    if (status.phase === 'Suspended') {
      this.enterPhase('Pending');
      this.setCondition(CONDITION.suspended, false, 'JobResumed', 'spec.suspend is false: workers resume from the latest checkpoint');
      this.emit('Normal', 'Resumed', 'job resumed: recreating the workers, which continue from the latest checkpoint');
    }
    this.actions.push({ kind: 'ensureSupportObjects' });

    if (status.phase === 'Restarting') {
      if (this.o.pods.length > 0) {
        this.deletePods(this.live);
        return; // wait until the old gang is gone: the new pods reuse its names
      }
      this.enterPhase('Pending');
      const cause = status.conditions?.find((c) => c.type === CONDITION.restarting)?.message;
      this.setCondition(CONDITION.restarting, false, 'WorkersRecreated', `workers recreated${cause ? ` after: ${cause}` : ''}`);
      this.emit('Normal', 'WorkersRecreated', `restart ${status.restarts ?? 0}: the old workers are gone, creating ${this.replicas} new ones`);
    }

    if (this.finishedDespiteLateFailure()) return;
    if (this.disruptedWorker()) return;
    if (this.failedWorker()) return;
    if (this.specChanged()) return;
    if (this.deadlineExceeded()) return;
    if (this.stuckPending()) return;

    const missing = this.missingRanks();
    if (missing.length > 0) {
      this.actions.push({ kind: 'createPods', ranks: missing });
      if (!status.startTime) status.startTime = this.o.now.toISOString();
    }

    const succeeded = this.live.filter((p) => p.phase === 'Succeeded').length;
    if (succeeded === this.replicas) return this.succeed();

    const running = this.live.filter((p) => p.phase === 'Running' || p.phase === 'Succeeded').length;
    if (running === this.replicas && missing.length === 0) {
      if (status.phase !== 'Running') this.enterPhase('Running');
      if (!conditionIs(status.conditions, CONDITION.running)) {
        const firstTime = !status.conditions?.some((c) => c.type === CONDITION.running);
        this.setCondition(CONDITION.running, true, 'AllWorkersRunning', `all ${this.replicas} workers are running`);
        this.emit('Normal', 'Running', `all ${this.replicas} workers are running`);
        const created = Date.parse(this.o.job.metadata.creationTimestamp ?? '');
        if (Number.isFinite(created) && firstTime) this.becameRunningAfterS = (this.o.now.getTime() - created) / 1000;
      }
      this.requeue(PROGRESS_POLL_MS);
    }
    this.applyProgress();
    this.requeueForTimeouts();
  }

  // ---- the rules ----

  /** A failed worker fails the job (bad input, restarts spent) or restarts the whole gang. */
  private failedWorker(): boolean {
    // The root cause first: a worker that lost its peer (exit 3) only reports someone else's failure.
    const failed = this.live
      .filter((p) => p.phase === 'Failed')
      .sort((a, b) => Number(a.exitCode === WORKER_EXIT.peerFailure) - Number(b.exitCode === WORKER_EXIT.peerFailure) || a.rank - b.rank);
    if (failed.length === 0) return false;
    const why = (p: PodView) => `worker ${p.rank} (${p.name}) exited with code ${p.exitCode ?? 'unknown'}${p.terminationMessage ? ` (${p.terminationMessage})` : ''}`;
    const permanent = failed.find((p) => p.exitCode !== undefined && !isRetryableExit(p.exitCode));
    if (permanent) {
      this.fail('WorkerFailed', `${why(permanent)}, which restarting cannot fix (bad spec, model or data); see its logs`);
      return true;
    }
    const restarts = this.status.restarts ?? 0;
    const limit = this.o.job.spec.runPolicy.backoffLimit;
    if (restarts >= limit) {
      this.fail('BackoffLimitExceeded', `${why(failed[0]!)}; the job was already restarted ${restarts} time(s) (runPolicy.backoffLimit ${limit})`);
      return true;
    }
    this.restartGang('WorkerFailed', `${why(failed[0]!)}; restarting all ${this.replicas} workers from the latest checkpoint (restart ${restarts + 1} of ${limit})`, true);
    return true;
  }

  /**
   * A worker pod taken away while the gang runs (a node drain, a preemption, `kubectl delete pod`):
   * the gang restarts from the latest checkpoint, and the restart does not count against
   * runPolicy.backoffLimit, since nothing is wrong with the job. It comes before failedWorker: the
   * peers of a deleted worker exit 3, which would otherwise count.
   */
  private disruptedWorker(): boolean {
    if (this.status.phase !== 'Running') return false;
    // A worker that had already failed when it was deleted is no disruption: failedWorker judges it.
    // The pod Kubernetes marked first: when a status write lost a race, this controller's own
    // deletions of the gang's other pods are visible too.
    const taken = this.o.pods
      .filter((p) => p.disruption !== undefined || (p.terminating && (p.phase === 'Running' || p.phase === 'Pending')))
      .sort((a, b) => Number(b.disruption !== undefined) - Number(a.disruption !== undefined) || a.rank - b.rank)[0];
    const missing = this.missingRanks()[0];
    if (!taken && missing === undefined) return false;
    const what = taken
      ? `worker ${taken.rank} (${taken.name}) was ${taken.disruption ? `disrupted (${taken.disruption})` : 'deleted'}`
      : `worker ${missing} (${objectNames(this.o.job.metadata.name, this.replicas).pods[missing!]}) is gone`;
    this.restartGang('WorkerDisrupted', `${what}; restarting all ${this.replicas} workers from the latest checkpoint (not counted against runPolicy.backoffLimit)`, false);
    return true;
  }

  /**
   * Rank 0 exits 0 only after writing the model: a peer that died after the last all-reduce
   * (while exiting) must not restart a finished job.
   */
  private finishedDespiteLateFailure(): boolean {
    const rank0 = this.live.find((p) => p.rank === 0);
    if (rank0?.phase !== 'Succeeded' || this.live.length < this.replicas) return false;
    const late = this.live.filter((p) => p.phase === 'Failed');
    if (late.length === 0 || this.live.some((p) => p.phase === 'Running' || p.phase === 'Pending')) return false;
    const names = late.map((p) => `worker ${p.rank} (exit ${p.exitCode ?? 'unknown'})`).join(', ');
    this.emit('Warning', 'WorkerFailedAfterTraining', `${names} failed after rank 0 finished training and wrote the model; the job succeeded`);
    this.succeed();
    return true;
  }

  /** Pods planned from an older spec (e.g. workers.image changed) are replaced, gang-wide. */
  private specChanged(): boolean {
    const stale = this.live.filter((p) => p.specHash !== undefined && p.specHash !== this.o.specHash && p.phase !== 'Succeeded');
    if (stale.length === 0) return false;
    this.restartGang('SpecChanged', `the worker spec changed: restarting all ${this.replicas} workers from the latest checkpoint`, false);
    return true;
  }

  private deadlineExceeded(): boolean {
    const deadline = this.o.job.spec.runPolicy.activeDeadlineSeconds;
    if (deadline === undefined || !this.status.startTime) return false;
    // Work that finished wins over a pass that comes late (e.g. a busy queue) to see it.
    if (this.live.filter((p) => p.phase === 'Succeeded').length === this.replicas) return false;
    const ranS = (this.o.now.getTime() - Date.parse(this.status.startTime)) / 1000;
    if (ranS < deadline) return false;
    this.fail('DeadlineExceeded', `the job ran for ${Math.round(ranS)} s, longer than runPolicy.activeDeadlineSeconds (${deadline})`);
    return true;
  }

  private stuckPending(): boolean {
    const timeoutS = this.o.job.spec.runPolicy.schedulingTimeoutSeconds;
    const stuck = this.live
      .filter((p) => p.phase === 'Pending' && (this.o.now.getTime() - p.createdAt.getTime()) / 1000 >= timeoutS)
      .sort((a, b) => a.rank - b.rank)[0];
    if (!stuck) return false;
    const reason = stuck.pendingReason ?? 'not started';
    const kind = /^Unschedulable/.test(reason) ? 'Unschedulable' : 'WorkerNotStarted';
    this.fail(kind, `worker ${stuck.rank} (${stuck.name}) has been Pending for more than ${timeoutS} s (runPolicy.schedulingTimeoutSeconds): ${reason}`);
    return true;
  }

  private missingRanks(): number[] {
    const present = new Set(this.o.pods.map((p) => p.rank));
    return Array.from({ length: this.replicas }, (_, r) => r).filter((r) => !present.has(r));
  }

  // ---- transitions ----

  private restartGang(reason: string, message: string, counts: boolean): void {
    if (counts) {
      this.status.restarts = (this.status.restarts ?? 0) + 1;
      this.restarted = true;
    }
    this.enterPhase('Restarting');
    this.setCondition(CONDITION.restarting, true, reason, message);
    this.setCondition(CONDITION.running, false, reason, message);
    this.emit('Warning', 'Restarting', message);
    this.deletePods(this.live);
  }

  private succeed(): void {
    this.enterPhase('Succeeded');
    this.status.completionTime = this.o.now.toISOString();
    this.applyProgress();
    if (this.status.training?.totalSteps) this.status.progress = '100%';
    const message = `all ${this.replicas} workers finished; the fine-tuned model is in ${this.o.job.spec.output.path ?? `out/${this.o.job.metadata.name}`}`;
    this.setCondition(CONDITION.succeeded, true, 'WorkersSucceeded', message);
    this.setCondition(CONDITION.running, false, 'JobSucceeded', 'training finished');
    this.emit('Normal', 'Succeeded', message);
    this.finished();
  }

  private fail(reason: string, message: string): void {
    this.enterPhase('Failed');
    this.status.completionTime = this.o.now.toISOString();
    this.setCondition(CONDITION.failed, true, reason, message);
    this.setCondition(CONDITION.running, false, reason, message);
    if (conditionIs(this.status.conditions, CONDITION.restarting)) this.setCondition(CONDITION.restarting, false, reason, message);
    this.emit('Warning', reason, message);
    this.finished();
  }

  // ---- helpers ----

  private enterPhase(phase: JobPhase): void {
    this.status.phase = phase;
  }

  private setCondition(type: ConditionType, value: boolean, reason: string, message: string): void {
    const conditions: Condition[] = this.status.conditions ?? [];
    this.status.conditions = setCondition(conditions, type, value, reason, message, this.o.now, this.generation);
  }

  private emit(type: JobEvent['type'], reason: string, message: string): void {
    this.events.push({ type, reason, message });
  }

  private deletePods(pods: PodView[]): void {
    const doomed = pods.filter((p) => !p.terminating).map((p) => ({ name: p.name, uid: p.uid }));
    if (doomed.length > 0) this.actions.push({ kind: 'deletePods', pods: doomed });
  }

  private requeue(ms: number): void {
    this.requeueAfterMs = this.requeueAfterMs === undefined ? ms : Math.min(this.requeueAfterMs, ms);
  }

  /** Wake up when a pending pod or the active deadline would time out. */
  private requeueForTimeouts(): void {
    const now = this.o.now.getTime();
    const timeoutMs = this.o.job.spec.runPolicy.schedulingTimeoutSeconds * 1000;
    for (const p of this.live) if (p.phase === 'Pending') this.requeue(p.createdAt.getTime() + timeoutMs - now + 50);
    const deadline = this.o.job.spec.runPolicy.activeDeadlineSeconds;
    if (deadline !== undefined && this.status.startTime) this.requeue(Date.parse(this.status.startTime) + deadline * 1000 - now + 50);
  }

  private applyProgress(): void {
    const progress = this.o.progress;
    if (!progress) return;
    this.status.training = progress;
    if (progress.totalSteps) this.status.progress = `${Math.min(100, Math.floor((100 * progress.step) / progress.totalSteps))}%`;
  }

  private countWorkers(): void {
    const ready = this.live.filter((p) => p.ready).length;
    this.status.readyReplicas = ready;
    this.status.workersReady = `${ready}/${this.replicas}`;
  }
}
