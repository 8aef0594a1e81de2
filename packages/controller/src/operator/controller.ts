/**
 * The FineTuneJob controller: caches (self-healing list+watch) of jobs and of the objects it made,
 * a work queue keyed by job, and a reconcile that turns `decide()`'s verdict into API calls.
 *
 * - Level-triggered: every event only queues its job's key; a reconcile reads the whole current
 *   state from the caches, so a missed or repeated event changes nothing.
 * - No duplicates: worker pods have fixed names per rank, so a create racing a stale cache (or a
 *   restarted controller) gets AlreadyExists, which is success.
 * - Status writes carry the resourceVersion read; a 409 Conflict re-queues the job.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { KubeConfig } from '@kubernetes/client-node';
import { API_GROUP, API_VERSION, KIND, JOB_PHASES, type FineTuneJobStatus, type JobPhase, type TrainingProgress } from '@finetune/api';
import { Reflector, objectKey } from '../kube/reflector.js';
import { ApiError, isAlreadyExists, isConflict, isNotFound, KubeRest, RESOURCES, type KubeObject, type ResourceType } from '../kube/rest.js';
import { LeaderElector } from '../kube/leader.js';
import { WorkQueue } from '../runtime/work-queue.js';
import {
  desiredObjects,
  objectNames,
  LABELS,
  MANAGER_NAME,
  TOKEN_KEY,
  DEFAULT_WORKER_METRICS_PORT,
  type ClusterFineTuneJob,
  type ObjectPlanOptions,
  type Toleration,
} from '../plan/objects.js';
import { decide, type Action, type JobEvent } from '../reconcile/decide.js';
import { CONDITION } from '../reconcile/conditions.js';
import { podView, SPEC_HASH_ANNOTATION, type KubePod, type PodView } from '../reconcile/pod-view.js';
import { ControllerMetrics } from './metrics.js';
import { grpcProgressReader, type ProgressReader } from './progress.js';

export const JOBS: ResourceType = { group: API_GROUP, version: API_VERSION, plural: 'finetunejobs', kind: KIND };
const FIELD_MANAGER = MANAGER_NAME;
const MANAGED_SELECTOR = `${LABELS.managedBy}=${MANAGER_NAME}`;

export interface ControllerOptions {
  /** Watch one namespace (default: all). */
  namespace?: string;
  /** Worker defaults; a job's spec.workers fields win. */
  workerImage: string;
  workerImagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  workerNodeSelector?: Record<string, string>;
  workerTolerations?: Toleration[];
  workerRuntimeClassName?: string;
  /** Worker metrics port (default 9464). */
  workerMetricsPort?: number;
  /** Concurrent reconciles (different jobs; one job is never reconciled twice at once). */
  concurrency?: number;
  leaderElection?: { namespace: string; name?: string; identity?: string; leaseDurationS?: number; renewDeadlineS?: number; retryPeriodS?: number };
  /** Watch stall timeout (ms) for the caches. */
  watchStallMs?: number;
  progressReader?: ProgressReader;
  metrics?: ControllerMetrics;
  log?: (line: string) => void;
  /** Called when leadership is lost: the process should exit (default: throws in the event loop). */
  onLeadershipLost?: () => void;
}

type Job = ClusterFineTuneJob & KubeObject & { status?: FineTuneJobStatus; metadata: KubeObject['metadata'] & { uid: string; namespace: string } };

export class FineTuneJobController {
  readonly metrics: ControllerMetrics;
  readonly rest: KubeRest;
  readonly jobs: Reflector<Job>;
  readonly pods: Reflector<KubePod>;
  readonly services: Reflector<KubeObject>;
  readonly configMaps: Reflector<KubeObject & { data?: Record<string, string> }>;
  readonly secrets: Reflector<KubeObject & { data?: Record<string, string> }>;
  private queue = new WorkQueue();
  private readonly elector: LeaderElector | undefined;
  private readonly readProgress: ProgressReader;
  private readonly log: (line: string) => void;
  private running: Promise<void> | undefined;
  private synced = false;
  private stopped = false;

