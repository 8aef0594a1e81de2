/**
 * A list+watch cache of one resource type that keeps itself alive. @kubernetes/client-node's
 * watch simply ends on errors and cannot be aborted before the server answers, so the watch here
 * is our own request (KubeRest.openWatch) and this owns the recovery:
 *
 * - the watch ends (server timeout, dropped connection, error): watch again from the last
 *   resourceVersion seen, with capped backoff while it keeps failing;
 * - `410 Gone` (the version is older than the server keeps): list again and emit the differences,
 *   deletions included, so nothing is missed;
 * - a silent stall (the connection is open but nothing arrives, not even the bookmarks the server
 *   sends about once a minute): after `stallMs` the watch is aborted and started again.
 */
import { createInterface } from 'node:readline';
import { ApiError, type KubeObject, type KubeRest, type ResourceType } from './rest.js';

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';
export type ChangeHandler<T> = (type: ChangeType, object: T) => void;

export interface ReflectorOptions<T> {
  type: ResourceType;
  /** Watch one namespace (default: all). */
  namespace?: string;
  labelSelector?: string;
  onChange: ChangeHandler<T>;
  /** Restart a watch that delivered nothing (bookmarks included) for this long (default 90 s). */
  stallMs?: number;
  /** Server-side watch timeout range; the server ends the watch after a random time in it. */
  watchTimeoutSeconds?: [number, number];
  log?: (line: string) => void;
}

export const objectKey = (o: KubeObject): string => (o.metadata.namespace ? `${o.metadata.namespace}/${o.metadata.name}` : o.metadata.name);

export class Reflector<T extends KubeObject> {
  readonly store = new Map<string, T>();
  /** Counters for tests and logs: how often each recovery path ran. */
  readonly stats = { lists: 0, watches: 0, gone: 0, stalls: 0, errors: 0 };
  private resourceVersion = '';
  /** Ends the current watch attempt (aborting its request if it has one). */
  private endCurrent: ((err: Error) => void) | undefined;
  private stallTimer: NodeJS.Timeout | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private failures = 0;
  /** Ends start()'s wait between list attempts when stop() is called. */
  private wakeStart: ((value?: unknown) => void) | undefined;
  private stopped = false;
  private readonly stallMs: number;

  constructor(
    private readonly rest: KubeRest,
    private readonly options: ReflectorOptions<T>,
  ) {
    this.stallMs = options.stallMs ?? 90_000;
  }

