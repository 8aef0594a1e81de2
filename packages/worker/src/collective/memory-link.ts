/**
 * RingLinks connected inside one process: a FIFO queue per directed edge r -> r+1, with promises
 * for waiting receivers and (optionally) back-pressured senders. Used by tests, benchmarks and
 * world size 1.
 *
 * Every message is copied when the link accepts it (the moment send() resolves), so the receiver
 * never aliases the sender's memory: a sender that reuses a buffer before its send resolved, or a
 * receiver that scribbles on what it got, cannot hide a bug behind shared bytes. sendv() (the
 * zero-copy send) keeps the caller's parts until the message is delivered and copies them then,
 * like a socket that reads the sender's memory late: with `maxQueued` that can be long after the
 * call, so a caller that changes the bytes before its sendv resolved sends the changed bytes.
 *
 * Faults for tests:
 * - `recvTimeoutMs`: a recv() that waits longer rejects with CollectiveError naming the silent
 *   previous rank.
 * - `maxQueued`: at most this many undelivered messages per edge; further sends wait (in order)
 *   until the receiver takes one, like a transport with bounded buffers.
 * - `ring.kill(rank)`: the rank dies. Its next rank's recv() (pending and future) rejects with
 *   CollectiveError(`peer ${rank} killed ...`, rank), dropping undelivered messages; its previous
 *   rank's send() rejects the same way; the dead rank's own operations reject too.
 * - `link.close()`: a graceful shutdown: what was already sent is still delivered, then the next
 *   rank's recv() rejects with `peer ${rank} closed the link`; sends to the closed rank reject.
 */
import { CollectiveError, type RingLink } from './link.js';

export interface MemoryRingOptions {
  /** Milliseconds a recv() may wait for a message before rejecting; 0 or absent: forever. */
  recvTimeoutMs?: number;
  /** Undelivered messages an edge holds before send() waits; absent: unbounded. */
  maxQueued?: number;
}

export interface MemoryLink extends RingLink {
  /** Messages this link has sent / received so far. */
  readonly sentCount: number;
  readonly receivedCount: number;
}

export type MemoryRing = MemoryLink[] & {
  /** Simulates the crash of `rank` (see the module comment). */
  kill(rank: number, reason?: string): void;
};

interface Waiter<T> {
  resolve: (v: T) => void;
  reject: (e: unknown) => void;
}

interface RecvWaiter extends Waiter<Uint8Array> {
  timer?: ReturnType<typeof setTimeout>;
}

interface SendWaiter extends Waiter<void> {
  parts: readonly Uint8Array[];
}

/** One message from its parts (a copy, always). */
function concat(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!.slice();
  let n = 0;
  for (const p of parts) n += p.byteLength;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.byteLength;
  }
  return out;
}

/** One directed edge from -> to. */
class Edge {
  private readonly queue: Uint8Array[] = [];
  private head = 0;
  private readonly receivers: RecvWaiter[] = [];
  private readonly senders: SendWaiter[] = [];
  /** Set when the sender died (immediate) or closed (after the queue drains): recv rejects with it. */
  private senderGone: { error: CollectiveError; drain: boolean } | null = null;
  /** Set when the receiver died or closed: send rejects with it. */
  private receiverGone: CollectiveError | null = null;

  constructor(
    readonly from: number,
    readonly to: number,
    private readonly maxQueued: number,
    private readonly recvTimeoutMs: number,
  ) {}

  private get size(): number {
    return this.queue.length - this.head;
  }

  private deliver(parts: readonly Uint8Array[]): void {
    const copy = concat(parts); // accepted now: the sender may reuse its bytes from here on
    const r = this.receivers.shift();
    if (r) {
      if (r.timer) clearTimeout(r.timer);
      r.resolve(copy);
    } else {
      this.queue.push(copy);
    }
  }

  /** Delivers the concatenation of `parts` (copied at delivery); resolves once delivered. */
  send(parts: readonly Uint8Array[]): Promise<void> {
    if (this.receiverGone) return Promise.reject(this.receiverGone);
    if (this.senders.length === 0 && this.size < this.maxQueued) {
      this.deliver(parts);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => this.senders.push({ parts, resolve, reject }));
  }