  constructor(
    config: KubeConfig,
    private readonly options: ControllerOptions,
  ) {
    this.metrics = options.metrics ?? new ControllerMetrics();
    this.log = options.log ?? ((line) => process.stderr.write(`${line}\n`));
    this.rest = new KubeRest(config, (verb, resource, err) => {
      // Expected answers (already exists, gone, conflicts) are not errors of the API.
      if (err.code === 404 || err.code === 409) return;
      this.metrics.apiErrors.inc({ verb, resource });
    });
    this.readProgress = options.progressReader ?? grpcProgressReader();
    const ns = options.namespace;
    const stallMs = options.watchStallMs;
    const common = { ...(ns ? { namespace: ns } : {}), ...(stallMs ? { stallMs } : {}), log: this.log };
    this.jobs = new Reflector<Job>(this.rest, { ...common, type: JOBS, onChange: (_t, job) => this.queue.add(objectKey(job)) });
    const onChild = (_t: string, o: KubeObject) => this.enqueueOwner(o);
    this.pods = new Reflector(this.rest, { ...common, type: RESOURCES.pods, labelSelector: MANAGED_SELECTOR, onChange: onChild });
    this.services = new Reflector(this.rest, { ...common, type: RESOURCES.services, labelSelector: MANAGED_SELECTOR, onChange: onChild });
    this.configMaps = new Reflector(this.rest, { ...common, type: RESOURCES.configMaps, labelSelector: MANAGED_SELECTOR, onChange: onChild });
    this.secrets = new Reflector(this.rest, { ...common, type: RESOURCES.secrets, labelSelector: MANAGED_SELECTOR, onChange: onChild });
    if (options.leaderElection) {
      const le = options.leaderElection;
      this.elector = new LeaderElector(this.rest, {
        namespace: le.namespace,
        name: le.name ?? 'finetune-operator-leader',
        ...(le.identity ? { identity: le.identity } : {}),
        ...(le.leaseDurationS ? { leaseDurationS: le.leaseDurationS } : {}),
        ...(le.renewDeadlineS ? { renewDeadlineS: le.renewDeadlineS } : {}),
        ...(le.retryPeriodS ? { retryPeriodS: le.retryPeriodS } : {}),
        log: this.log,
        onStarted: () => this.lead(),
        onLost: () => {
          this.metrics.isLeader.set(0);
          this.queue.stop();
          (options.onLeadershipLost ?? (() => process.exit(1)))();
        },
      });
    }
  }

  /** True once the caches hold their first full lists. */
  get ready(): boolean {
    return this.synced;
  }

  get isLeader(): boolean {
    return this.elector ? this.elector.isLeader : this.running !== undefined;
  }

  /** Fills the caches, then reconciles (after winning the lease, with leader election). */
  async start(): Promise<void> {
    await Promise.all([this.jobs, this.pods, this.services, this.configMaps, this.secrets].map((r) => r.start()));
    this.synced = true;
    this.log(`caches synced: ${this.jobs.store.size} FineTuneJob(s), ${this.pods.store.size} worker pod(s)`);
    if (this.elector) this.elector.start();
    else this.lead();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.queue.stop();
    for (const r of [this.jobs, this.pods, this.services, this.configMaps, this.secrets]) r.stop();
    await this.elector?.stop();
    await this.running;
    this.metrics.isLeader.set(0);
  }

  private lead(): void {
    if (this.stopped) return;
    // A queue stopped when leadership was lost cannot run again: start from a fresh one.
    this.queue = new WorkQueue();
    this.metrics.isLeader.set(1);
    for (const job of this.jobs.list()) this.queue.add(objectKey(job));
    this.running = this.queue.run(this.options.concurrency ?? 4, (key) => this.reconcileKey(key));
  }

  private enqueueOwner(o: KubeObject): void {
    const job = o.metadata.labels?.[LABELS.jobName];
    if (job && o.metadata.namespace) this.queue.add(`${o.metadata.namespace}/${job}`);
  }

  private async reconcileKey(key: string): Promise<void> {
    const started = process.hrtime.bigint();
    let result: 'success' | 'error' | 'requeue' = 'success';
    try {
      const requeue = await this.reconcile(key);
      this.queue.forget(key);
      if (requeue !== undefined) this.queue.addAfter(key, requeue);
    } catch (err) {
      result = isConflict(err) ? 'requeue' : 'error';
      const delay = this.queue.addRateLimited(key);
      if (result === 'error') this.log(`reconcile ${key} failed (retry in ${delay} ms): ${(err as Error).message}`);
    } finally {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      this.metrics.reconcileDuration.observe({ result }, seconds);
      this.metrics.reconciles.inc({ result });
      this.updatePhaseGauge();
    }
  }

