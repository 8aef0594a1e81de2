/**
 * Leader election on a coordination.k8s.io/v1 Lease, so that of several controller replicas
 * exactly one acts. The lease is taken when it is free or its holder stopped renewing for
 * leaseDuration; every write carries the resourceVersion read, so two candidates racing for it
 * cannot both win (the loser gets 409 Conflict). A leader that cannot renew within renewDeadline
 * steps down (`onLost`) — the caller exits, and a fresh process competes again.
 */
import { hostname } from 'node:os';
import { isAlreadyExists, isConflict, isNotFound, RESOURCES, type KubeObject, type KubeRest } from './rest.js';

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity?: string;
  leaseDurationS?: number;
  renewDeadlineS?: number;
  retryPeriodS?: number;
  onStarted: () => void;
  onLost: () => void;
  log?: (line: string) => void;
}

interface Lease extends KubeObject {
  spec?: {
    holderIdentity?: string;
    leaseDurationSeconds?: number;
    acquireTime?: string;
    renewTime?: string;
    leaseTransitions?: number;
  };
}

/** MicroTime as the API server wants it (RFC 3339 with microseconds). */
const microTime = (d: Date) => d.toISOString().replace('Z', '000Z');

export class LeaderElector {
  readonly identity: string;
  private leading = false;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private lastRenew = 0;
  private readonly durationS: number;
  private readonly renewDeadlineMs: number;
  private readonly retryMs: number;

  constructor(
    private readonly rest: KubeRest,
    private readonly options: LeaderElectionOptions,
  ) {
    this.identity = options.identity ?? `${hostname()}_${process.pid}`;
    this.durationS = options.leaseDurationS ?? 15;
    this.renewDeadlineMs = (options.renewDeadlineS ?? 10) * 1000;
    this.retryMs = (options.retryPeriodS ?? 2) * 1000;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    void this.tick();
  }

  /** Stops competing; a leader gives the lease up so a standby takes over at once. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    if (!this.leading) return;
    this.leading = false;
    try {
      const lease = await this.rest.get<Lease>(RESOURCES.leases, this.options.namespace, this.options.name);
      if (lease.spec?.holderIdentity === this.identity) {
        await this.rest.replace(RESOURCES.leases, this.options.namespace, this.options.name, {
          ...lease,
          spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, renewTime: microTime(new Date()) },
        });
      }
    } catch {
      // Best effort: the lease expires by itself.
    }
  }

  private async tick(): Promise<void> {
    if (this.stopped) return;
    // The renewTime this attempt writes is about now: the renew deadline counts from here, so a
    // leader gives up before a candidate that reads that renewTime sees the lease expire.
    const attemptStarted = Date.now();
    let ok = false;
    try {
      ok = await this.withinRenewDeadline(this.tryAcquireOrRenew(), attemptStarted);
    } catch (err) {
      this.options.log?.(`leader election: ${(err as Error).message}`);
    }
    if (this.stopped) return;
    const now = Date.now();
    if (ok) {
      this.lastRenew = attemptStarted;
      if (!this.leading) {
        this.leading = true;
        this.options.log?.(`leader election: ${this.identity} became the leader (lease ${this.options.namespace}/${this.options.name})`);
        this.options.onStarted();
      }
    } else if (this.leading && now - this.lastRenew >= this.renewDeadlineMs) {
      this.leading = false;
      this.options.log?.(`leader election: ${this.identity} could not renew the lease for ${this.renewDeadlineMs} ms, stepping down`);
      this.options.onLost();
      return;
    }
    this.timer = setTimeout(() => void this.tick(), this.retryMs);
    this.timer.unref();
  }

  /**
   * Gives up waiting on an attempt at the renew deadline (a leader's: since its last renewal).
   * A request to an API server that stopped answering would otherwise hang for the HTTP
   * timeout, long after the lease expired and another replica took over.
   */
  private withinRenewDeadline<T>(attempt: Promise<T>, started: number): Promise<T> {
    const deadline = (this.leading ? this.lastRenew : started) + this.renewDeadlineMs;
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from the API server within the renew deadline (${this.renewDeadlineMs} ms)`)), Math.max(0, deadline - Date.now()));
    });
    return Promise.race([attempt, expired]).finally(() => clearTimeout(timer));
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name } = this.options;
    const now = new Date();
    let lease: Lease;
    try {
      lease = await this.rest.get<Lease>(RESOURCES.leases, namespace, name);
    } catch (err) {
      if (!isNotFound(err)) throw err;
      try {
        await this.rest.create(RESOURCES.leases, namespace, {
          apiVersion: 'coordination.k8s.io/v1',
          kind: 'Lease',
          metadata: { name, namespace },
          spec: { holderIdentity: this.identity, leaseDurationSeconds: this.durationS, acquireTime: microTime(now), renewTime: microTime(now), leaseTransitions: 0 },
        });
        return true;
      } catch (createErr) {
        if (isAlreadyExists(createErr)) return false;
        throw createErr;
      }
    }
    const spec = lease.spec ?? {};
    const holder = spec.holderIdentity ?? '';
    const renewed = spec.renewTime ? Date.parse(spec.renewTime) : 0;
    const expired = renewed + (spec.leaseDurationSeconds ?? this.durationS) * 1000 < now.getTime();
    if (holder !== this.identity && holder !== '' && !expired) return false;
    const takingOver = holder !== this.identity;
    const next: Lease = {
      ...lease,
      spec: {
        ...spec,
        holderIdentity: this.identity,
        leaseDurationSeconds: this.durationS,
        renewTime: microTime(now),
        ...(takingOver ? { acquireTime: microTime(now), leaseTransitions: (spec.leaseTransitions ?? 0) + 1 } : {}),
      },
    };
    try {
      await this.rest.replace(RESOURCES.leases, namespace, name, next);
      return true;
    } catch (err) {
      if (isConflict(err)) return false; // someone else wrote it first
      throw err;
    }
  }
}