  private take(): Uint8Array {
    const m = this.queue[this.head]!;
    this.queue[this.head++] = undefined as unknown as Uint8Array;
    if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue.splice(0, this.head);
      this.head = 0;
    }
    // Room for one more: admit the oldest waiting sender.
    const s = this.senders.shift();
    if (s) {
      this.deliver(s.parts);
      s.resolve();
    }
    return m;
  }

  recv(): Promise<Uint8Array> {
    const gone = this.senderGone;
    if (gone && !gone.drain) return Promise.reject(gone.error);
    if (this.size > 0) return Promise.resolve(this.take());
    if (gone) return Promise.reject(gone.error);
    return new Promise<Uint8Array>((resolve, reject) => {
      const waiter: RecvWaiter = { resolve, reject };
      if (this.recvTimeoutMs > 0) {
        waiter.timer = setTimeout(() => {
          const i = this.receivers.indexOf(waiter);
          if (i >= 0) this.receivers.splice(i, 1);
          reject(new CollectiveError(`peer ${this.from} sent nothing for ${this.recvTimeoutMs} ms (rank ${this.to} waiting)`, this.from));
        }, this.recvTimeoutMs);
      }
      this.receivers.push(waiter);
    });
  }

  private rejectReceivers(error: CollectiveError): void {
    for (const r of this.receivers.splice(0)) {
      if (r.timer) clearTimeout(r.timer);
      r.reject(error);
    }
  }

  private rejectSenders(error: CollectiveError): void {
    for (const s of this.senders.splice(0)) s.reject(error);
  }

  /** The sender died: undelivered messages are lost; recv rejects for the receiver. */
  senderKilled(forReceiver: CollectiveError, forSender: CollectiveError): void {
    this.senderGone ??= { error: forReceiver, drain: false };
    this.queue.length = 0;
    this.head = 0;
    this.rejectReceivers(forReceiver);
    this.rejectSenders(forSender);
  }

  /** The receiver died: sends reject; its own pending receives reject. */
  receiverKilled(forSender: CollectiveError, forReceiver: CollectiveError): void {
    this.receiverGone ??= forSender;
    this.queue.length = 0;
    this.head = 0;
    this.rejectSenders(forSender);
    this.rejectReceivers(forReceiver);
  }

  /** The sender closed: the receiver drains what was sent, then gets `forReceiver`. */
  senderClosed(forReceiver: CollectiveError, forSender: CollectiveError): void {
    this.rejectSenders(forSender);
    if (this.senderGone) return;
    this.senderGone = { error: forReceiver, drain: true };
    if (this.size === 0) this.rejectReceivers(forReceiver);
  }

  /** The receiver closed. */
  receiverClosed(forSender: CollectiveError, forReceiver: CollectiveError): void {
    this.receiverKilled(forSender, forReceiver);
  }
}

class MemoryRingLink implements MemoryLink {
  sentCount = 0;
  receivedCount = 0;
  private gone: CollectiveError | null = null;

  constructor(
    readonly rank: number,
    readonly worldSize: number,
    private readonly out: Edge,
    private readonly inbound: Edge,
  ) {}

  async send(message: Uint8Array): Promise<void> {
    if (this.gone) throw this.gone;
    if (!(message instanceof Uint8Array)) throw new TypeError('MemoryLink.send: message must be a Uint8Array');
    await this.out.send([message]);
    this.sentCount++;
  }

  async sendv(parts: readonly Uint8Array[]): Promise<void> {
    if (this.gone) throw this.gone;
    if (!parts.every((p) => p instanceof Uint8Array)) throw new TypeError('MemoryLink.sendv: parts must be Uint8Arrays');
    await this.out.send([...parts]);
    this.sentCount++;
  }

  async recv(): Promise<Uint8Array> {
    if (this.gone) throw this.gone;
    const m = await this.inbound.recv();
    this.receivedCount++;
    return m;
  }

  async close(): Promise<void> {
    if (this.gone) return;
    this.gone = new CollectiveError(`rank ${this.rank}: link closed`, this.rank);
    const peerClosed = new CollectiveError(`peer ${this.rank} closed the link`, this.rank);
    this.out.senderClosed(peerClosed, this.gone);
    this.inbound.receiverClosed(peerClosed, this.gone);
  }

  kill(reason: string): void {
    if (this.gone) return;
    this.gone = new CollectiveError(`rank ${this.rank} was killed${reason ? ` (${reason})` : ''}`, this.rank);
    const peerDead = new CollectiveError(`peer ${this.rank} killed${reason ? ` (${reason})` : ''}`, this.rank);
    this.out.senderKilled(peerDead, this.gone);
    this.inbound.receiverKilled(peerDead, this.gone);
  }
}

/** `worldSize` links where link r sends to link (r + 1) % worldSize. */
export function createMemoryRing(worldSize: number, options: MemoryRingOptions = {}): MemoryRing {
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`createMemoryRing: bad world size ${worldSize}`);
  const maxQueued = options.maxQueued ?? Infinity;
  if (!(maxQueued >= 1)) throw new RangeError(`createMemoryRing: maxQueued must be at least 1, got ${maxQueued}`);
  const timeout = options.recvTimeoutMs ?? 0;
  if (!(timeout >= 0)) throw new RangeError(`createMemoryRing: bad recvTimeoutMs ${timeout}`);
  const edges = Array.from({ length: worldSize }, (_, r) => new Edge(r, (r + 1) % worldSize, maxQueued, timeout));
  const links = Array.from(
    { length: worldSize },
    (_, r) => new MemoryRingLink(r, worldSize, edges[r]!, edges[(r - 1 + worldSize) % worldSize]!),
  );
  const ring = links as MemoryLink[] as MemoryRing;
  ring.kill = (rank: number, reason = '') => {
    const link = links[rank];
    if (!link) throw new RangeError(`kill: no rank ${rank} in a ring of ${worldSize}`);
    link.kill(reason);
  };
  return ring;
}
