/**
 * A work queue of object keys with the guarantees a level-triggered controller needs:
 *
 * - a key is queued at most once, however many events arrive for it (they collapse);
 * - a key is never processed by two workers at once: a key added while it is being processed is
 *   marked dirty and queued again when the worker finishes;
 * - failures are retried with per-key exponential backoff (`addRateLimited`), reset by `forget`;
 * - `addAfter` schedules a key for later (deadlines, TTLs, progress polling), keeping only the
 *   earliest pending time per key.
 */

export interface BackoffOptions {
  /** First retry delay (ms). */
  baseMs: number;
  /** Longest retry delay (ms). */
  maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 100, maxMs: 60_000 };

export type KeyHandler = (key: string) => Promise<void>;

export class WorkQueue {
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly processing = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private waiters: (() => void)[] = [];
  private stopped = false;

  constructor(private readonly backoff: BackoffOptions = DEFAULT_BACKOFF) {}

  /** Queues `key` now (no-op if it is already waiting). */
  add(key: string): void {
    if (this.stopped) return;
    if (this.processing.has(key)) {
      this.dirty.add(key);
      return;
    }
    if (this.queued.has(key)) return;
    this.queued.add(key);
    this.queue.push(key);
    this.wake();
  }

  /** Queues `key` after `delayMs`, unless it is already due sooner. */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    if (delayMs <= 0) return this.add(key);
    const at = Date.now() + delayMs;
    const pending = this.timers.get(key);
    if (pending && pending.at <= at) return;
    if (pending) clearTimeout(pending.timer);
    const timer = setTimeout(() => {
      this.timers.delete(key);
      this.add(key);
    }, delayMs);
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Queues `key` after its next backoff delay; returns that delay. */
  addRateLimited(key: string): number {
    const n = this.failures.get(key) ?? 0;
    this.failures.set(key, n + 1);
    const delay = Math.min(this.backoff.maxMs, this.backoff.baseMs * 2 ** n);
    this.addAfter(key, delay);
    return delay;
  }

  /** Resets `key`'s backoff (after a successful pass). */
  forget(key: string): void {
    this.failures.delete(key);
  }

  /** Consecutive failures recorded for `key`. */
  retries(key: string): number {
    return this.failures.get(key) ?? 0;
  }

  get length(): number {
    return this.queue.length;
  }

  /**
   * Runs `concurrency` workers that take keys and call `handler`; resolves when the queue is
   * stopped and the workers are idle. The handler decides about retries (addRateLimited/forget).
   */
  async run(concurrency: number, handler: KeyHandler): Promise<void> {
    await Promise.all(Array.from({ length: concurrency }, () => this.worker(handler)));
  }

  /** Stops handing out keys; pending timers are dropped. */
  stop(): void {
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    this.wake();
  }

  private async worker(handler: KeyHandler): Promise<void> {
    for (;;) {
      const key = await this.take();
      if (key === undefined) return;
      try {
        await handler(key);
      } finally {
        this.processing.delete(key);
        if (this.dirty.delete(key)) this.add(key);
      }
    }
  }

  private async take(): Promise<string | undefined> {
    while (!this.stopped && this.queue.length === 0) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    if (this.stopped) return undefined;
    const key = this.queue.shift()!;
    this.queued.delete(key);
    this.processing.add(key);
    return key;
  }

  private wake(): void {
    const waiters = this.waiters;
    this.waiters = [];
    for (const w of waiters) w();
  }
}