  /** One pass over one job; returns when to look again (ms), if a timer is needed. */
  private async reconcile(key: string): Promise<number | undefined> {
    const job = this.jobs.get(key);
    if (!job || job.metadata.deletionTimestamp) return undefined; // owner references clean up
    const { namespace, uid } = job.metadata;
    this.metrics.seeNamespace(namespace);
    const pods = this.pods
      .list()
      .filter((p) => p.metadata.namespace === namespace && p.metadata.ownerReferences?.some((r) => r.uid === uid))
      .map(podView)
      .filter((p): p is PodView => p !== undefined);
    const planBase = this.planOptions(job);
    const specHash = hashPods(desiredObjects(job, planBase).pods);
    const progress = await this.progressOf(job, pods, planBase.workerPort!);
    const decision = decide({ job, pods, specHash, now: new Date(), ...(progress ? { progress } : {}) });

    // The status first: it records the intent (a restart and its count, a new phase). If that write
    // loses a race (409), nothing has been deleted or created yet and the next pass decides afresh;
    // acting first could leave pods deleted under a status that does not say why.
    if (!sameStatus(job.status, decision.status)) await this.writeStatus(job, decision.status);
    const decided = { ...job, status: decision.status };
    for (const action of decision.actions) await this.execute(decided, action, planBase, specHash);
    for (const event of decision.events) await this.recordEvent(job, event);
    if (decision.restarted) this.metrics.restarts.inc({ namespace });
    if (decision.becameRunningAfterS !== undefined) this.metrics.timeToRunning.observe(decision.becameRunningAfterS);
    return decision.requeueAfterMs;
  }

  private planOptions(job: Job): ObjectPlanOptions & { workerPort: number } {
    const w = job.spec.workers;
    const o = this.options;
    const nodeSelector = w.nodeSelector ?? o.workerNodeSelector;
    const tolerations = (w.tolerations as Toleration[] | undefined) ?? o.workerTolerations;
    const runtimeClassName = w.runtimeClassName ?? o.workerRuntimeClassName;
    const pullPolicy = w.imagePullPolicy ?? o.workerImagePullPolicy;
    return {
      image: w.image ?? o.workerImage,
      workerPort: w.port ?? 29500,
      metricsPort: o.workerMetricsPort ?? DEFAULT_WORKER_METRICS_PORT,
      ...(pullPolicy ? { imagePullPolicy: pullPolicy } : {}),
      ...(nodeSelector ? { nodeSelector } : {}),
      ...(tolerations ? { tolerations } : {}),
      ...(runtimeClassName ? { runtimeClassName } : {}),
      ...(w.serviceAccountName ? { serviceAccountName: w.serviceAccountName } : {}),
      ...(w.volumes ? { volumes: w.volumes as ObjectPlanOptions['volumes'] } : {}),
      ...(w.volumeMounts ? { volumeMounts: w.volumeMounts } : {}),
    };
  }

  private async execute(job: Job, action: Action, base: ObjectPlanOptions, specHash: string): Promise<void> {
    const { namespace, name } = job.metadata;
    switch (action.kind) {
      case 'ensureSupportObjects':
        return this.ensureSupportObjects(job, base);
      case 'createPods': {
        // A restarted (counted or not: a disruption, a spec change) or resumed gang continues
        // from the latest checkpoint; a new job's gang starts fresh even if its output folder is not empty.
        const resume = (job.status?.restarts ?? 0) > 0 || job.status?.conditions?.some((c) => c.type === CONDITION.suspended || c.type === CONDITION.restarting) === true;
        const plan = desiredObjects(job, { ...base, resume, podAnnotations: { [SPEC_HASH_ANNOTATION]: specHash } });
        for (const rank of action.ranks) await this.createIgnoringExisting(RESOURCES.pods, namespace, plan.pods[rank]);
        return;
      }
      case 'deletePods':
        for (const pod of action.pods) await this.deleteIgnoringMissing(RESOURCES.pods, namespace, pod.name, pod.uid);
        return;
      case 'deleteJob':
        this.log(`deleting ${namespace}/${name}: ttlSecondsAfterFinished elapsed`);
        return this.deleteIgnoringMissing(JOBS, namespace, name, job.metadata.uid);
    }
  }