  /** Lists, then watches; resolves once the cache holds the first full list. */
  async start(): Promise<void> {
    for (let attempt = 0; !this.stopped; attempt++) {
      try {
        await this.relist();
        break;
      } catch (err) {
        // API server not reachable yet, RBAC not bound yet: say so and try again.
        this.stats.errors++;
        const delay = Math.min(30_000, 500 * 2 ** Math.min(attempt, 6));
        this.log(`list ${this.options.type.plural} failed (retry in ${delay} ms): ${(err as Error).message}`);
        await new Promise((resolve) => {
          this.retryTimer = setTimeout(resolve, delay);
          this.wakeStart = resolve;
        });
      }
    }
    this.watch();
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.stallTimer);
    clearTimeout(this.retryTimer);
    this.wakeStart?.();
    this.endCurrent?.(abortError('stopped'));
  }

  get(key: string): T | undefined {
    return this.store.get(key);
  }

  list(): T[] {
    return [...this.store.values()];
  }

  /** For tests: pretend the last version seen is `rv` (e.g. one long compacted, to force a 410). */
  restartWatchFrom(rv: string): void {
    this.resourceVersion = rv;
    this.endCurrent?.(abortError('restart requested'));
  }

  private get log(): (line: string) => void {
    return this.options.log ?? (() => {});
  }

  private query(): Record<string, string> {
    return this.options.labelSelector ? { labelSelector: this.options.labelSelector } : {};
  }

  private async relist(): Promise<void> {
    this.stats.lists++;
    const list = await this.rest.list<T>(this.options.type, this.options.namespace, this.query());
    const seen = new Set<string>();
    for (const item of list.items) {
      const key = objectKey(item);
      seen.add(key);
      const old = this.store.get(key);
      this.store.set(key, item);
      if (!old) this.options.onChange('ADDED', item);
      else if (old.metadata.resourceVersion !== item.metadata.resourceVersion) this.options.onChange('MODIFIED', item);
    }
    for (const [key, old] of this.store) {
      if (!seen.has(key)) {
        this.store.delete(key);
        this.options.onChange('DELETED', old);
      }
    }
    this.resourceVersion = list.metadata.resourceVersion;
  }

  private watch(): void {
    if (this.stopped) return;
    this.stats.watches++;
    const [lo, hi] = this.options.watchTimeoutSeconds ?? [240, 480];
    const query = {
      ...this.query(),
      resourceVersion: this.resourceVersion,
      allowWatchBookmarks: true,
      timeoutSeconds: Math.round(lo + Math.random() * (hi - lo)),
    };
    let ended = false;
    let gone = false;
    // Our own request, abortable from the start: a stalled attempt never leaks its socket.
    const request = new AbortController();
    const end = (err: unknown) => {
      if (ended) return;
      ended = true;
      request.abort();
      clearTimeout(this.stallTimer);
      if (this.stopped) return;
      if (gone || (err instanceof ApiError && err.code === 410)) return void this.recoverFromGone();
      const aborted = (err as Error | null)?.name === 'AbortError' || (err instanceof ApiError && err.reason === 'Aborted');
      if (err && !aborted) {
        this.stats.errors++;
        this.failures++;
        this.log(`watch ${this.options.type.plural} ended: ${(err as Error).message}`);
      }
      const delay = this.failures === 0 ? 0 : Math.min(30_000, 200 * 2 ** Math.min(this.failures, 8));
      this.retryTimer = setTimeout(() => this.watch(), delay);
    };
    this.endCurrent = end;
    this.armStallTimer();
    const onLine = (line: string) => {
      if (ended || line.trim() === '') return;
      let event: { type: string; object: T & { code?: number; message?: string } };
      try {
        event = JSON.parse(line) as typeof event;
      } catch {
        return end(new Error(`watch ${this.options.type.plural}: a line that is not JSON`));
      }
      this.armStallTimer();
      const { type, object } = event;
      if (type === 'ERROR') {
        // A Status object: 410 means our version is too old for the server's history.
        if (object.code === 410) gone = true;
        else this.log(`watch ${this.options.type.plural}: error event ${object.code}: ${object.message}`);
        return;
      }
      if (object.metadata?.resourceVersion) this.resourceVersion = object.metadata.resourceVersion;
      if (type === 'BOOKMARK') return;
      this.apply(type as ChangeType, object);
    };
    this.rest.openWatch(this.options.type, this.options.namespace, query, request.signal).then((body) => {
      // An aborted or dropped stream errors ("Premature close"): always handled, end() is idempotent.
      body.on('error', end);
      if (ended) return void body.destroy();
      this.failures = 0; // connected: the server answered 200
      const lines = createInterface({ input: body, crlfDelay: Infinity });
      lines.on('line', onLine);
      lines.on('error', end); // readline re-emits the stream's errors
      lines.on('close', () => end(null));
    }, end);
  }

  private apply(type: ChangeType, object: T): void {
    const key = objectKey(object);
    const old = this.store.get(key);
    if (type === 'DELETED') {
      this.store.delete(key);
      this.options.onChange(type, object);
      return;
    }
    this.store.set(key, object);
    // A watch from an old version replays history as ADDED: report what is new to this cache.
    if (old && old.metadata.resourceVersion === object.metadata.resourceVersion) return;
    this.options.onChange(old ? 'MODIFIED' : 'ADDED', object);
  }

  private armStallTimer(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => {
      this.stats.stalls++;
      this.log(`watch ${this.options.type.plural}: nothing for ${this.stallMs} ms, restarting it`);
      // The request may still be waiting for headers (no controller yet): end the attempt
      // ourselves; a late answer to it is ignored.
      this.endCurrent?.(abortError('stalled'));
    }, this.stallMs);
    this.stallTimer.unref();
  }

  private recoverFromGone(): void {
    this.stats.gone++;
    this.log(`watch ${this.options.type.plural}: resource version ${this.resourceVersion} is gone, listing again`);
    this.relist().then(
      () => {
        this.failures = 0;
        this.watch();
      },
      (err: Error) => {
        this.failures++;
        this.stats.errors++;
        this.log(`list ${this.options.type.plural} failed: ${err.message}`);
        this.retryTimer = setTimeout(() => this.recoverFromGone(), Math.min(30_000, 200 * 2 ** Math.min(this.failures, 8)));
      },
    );
  }
}

function abortError(message: string): Error {
  const err = new Error(message);
  err.name = 'AbortError';
  return err;
}