  private async ensureSupportObjects(job: Job, base: ObjectPlanOptions): Promise<void> {
    const { namespace, name } = job.metadata;
    const names = objectNames(name, job.spec.workers.replicas);
    const ownedSecret = this.secrets.get(`${namespace}/${names.tokenSecret}`);
    const token = ownedSecret ? undefined : randomBytes(24).toString('base64url');
    const plan = desiredObjects(job, { ...base, ...(token ? { token } : {}) });
    if (plan.secret) await this.createIgnoringExisting(RESOURCES.secrets, namespace, plan.secret);
    if (!this.services.get(`${namespace}/${names.service}`)) await this.createIgnoringExisting(RESOURCES.services, namespace, plan.service);
    const cm = this.configMaps.get(`${namespace}/${names.configMap}`);
    if (!cm) await this.createIgnoringExisting(RESOURCES.configMaps, namespace, plan.configMap);
    else if (JSON.stringify(cm.data) !== JSON.stringify(plan.configMap.data)) {
      await this.rest.patch(RESOURCES.configMaps, namespace, names.configMap, { data: plan.configMap.data }, 'merge');
    }
  }

  private async progressOf(job: Job, pods: PodView[], port: number): Promise<TrainingProgress | undefined> {
    const rank0 = pods.find((p) => p.rank === 0 && p.phase === 'Running' && p.ip && !p.terminating);
    if (!rank0 || job.status?.phase === 'Succeeded' || job.status?.phase === 'Failed') return undefined;
    const secret = this.secrets.get(`${job.metadata.namespace}/${objectNames(job.metadata.name, 0).tokenSecret}`);
    const encoded = secret?.data?.[TOKEN_KEY];
    if (!encoded) return undefined;
    const host = rank0.ip!.includes(':') ? `[${rank0.ip}]` : rank0.ip!;
    return (await this.readProgress(`${host}:${port}`, Buffer.from(encoded, 'base64').toString('utf8'))) ?? job.status?.training;
  }

  private async writeStatus(job: Job, status: FineTuneJobStatus): Promise<void> {
    const { namespace, name } = job.metadata;
    // PUT with the resourceVersion we read: a concurrent writer makes this a 409, and we re-read.
    await this.rest.replace(JOBS, namespace, name, { ...job, status }, 'status');
  }

  private async recordEvent(job: Job, event: JobEvent): Promise<void> {
    const { namespace, name, uid } = job.metadata;
    const now = new Date().toISOString();
    try {
      await this.rest.create(RESOURCES.events, namespace, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { name: `${name}.${Date.now().toString(16)}${randomBytes(3).toString('hex')}`, namespace },
        involvedObject: { apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, name, namespace, uid, resourceVersion: job.metadata.resourceVersion },
        reason: event.reason,
        message: event.message.slice(0, 1024),
        type: event.type,
        source: { component: MANAGER_NAME },
        reportingComponent: `${API_GROUP}/${MANAGER_NAME}`,
        reportingInstance: this.elector?.identity ?? MANAGER_NAME,
        firstTimestamp: now,
        lastTimestamp: now,
        count: 1,
      });
    } catch (err) {
      // Events are best effort: losing one must not fail the reconcile.
      this.log(`event ${event.reason} for ${namespace}/${name} not recorded: ${(err as Error).message}`);
    }
  }

  private async createIgnoringExisting(type: ResourceType, namespace: string, body: unknown): Promise<void> {
    try {
      await this.rest.create(type, namespace, body);
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  }

  private async deleteIgnoringMissing(type: ResourceType, namespace: string, name: string, uid?: string): Promise<void> {
    try {
      await this.rest.delete(type, namespace, name, uid ? { uid } : {});
    } catch (err) {
      // Gone already, or a newer object of that name (uid precondition: 409): nothing to do.
      if (!isNotFound(err) && !(err instanceof ApiError && err.code === 409)) throw err;
    }
  }

  private updatePhaseGauge(): void {
    const counts = new Map<JobPhase, number>();
    for (const job of this.jobs.list()) {
      const phase = (job.status?.phase ?? 'Pending') as JobPhase;
      if (JOB_PHASES.includes(phase)) counts.set(phase, (counts.get(phase) ?? 0) + 1);
    }
    this.metrics.setJobPhases(counts);
  }
}

/** Hash of what a pod runs (not its resume flag): a change restarts the gang. */
function hashPods(pods: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(pods)).digest('hex').slice(0, 16);
}

function sameStatus(a: FineTuneJobStatus | undefined, b: FineTuneJobStatus): boolean {
  return JSON.stringify(canonical(a ?? {})) === JSON.stringify(canonical(b));
}

function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(Object.keys(value).sort().map((k) => [k, canonical((value as Record<string, unknown>)[k])]));
  }
  return value;
}

