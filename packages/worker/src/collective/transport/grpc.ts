/**
 * The gRPC RingLink.
 *
 * Bulk bytes flow server → client only (grpc-js honours a large HTTP/2 receive window on the
 * client side of a channel, not on the server side: ~1.4 GB/s against ~0.35 GB/s here). So rank r
 * RECEIVES from its previous rank p by calling Subscribe on p's server and reading the response
 * stream, and p SENDS to r by writing Frames to that stream. Each worker therefore runs one
 * server (startCollectiveServer) whose Subscribe is called by its next rank, and one client
 * channel to its previous rank (connectRing).
 *
 * Messages are cut into frames of at most `chunkBytes`; a frame carries its message index and
 * byte offset, so the receiver checks order and reassembles. A message that fits one frame is
 * returned as a view into the received buffer (8-byte aligned); a larger one is copied once into
 * a buffer of its size. send() copies each chunk once, into the encoded frame; sendv() (what the
 * ring uses) copies nothing: it writes a small frame head and the caller's bytes as one vectored
 * write, and resolves once the socket took them.
 *
 * Memory. No buffer on the data path is allocated per message (fresh multi-MiB buffers, not
 * copies, were what made this link slow: see README.md in this folder). send() encodes each
 * frame as a complete gRPC message (length prefix included) into a buffer of `sendPool`; grpc-js
 * is told to write it as-is and Node's http2 sends it without copying, so the buffer goes back to
 * the pool from the write callback. The receiver's grpc-js call assembles each gRPC message into
 * a buffer of `recvPool`; a message handed back with release() (the ring does, once it has summed
 * or stored it) returns its buffer to the pool; once the consumer releases, the pool is in the
 * collective memory (../collective-memory.ts), where the ring sums with SIMD. The hooks into
 * grpc-js are in grpc-internals.ts. Idle pool memory is bounded (maxBufferedSendBytes + 2 frames;
 * min(maxBufferedRecvBytes, 64 MiB) + 2 frames).
 *
 * Faults: a peer that dies closes the TCP connection (the stream errors at once); a peer that
 * hangs is caught by HTTP/2 keepalive pings (both directions) and by the link's timers: a pending
 * recv with no frame for `timeoutMs`, or a send blocked by backpressure that makes no progress
 * for `timeoutMs`. Failures stick per direction: once receiving failed, every pending and later
 * recv rejects with that error, and the stream to the next rank is ended with ABORTED carrying the
 * reason (so the failure travels round the ring instead of every rank waiting out its own
 * timeout; later sends reject too). Once sending failed (the next rank left or stopped reading),
 * sends reject, while messages already received can still be read.
 */
import {
  ChannelCredentials,
  credentials,
  type ChannelOptions,
  type ClientReadableStream,
  Metadata,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServerWritableStream,
  status as Status,
  type sendUnaryData,
} from '@grpc/grpc-js';
import {
  CollectivePeerClient,
  collectiveServiceDefinition,
  encodeFramedMessage,
  framedMessageLength,
  writeFramedHead,
  type FrameView,
  Phase,
  type PingRequest,
  type PingResponse,
  type StatusRequest,
  type StatusResponse,
  type SubscribeRequest,
} from '@finetune/proto';
import { CollectiveError, type RingLink } from '../link.js';
import { bearerMetadata, checkBearer, checkTokenUsable, tokenDigest } from './auth.js';
import type { TlsMaterial } from './config.js';
import { BufferPool, raiseMallocTrimThreshold } from './buffer-pool.js';
import { collectiveMemory } from '../collective-memory.js';
import { disableNagleOnAcceptedSockets, PreframedParts, receiveIntoPool, sendPreframedMessages, type PooledMessageDecoder } from './grpc-internals.js';
import {
  describePeer,
  formatSeconds,
  isServiceError,
  rendezvous,
  statusName,
  tokenRefusedError,
} from './rendezvous.js';

const MiB = 1024 * 1024;
/** Default frame payload size. */
export const DEFAULT_CHUNK_BYTES = 4 * MiB;
/** Largest frame payload a link sends or accepts. */
export const MAX_CHUNK_BYTES = 64 * MiB;
/** HTTP/2 receive window of the client side (where the bulk data arrives). */
export const FLOW_CONTROL_WINDOW_BYTES = 16 * MiB;
/** Largest request a server accepts (requests are tiny; this bounds what unauthenticated callers can make us buffer). */
const MAX_REQUEST_BYTES = 64 * 1024;
/** Frame header + padding is at most this. */
const FRAME_OVERHEAD_BYTES = 64;
/** gRPC length prefix + Frame header + padding is at most this. */
const FRAMED_OVERHEAD_BYTES = FRAME_OVERHEAD_BYTES + 8;
/** Leading parts of a sendv() message up to this size are copied into the frame head (one write instead of two). */
const SMALL_PART_BYTES = 256;
/** Frame heads (gRPC prefix + Frame header, plus small leading parts) are allocated in buffers of this size. */
const HEAD_BUFFER_BYTES = 1024;
/** Refused calls logged per minute. */
const REFUSAL_LOG_LIMIT = 20;

export type Log = (line: string) => void;
const defaultLog: Log = (line) => console.error(line);

/** Keepalive derived from the collective timeout unless given: ping every timeout/3 (1–10 s), wait timeout/3 (1–20 s) for the answer. */
function keepaliveFor(timeoutMs: number, timeMs?: number, ackTimeoutMs?: number): { timeMs: number; ackTimeoutMs: number } {
  const third = Math.round(timeoutMs / 3);
  return {
    timeMs: timeMs ?? Math.min(10_000, Math.max(1_000, third)),
    ackTimeoutMs: ackTimeoutMs ?? Math.min(20_000, Math.max(1_000, third)),
  };
}

function bindAddress(host: string, port: number): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

// ───────────────────────────────────────────── server ─────────────────────────────────────────────

export interface StartCollectiveServerOptions {
  /** Port to listen on; 0 picks a free one (see CollectiveServer.port). */
  port: number;
  /** Address to bind (default 0.0.0.0). */
  host?: string;
  /** The job's shared secret; calls without it are refused with UNAUTHENTICATED. */
  token: string;
  /** Serve TLS with `cert`/`key` (the CA is for the client side, see connectRing). */
  tls?: TlsMaterial;
  /** Identity this worker answers Ping with, and checks subscribers against. */
  jobId: string;
  rank: number;
  worldSize: number;
  /** The collective timeout, from which the keepalive defaults derive (default 60 s). */
  timeoutMs?: number;
  /** Server-side HTTP/2 keepalive pings towards subscribers (defaults as for connectRing). */
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
  /** One line per refused call and similar events (default: stderr). */
  log?: Log;
}

/** What Status answers; the trainer fills it in with setStatus. */
export interface WorkerStatus {
  phase: Phase;
  step: number;
  /** Optimizer steps planned (0 until training starts). */
  totalSteps: number;
  epoch: number;
  /** NaN before the first step. */
  lastLoss: number;
  validationMetric?: number | undefined;
  validationMetricName: string;
  message: string;
}

/** Our Subscribe calls write pre-framed messages (see sendPreframedMessages), not Frame objects. */
type SubscriberCall = ServerWritableStream<SubscribeRequest, Buffer | PreframedParts>;
type SubscriberListener = (call: SubscriberCall) => void;

export interface CollectiveServer {
  readonly host: string;
  /** The port actually bound. */
  readonly port: number;
  readonly jobId: string;
  readonly rank: number;
  readonly worldSize: number;
  /** Merges an update into what Status answers (updatedAtUnixMs is set to now). */
  setStatus(update: Partial<WorkerStatus>): void;
  status(): StatusResponse;
  /** Stops serving: open streams are cancelled after a 1 s grace. */
  close(): Promise<void>;
}

class GrpcCollectiveServer implements CollectiveServer {
  readonly jobId: string;
  readonly rank: number;
  readonly worldSize: number;
  readonly host: string;
  port = 0;
  readonly server: Server;
  private readonly digest: Buffer;
  private readonly log: Log;
  private current: StatusResponse;
  private subscriber: SubscriberCall | undefined;
  private listener: SubscriberListener | undefined;
  private closed = false;

  constructor(options: StartCollectiveServerOptions) {
    this.jobId = options.jobId;
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.host = options.host ?? '0.0.0.0';
    this.digest = tokenDigest(options.token);
    this.log = options.log ?? defaultLog;
    this.current = {
      jobId: this.jobId,
      rank: this.rank,
      worldSize: this.worldSize,
      phase: Phase.PHASE_STARTING,
      step: 0,
      totalSteps: 0,
      epoch: 0,
      lastLoss: NaN,
      validationMetric: undefined,
      validationMetricName: '',
      updatedAtUnixMs: Date.now(),
      message: '',
    };
    const keepalive = keepaliveFor(options.timeoutMs ?? 60_000, options.keepaliveTimeMs, options.keepaliveTimeoutMs);
    const serverOptions: ChannelOptions = {
      'grpc.keepalive_time_ms': keepalive.timeMs,
      'grpc.keepalive_timeout_ms': keepalive.ackTimeoutMs,
      'grpc.keepalive_permit_without_calls': 1,
      'grpc.max_receive_message_length': MAX_REQUEST_BYTES,
      'grpc.max_send_message_length': MAX_CHUNK_BYTES + FRAME_OVERHEAD_BYTES,
    };
    this.server = new Server(serverOptions);
    this.server.addService(collectiveServiceDefinition, {
      subscribe: (call: SubscriberCall) => this.onSubscribe(call),
      ping: (call: ServerUnaryCall<PingRequest, PingResponse>, callback: sendUnaryData<PingResponse>) => {
        if (!this.authorize(call.metadata, 'Ping', call.getPeer())) {
          callback({ code: Status.UNAUTHENTICATED, details: 'missing or wrong job token' });
          return;
        }
        callback(null, { jobId: this.jobId, rank: this.rank, worldSize: this.worldSize });
      },
      status: (call: ServerUnaryCall<StatusRequest, StatusResponse>, callback: sendUnaryData<StatusResponse>) => {
        if (!this.authorize(call.metadata, 'Status', call.getPeer())) {
          callback({ code: Status.UNAUTHENTICATED, details: 'missing or wrong job token' });
          return;
        }
        callback(null, this.status());
      },
    });
  }

  setStatus(update: Partial<WorkerStatus>): void {
    this.current = { ...this.current, ...update, updatedAtUnixMs: Date.now() };
  }

  status(): StatusResponse {
    return { ...this.current };
  }

  private authorize(metadata: Metadata, method: string, peer: string): boolean {
    const check = checkBearer(metadata, this.digest);
    if (check.ok) return true;
    this.logRefusal(`refused ${method} from ${peer}: ${check.reason}`);
    return false;
  }

  private refusals = { windowStart: 0, logged: 0, suppressed: 0 };

  /** One line per refused call, at most REFUSAL_LOG_LIMIT a minute (a flood of bad calls cannot flood the log). */
  private logRefusal(what: string): void {
    const now = Date.now();
    const r = this.refusals;
    if (now - r.windowStart >= 60_000) {
      if (r.suppressed > 0) this.log(`${this.logPrefix()}: ${r.suppressed} more refused calls in the last minute were not logged`);
      this.refusals = { windowStart: now, logged: 0, suppressed: 0 };
    }
    if (this.refusals.logged >= REFUSAL_LOG_LIMIT) {
      this.refusals.suppressed++;
      return;
    }
    this.refusals.logged++;
    this.log(`${this.logPrefix()}: ${what}`);
  }

  private logPrefix(): string {
    return `collective server (job ${JSON.stringify(this.jobId)}, rank ${this.rank})`;
  }

  private onSubscribe(call: SubscriberCall): void {
    const refuse = (code: Status, details: string): void => {
      call.emit('error', { code, details });
    };
    if (!this.authorize(call.metadata, 'Subscribe', call.getPeer())) {
      refuse(Status.UNAUTHENTICATED, 'missing or wrong job token');
      return;
    }
    const request = call.request;
    const expected = (this.rank + 1) % this.worldSize;
    if (request.jobId !== this.jobId || request.worldSize !== this.worldSize || request.rank !== expected) {
      const details = `rank ${this.rank} of job ${JSON.stringify(this.jobId)} (world size ${this.worldSize}) streams to rank ${expected}, not to rank ${request.rank} of job ${JSON.stringify(request.jobId)} (world size ${request.worldSize})`;
      this.logRefusal(`refused Subscribe from ${call.getPeer()}: ${details}`);
      refuse(Status.FAILED_PRECONDITION, details);
      return;
    }
    if (this.closed) {
      refuse(Status.UNAVAILABLE, 'server is shutting down');
      return;
    }
    if (this.subscriber) {
      refuse(Status.ALREADY_EXISTS, `rank ${request.rank} is already subscribed to rank ${this.rank}`);
      return;
    }
    this.subscriber = call;
    const clear = (): void => {
      if (this.subscriber === call) this.subscriber = undefined;
    };
    call.once('cancelled', clear);
    call.once('close', clear);
    call.once('finish', clear);
    // Initial metadata tells the subscriber it was accepted.
    call.sendMetadata(new Metadata());
    const listener = this.listener;
    if (listener) {
      this.listener = undefined;
      listener(call);
    }
  }

  /** @internal The link takes the accepted subscriber (now or when it arrives). */
  takeSubscriber(listener: SubscriberListener): void {
    if (this.subscriber && !this.subscriber.cancelled && !this.subscriber.writableEnded) {
      listener(this.subscriber);
      return;
    }
    this.listener = listener;
  }

  /** @internal */
  releaseSubscriber(listener: SubscriberListener): void {
    if (this.listener === listener) this.listener = undefined;
  }

  async bind(port: number, credentials: ServerCredentials): Promise<void> {
    this.port = await new Promise<number>((resolve, reject) => {
      this.server.bindAsync(bindAddress(this.host, port), credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
    });
    disableNagleOnAcceptedSockets(this.server);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.listener = undefined;
    await new Promise<void>((resolve) => {
      const force = setTimeout(() => {
        this.server.forceShutdown();
        resolve();
      }, 1_000);
      this.server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
  }
}

export { disableNagleOnAcceptedSockets } from './grpc-internals.js';

/** Starts this worker's CollectiveService server (Subscribe, Ping, Status). */
export async function startCollectiveServer(options: StartCollectiveServerOptions): Promise<CollectiveServer> {
  checkTokenUsable(options.token);
  checkIdentity(options.rank, options.worldSize, options.jobId);
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) {
    throw new RangeError(`port must be an integer in [0, 65535], got ${options.port}`);
  }
  raiseMallocTrimThreshold(); // early: it takes effect at the next GC
  const server = new GrpcCollectiveServer(options);
  const creds = options.tls
    ? ServerCredentials.createSsl(null, [{ cert_chain: options.tls.cert, private_key: options.tls.key }], false)
    : ServerCredentials.createInsecure();
  try {
    await server.bind(options.port, creds);
  } catch (err) {
    server.server.forceShutdown();
    throw new Error(`cannot listen on ${bindAddress(server.host, options.port)}: ${(err as Error).message}`);
  }
  return server;
}

function checkIdentity(rank: number, worldSize: number, jobId: string): void {
  if (!Number.isInteger(worldSize) || worldSize < 1) throw new RangeError(`worldSize must be a positive integer, got ${worldSize}`);
  if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize) throw new RangeError(`rank must be an integer in [0, ${worldSize}), got ${rank}`);
  if (typeof jobId !== 'string' || jobId === '') throw new RangeError('jobId must be a non-empty string');
}

// ───────────────────────────────────────────── link ─────────────────────────────────────────────

export interface ConnectRingOptions {
  /** This worker's server (from startCollectiveServer); its next rank subscribes to it. */
  server: CollectiveServer;
  rank: number;
  worldSize: number;
  /** host:port per rank, in rank order. */
  peers: readonly string[];
  token: string;
  jobId: string;
  /** A peer silent (or not reading) this long while we wait on it has failed. */
  timeoutMs: number;
  /** How long to wait for every peer to answer and for both streams to open. */
  connectDeadlineMs: number;
  /** Frame payload size (default 4 MiB, at most 64 MiB). */
  chunkBytes?: number;
  /** Sent bytes not yet handed to the socket before send() waits (default 16 MiB). */
  maxBufferedSendBytes?: number;
  /** Received bytes queued before reading pauses (default 32 MiB; a message in progress is always completed). */
  maxBufferedRecvBytes?: number;
  /** TLS: `ca` verifies peers' certificates (`serverName` overrides the name checked). */
  tls?: TlsMaterial;
  /** Client-side HTTP/2 keepalive (defaults from timeoutMs: every timeout/3 within 1–10 s, ack within timeout/3 within 1–20 s). */
  keepaliveTimeMs?: number;
  keepaliveTimeoutMs?: number;
  /** Rendezvous backoff (defaults 50 ms doubling to 2 s). */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Aborting stops connecting (the promise rejects). */
  signal?: AbortSignal;
}

export interface GrpcRingLink extends RingLink {
  readonly peers: readonly string[];
  /** The gRPC link always sends without copying when asked to (see RingLink.sendv). */
  sendv(parts: readonly Uint8Array[]): Promise<void>;
  release(message: Uint8Array): void;
  /** The first failure of either direction, once there is one. */
  readonly failure: CollectiveError | undefined;
}

interface Waiter<T> {
  resolve(value: T): void;
  reject(err: Error): void;
}

class Link implements GrpcRingLink {
  readonly prev: number;
  readonly next: number;
  failure: CollectiveError | undefined;
  private recvFailure: CollectiveError | undefined;
  private sendFailure: CollectiveError | undefined;
  private closed = false;
  private readonly clients: CollectivePeerClient[] = [];
  private inbound: ClientReadableStream<FrameView> | undefined;
  private outbound: SubscriberCall | undefined;
  private outboundWaiter: Waiter<void> | undefined;
  private readonly subscriberListener: SubscriberListener;

  // receive side
  private readonly messages: Uint8Array[] = [];
  private queuedBytes = 0;
  private assembling: { buf: Uint8Array; filled: number } | undefined;
  private expectedMessage = 0;
  private inboundEnded: CollectiveError | undefined;
  private readonly recvWaiters: Waiter<Uint8Array>[] = [];
  private recvTimer: NodeJS.Timeout | undefined;
  private paused = false;

  // send side
  private sendChain: Promise<void> = Promise.resolve();
  private nextMessage = 0;
  private inflightBytes = 0;
  private writableWaiter: Waiter<void> | undefined;
  private sendTimer: NodeJS.Timeout | undefined;
  /** sendv() messages whose bytes the socket has not taken yet, in order; rejected when sending fails. */
  private readonly unwritten = new Set<Waiter<void>>();
  /** Reused buffers for the heads of sendv() frames. */
  private readonly heads: Buffer[] = [];
  /**
   * Reused buffers for outgoing frames, each a complete gRPC message (encodeFramedMessage) that
   * grpc-js writes as-is (sendPreframedMessages) and Node's http2 sends without copying; a buffer
   * is free again once its write callback ran (the socket took the bytes). Fresh multi-MiB
   * buffers cost a page fault per page on every use (grpc-internals.ts); reused ones make the
   * sender's single copy nearly free.
   */
  private readonly sendPool: BufferPool;
  /**
   * Reused buffers for incoming messages: the subchannel call's decoder assembles each gRPC
   * message into one (receiveIntoPool); a message the consumer hands back with release() (the
   * ring does, once summed) returns to the pool. Ordinary (garbage-collected) buffers until the
   * consumer first calls release(); from then on buffers of the collective memory, where the
   * ring sums with SIMD, and which only release() frees (see RingLink.release).
   */
  private readonly recvPool: BufferPool;
  private collectiveRecvPool: BufferPool | undefined;
  private decoder: PooledMessageDecoder | undefined;

  constructor(
    readonly rank: number,
    readonly worldSize: number,
    readonly peers: readonly string[],
    private readonly server: GrpcCollectiveServer,
    private readonly timeoutMs: number,
    private readonly chunkBytes: number,
    private readonly maxBufferedSendBytes: number,
    private readonly maxBufferedRecvBytes: number,
  ) {
    this.prev = (rank - 1 + worldSize) % worldSize;
    this.next = (rank + 1) % worldSize;
    this.subscriberListener = (call) => this.attachOutbound(call);
    this.sendPool = new BufferPool(maxBufferedSendBytes + 2 * (chunkBytes + FRAMED_OVERHEAD_BYTES));
    this.recvPool = new BufferPool(this.recvPoolBytes());
  }

  private recvPoolBytes(): number {
    return Math.min(this.maxBufferedRecvBytes, 64 * MiB) + 2 * (this.chunkBytes + FRAMED_OVERHEAD_BYTES);
  }

  /** A buffer for an incoming message (see recvPool). */
  private lendRecv(bytes: number): Buffer {
    return (this.collectiveRecvPool ?? this.recvPool).lend(bytes);
  }

  private giveBackRecv(view: Uint8Array): void {
    if (!this.collectiveRecvPool?.giveBack(view)) this.recvPool.giveBack(view);
  }

  /** @internal For tests: whether the pooled paths are active, and what they did. */
  get transportStats(): { messagesAssembledInPool: number; sendBuffersAllocated: number; recvBuffersAllocated: number } {
    return {
      messagesAssembledInPool: this.decoder?.pooledMessages ?? 0,
      sendBuffersAllocated: this.sendPool.allocated,
      recvBuffersAllocated: this.recvPool.allocated + (this.collectiveRecvPool?.allocated ?? 0),
    };
  }

  private peer(rank: number): string {
    return describePeer(rank, this.peers[rank]);
  }

  // ── failure handling ──

  /** Receiving failed: reject receivers, stop reading, and abort the stream to the next rank. */
  private failRecv(err: CollectiveError): void {
    if (this.recvFailure || this.closed) return;
    this.recvFailure = err;
    this.failure ??= err;
    this.clearRecvTimer();
    for (const waiter of this.recvWaiters.splice(0)) waiter.reject(err);
    this.inbound?.cancel();
    const out = this.outbound;
    if (out && !out.cancelled && !out.writableEnded) {
      // Tell the next rank why, instead of leaving it to time out.
      out.emit('error', { code: Status.ABORTED, details: `rank ${this.rank} aborted: ${err.message}` });
    }
    this.failSend(err);
  }

  /** Sending failed: reject senders. */
  private failSend(err: CollectiveError): void {
    if (this.sendFailure || this.closed) return;
    this.sendFailure = err;
    this.failure ??= err;
    this.clearSendTimer();
    this.writableWaiter?.reject(err);
    this.writableWaiter = undefined;
    this.outboundWaiter?.reject(err);
    this.outboundWaiter = undefined;
    this.rejectUnwritten(err);
  }

  private rejectUnwritten(err: CollectiveError): void {
    for (const waiter of this.unwritten) waiter.reject(err);
    this.unwritten.clear();
  }

  private closedError(): CollectiveError {
    return new CollectiveError(`rank ${this.rank}: the link is closed`);
  }

  private checkSend(): void {
    if (this.sendFailure) throw this.sendFailure;
    if (this.closed) throw this.closedError();
  }

  // ── outbound (we are the server side of our next rank's Subscribe) ──

  listenForSubscriber(): void {
    this.server.takeSubscriber(this.subscriberListener);
  }

  private attachOutbound(call: SubscriberCall): void {
    if (this.closed || this.sendFailure) {
      call.emit('error', { code: Status.ABORTED, details: `rank ${this.rank} is no longer in the ring` });
      return;
    }
    try {
      sendPreframedMessages(call);
    } catch (err) {
      call.emit('error', { code: Status.INTERNAL, details: (err as Error).message });
      this.failSend(new CollectiveError(`rank ${this.rank}: ${(err as Error).message}`, this.rank));
      return;
    }
    this.outbound = call;
    const lost = (what: string): void => {
      if (this.closed || this.outbound !== call || call.writableEnded) return;
      this.failSend(new CollectiveError(`${this.peer(this.next)} ${what}: its stream from rank ${this.rank} was cancelled or its connection broke`, this.next));
    };
    call.on('cancelled', () => lost('stopped receiving'));
    call.on('close', () => lost('stopped receiving'));
    call.on('error', () => lost('stopped receiving'));
    call.on('drain', () => this.onWriteProgress());
    this.outboundWaiter?.resolve();
    this.outboundWaiter = undefined;
  }

  waitForSubscriber(deadline: number, deadlineMs: number): Promise<void> {
    if (this.outbound) return Promise.resolve();
    this.checkSend();
    return new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.outboundWaiter = undefined;
        reject(new CollectiveError(`${this.peer(this.next)} answered Ping but never subscribed to rank ${this.rank} within ${formatSeconds(deadlineMs)} s`, this.next));
      }, Math.max(0, deadline - Date.now()));
      this.outboundWaiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
    });
  }

  // ── inbound (we are the client of our previous rank's Subscribe) ──

  addClient(client: CollectivePeerClient): void {
    this.clients.push(client);
  }

  /** Opens Subscribe on the previous rank; resolves once it accepted (sent its headers). */
  subscribe(client: CollectivePeerClient, metadata: Metadata, jobId: string, deadline: number): Promise<void> {
    if (this.closed) return Promise.reject(this.closedError());
    return new Promise<void>((resolve, reject) => {
      let accepted = false;
      const call = client.subscribe({ jobId, rank: this.rank, worldSize: this.worldSize }, metadata);
      this.inbound = call;
      const timer = setTimeout(() => {
        if (accepted) return;
        call.cancel();
        reject(new CollectiveError(`${this.peer(this.prev)} never accepted the subscription of rank ${this.rank}`, this.prev));
      }, Math.max(0, deadline - Date.now()));
      call.on('metadata', () => {
        if (accepted) return;
        accepted = true;
        clearTimeout(timer);
        try {
          this.decoder = receiveIntoPool(call, { acquire: (bytes) => this.lendRecv(bytes) });
        } catch (err) {
          if (this.inbound === call) this.inbound = undefined;
          call.cancel();
          reject(new CollectiveError(`rank ${this.rank}: ${(err as Error).message}`, this.rank));
          return;
        }
        resolve();
      });
      call.on('data', (frame: FrameView) => this.onFrame(frame));
      call.on('error', (err: Error) => {
        clearTimeout(timer);
        if (!accepted) {
          accepted = true;
          if (this.inbound === call) this.inbound = undefined;
          if (this.closed) return reject(this.closedError());
          const error = this.inboundError(err);
          reject(Object.assign(error, { retriable: isServiceError(err) && err.code === Status.UNAVAILABLE }));
          return;
        }
        if (this.closed || this.inbound !== call) return;
        this.failRecv(this.inboundError(err));
      });
      call.on('end', () => {
        if (this.closed || this.recvFailure) return;
        this.inboundEnded = new CollectiveError(
          this.assembling
            ? `${this.peer(this.prev)} closed its stream in the middle of message ${this.expectedMessage}`
            : `${this.peer(this.prev)} closed its stream (it left the ring)`,
          this.prev,
        );
        if (this.messages.length === 0) {
          this.clearRecvTimer();
          for (const waiter of this.recvWaiters.splice(0)) waiter.reject(this.inboundEnded);
        }
      });
    });
  }

  private inboundError(err: Error): CollectiveError {
    const who = this.peer(this.prev);
    if (!isServiceError(err)) return new CollectiveError(`lost the stream from ${who}: ${err.message}`, this.prev);
    switch (err.code) {
      case Status.UNAUTHENTICATED:
        return tokenRefusedError(this.prev, this.peers[this.prev]!, err.details);
      case Status.ABORTED:
        return new CollectiveError(`${who} aborted the collective: ${err.details}`, this.prev);
      case Status.FAILED_PRECONDITION:
      case Status.ALREADY_EXISTS:
        return new CollectiveError(`${who} refused the subscription of rank ${this.rank}: ${err.details}`, this.prev);
      case Status.RESOURCE_EXHAUSTED:
        return new CollectiveError(`${who} sent a frame larger than allowed: ${err.details}`, this.prev);
      default:
        return new CollectiveError(`lost the stream from ${who}: ${statusName(err.code)} ${err.details}`, this.prev);
    }
  }

  private protocolError(what: string): void {
    this.failRecv(new CollectiveError(`protocol error from ${this.peer(this.prev)}: ${what}`, this.prev));
  }

  private onFrame(frame: FrameView): void {
    if (this.recvFailure || this.closed) {
      this.giveBackRecv(frame.data);
      return;
    }
    if (this.recvTimer) this.recvTimer.refresh();
    const { data } = frame;
    if (frame.message !== this.expectedMessage) {
      return this.protocolError(`frame of message ${frame.message}, expected message ${this.expectedMessage}`);
    }
    let complete: Uint8Array | undefined;
    if (!this.assembling) {
      if (frame.offset !== 0) return this.protocolError(`message ${frame.message} starts at offset ${frame.offset}`);
      if (data.byteLength > frame.messageBytes) return this.protocolError(`frame longer than its message`);
      if (data.byteLength === frame.messageBytes) {
        complete = data;
      } else {
        if (data.byteLength === 0) return this.protocolError('empty frame');
        const buf = this.lendRecv(frame.messageBytes);
        buf.set(data, 0);
        this.giveBackRecv(data);
        this.assembling = { buf, filled: data.byteLength };
        this.queuedBytes += data.byteLength;
      }
    } else {
      const a = this.assembling;
      if (frame.messageBytes !== a.buf.byteLength || frame.offset !== a.filled) {
        return this.protocolError(`frame at offset ${frame.offset} of a ${frame.messageBytes}-byte message, expected offset ${a.filled} of ${a.buf.byteLength}`);
      }
      if (data.byteLength === 0 || a.filled + data.byteLength > a.buf.byteLength) return this.protocolError('frame overruns its message');
      a.buf.set(data, a.filled);
      this.giveBackRecv(data);
      a.filled += data.byteLength;
      this.queuedBytes += data.byteLength;
      if (a.filled === a.buf.byteLength) {
        complete = a.buf;
        this.assembling = undefined;
        this.queuedBytes -= a.filled;
      }
    }
    if (!complete) return;
    this.expectedMessage++;
    const waiter = this.recvWaiters.shift();
    if (waiter) {
      if (this.recvWaiters.length === 0) this.clearRecvTimer();
      waiter.resolve(complete);
      return;
    }
    this.messages.push(complete);
    this.queuedBytes += complete.byteLength;
    if (!this.paused && this.queuedBytes > this.maxBufferedRecvBytes) {
      this.paused = true;
      this.inbound?.pause();
    }
  }

  release(message: Uint8Array): void {
    if (!this.collectiveRecvPool && !this.closed) {
      // This consumer releases what it reads: later messages may go to the collective memory.
      const memory = collectiveMemory();
      if (memory) this.collectiveRecvPool = new BufferPool(this.recvPoolBytes(), memory);
    }
    this.giveBackRecv(message); // after close() the pool frees it
  }

  recv(): Promise<Uint8Array> {
    const message = this.messages.shift();
    if (message) {
      this.queuedBytes -= message.byteLength;
      if (this.paused && this.queuedBytes <= this.maxBufferedRecvBytes) {
        this.paused = false;
        this.inbound?.resume();
      }
      return Promise.resolve(message);
    }
    if (this.recvFailure) return Promise.reject(this.recvFailure);
    if (this.closed) return Promise.reject(this.closedError());
    if (this.inboundEnded) return Promise.reject(this.inboundEnded);
    return new Promise<Uint8Array>((resolve, reject) => {
      this.recvWaiters.push({ resolve, reject });
      if (!this.recvTimer) {
        this.recvTimer = setTimeout(() => {
          this.recvTimer = undefined;
          this.failRecv(new CollectiveError(
            `${this.peer(this.prev)} sent nothing for ${formatSeconds(this.timeoutMs)} s while rank ${this.rank} waited for message ${this.expectedMessage} (collective timeout)`,
            this.prev,
          ));
        }, this.timeoutMs);
      }
    });
  }

  private clearRecvTimer(): void {
    if (this.recvTimer) clearTimeout(this.recvTimer);
    this.recvTimer = undefined;
  }

  private clearSendTimer(): void {
    if (this.sendTimer) clearTimeout(this.sendTimer);
    this.sendTimer = undefined;
  }

  // ── send ──

  send(message: Uint8Array): Promise<void> {
    const sent = this.sendChain.then(() => this.sendNow(message));
    this.sendChain = sent.catch(() => undefined);
    return sent;
  }

  private async sendNow(message: Uint8Array): Promise<void> {
    this.checkSend();
    const out = this.outbound;
    if (!out) throw new CollectiveError(`${this.peer(this.next)} is not subscribed`, this.next);
    const index = this.nextMessage++;
    const total = message.byteLength;
    let offset = 0;
    do {
      const length = Math.min(this.chunkBytes, total - offset);
      const header = { message: index, messageBytes: total, offset };
      const buffer = this.sendPool.acquire(framedMessageLength(header, length));
      const encoded = encodeFramedMessage(header, message.subarray(offset, offset + length), buffer);
      offset += length;
      this.inflightBytes += encoded.byteLength;
      const ok = out.write(encoded, () => {
        this.inflightBytes -= encoded.byteLength;
        if (!this.closed) this.sendPool.recycle(buffer);
        this.onWriteProgress();
      });
      if (!ok || this.inflightBytes > this.maxBufferedSendBytes) await this.waitWritable(out);
      this.checkSend();
    } while (offset < total);
  }

  /**
   * Zero-copy send: the concatenation of `parts` as one message, written from the caller's memory
   * (framed like send(), the same bytes on the wire). Resolves once the socket took every byte;
   * until then the parts must stay unchanged. Rejects, like send(), when sending fails or the
   * link closes (Node's http2 then drops what it had not written yet).
   */
  sendv(parts: readonly Uint8Array[]): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const waiter: Waiter<void> = {
        resolve: () => {
          this.unwritten.delete(waiter);
          resolve();
        },
        reject: (err) => {
          this.unwritten.delete(waiter);
          reject(err);
        },
      };
      const queued = this.sendChain.then(() => this.sendvNow(parts, waiter));
      this.sendChain = queued.catch(() => undefined);
      queued.catch((err: unknown) => waiter.reject(err as Error));
    });
  }

  private async sendvNow(parts: readonly Uint8Array[], waiter: Waiter<void>): Promise<void> {
    this.checkSend();
    const out = this.outbound;
    if (!out) throw new CollectiveError(`${this.peer(this.next)} is not subscribed`, this.next);
    this.unwritten.add(waiter);
    const index = this.nextMessage++;
    let total = 0;
    for (const p of parts) total += p.byteLength;
    let part = 0; // parts[part] from byte `within` is the next payload byte
    let within = 0;
    let offset = 0;
    do {
      const length = Math.min(this.chunkBytes, total - offset);
      const header = { message: index, messageBytes: total, offset };
      const head = this.heads.pop() ?? Buffer.allocUnsafeSlow(HEAD_BUFFER_BYTES);
      const frameHead = writeFramedHead(head, 0, header, length);
      let headLength = frameHead;
      const pieces: Buffer[] = [];
      let left = length;
      while (left > 0) {
        const p = parts[part]!;
        const n = Math.min(p.byteLength - within, left);
        if (n > 0) {
          if (pieces.length === 0 && n <= SMALL_PART_BYTES && headLength + n <= head.byteLength) {
            head.set(p.subarray(within, within + n), headLength); // e.g. the ring's 32-byte header
            headLength += n;
          } else {
            pieces.push(Buffer.from(p.buffer, p.byteOffset + within, n));
          }
        }
        left -= n;
        within += n;
        if (within === p.byteLength) {
          part++;
          within = 0;
        }
      }
      offset += length;
      const last = offset >= total;
      const frameBytes = frameHead + length;
      this.inflightBytes += frameBytes;
      const ok = out.write(new PreframedParts([head.subarray(0, headLength), ...pieces]), () => {
        this.inflightBytes -= frameBytes;
        if (!this.closed && this.heads.length < 64) this.heads.push(head);
        this.onWriteProgress();
        if (last) waiter.resolve();
      });
      if (!ok || this.inflightBytes > this.maxBufferedSendBytes) await this.waitWritable(out);
      this.checkSend();
    } while (offset < total);
  }

  private writable(out: SubscriberCall): boolean {
    return !out.writableNeedDrain && this.inflightBytes <= this.maxBufferedSendBytes;
  }

  private onWriteProgress(): void {
    const waiter = this.writableWaiter;
    if (!waiter) return;
    this.sendTimer?.refresh();
    if (this.outbound && this.writable(this.outbound)) {
      this.writableWaiter = undefined;
      this.clearSendTimer();
      waiter.resolve();
    }
  }

  private waitWritable(out: SubscriberCall): Promise<void> {
    this.checkSend();
    if (this.writable(out)) return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.writableWaiter = { resolve, reject };
      this.sendTimer = setTimeout(() => {
        this.sendTimer = undefined;
        this.failSend(new CollectiveError(
          `${this.peer(this.next)} stopped reading: rank ${this.rank} could not send for ${formatSeconds(this.timeoutMs)} s (collective timeout)`,
          this.next,
        ));
      }, this.timeoutMs);
    });
  }

  // ── close ──

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const err = this.closedError();
    this.clearRecvTimer();
    this.clearSendTimer();
    for (const waiter of this.recvWaiters.splice(0)) waiter.reject(err);
    this.writableWaiter?.reject(err);
    this.writableWaiter = undefined;
    this.outboundWaiter?.reject(err);
    this.outboundWaiter = undefined;
    this.rejectUnwritten(err);
    this.server.releaseSubscriber(this.subscriberListener);
    this.sendPool.clear();
    // Messages nobody will read: back to the pool, which frees collective memory once cleared.
    for (const message of this.messages.splice(0)) this.giveBackRecv(message);
    if (this.assembling) this.giveBackRecv(this.assembling.buf);
    this.assembling = undefined;
    this.recvPool.clear();
    this.collectiveRecvPool?.clear();
    const out = this.outbound;
    if (out && !out.cancelled && !out.writableEnded) out.end();
    this.inbound?.cancel();
    for (const client of this.clients.splice(0)) client.close();
  }
}

function clientCredentials(tls: TlsMaterial | undefined): ChannelCredentials {
  return tls ? credentials.createSsl(tls.ca) : credentials.createInsecure();
}

function clientOptions(options: ConnectRingOptions): ChannelOptions {
  const keepalive = keepaliveFor(options.timeoutMs, options.keepaliveTimeMs, options.keepaliveTimeoutMs);
  const channel: ChannelOptions = {
    'grpc-node.flow_control_window': FLOW_CONTROL_WINDOW_BYTES,
    'grpc.max_receive_message_length': MAX_CHUNK_BYTES + FRAME_OVERHEAD_BYTES,
    'grpc.max_send_message_length': MAX_REQUEST_BYTES,
    'grpc.keepalive_time_ms': keepalive.timeMs,
    'grpc.keepalive_timeout_ms': keepalive.ackTimeoutMs,
    'grpc.keepalive_permit_without_calls': 1,
    // Reconnect quickly while peers start; rendezvous does its own capped backoff.
    'grpc.initial_reconnect_backoff_ms': options.initialBackoffMs ?? 100,
    'grpc.min_reconnect_backoff_ms': options.initialBackoffMs ?? 100,
    'grpc.max_reconnect_backoff_ms': options.maxBackoffMs ?? 2_000,
    'grpc.enable_retries': 0,
    // A link owns its connections: closing it never affects another link in the process.
    'grpc.use_local_subchannel_pool': 1,
  };
  if (options.tls?.serverName) channel['grpc.ssl_target_name_override'] = options.tls.serverName;
  return channel;
}

/**
 * Joins the ring: waits until every peer answers Ping as the expected job/rank/world size, opens
 * the Subscribe stream from the previous rank and waits for the next rank to subscribe, all within
 * connectDeadlineMs. Rejects with a CollectiveError naming the peers that did not come.
 */
export async function connectRing(options: ConnectRingOptions): Promise<GrpcRingLink> {
  const { rank, worldSize, peers, jobId, token, timeoutMs, connectDeadlineMs } = options;
  checkIdentity(rank, worldSize, jobId);
  checkTokenUsable(token);
  if (peers.length !== worldSize) throw new RangeError(`peers lists ${peers.length} addresses for world size ${worldSize}`);
  if (!(timeoutMs > 0)) throw new RangeError(`timeoutMs must be positive, got ${timeoutMs}`);
  if (!(connectDeadlineMs > 0)) throw new RangeError(`connectDeadlineMs must be positive, got ${connectDeadlineMs}`);
  const chunkBytes = options.chunkBytes ?? DEFAULT_CHUNK_BYTES;
  if (!Number.isInteger(chunkBytes) || chunkBytes < 1 || chunkBytes > MAX_CHUNK_BYTES) {
    throw new RangeError(`chunkBytes must be an integer in [1, ${MAX_CHUNK_BYTES}], got ${chunkBytes}`);
  }
  const server = options.server;
  if (!(server instanceof GrpcCollectiveServer)) throw new TypeError('server must come from startCollectiveServer');
  if (server.rank !== rank || server.worldSize !== worldSize || server.jobId !== jobId) {
    throw new RangeError(`the server answers as rank ${server.rank}/${server.worldSize} of job ${JSON.stringify(server.jobId)}, not rank ${rank}/${worldSize} of job ${JSON.stringify(jobId)}`);
  }
  const deadline = Date.now() + connectDeadlineMs;
  raiseMallocTrimThreshold();
  const link = new Link(
    rank,
    worldSize,
    [...peers],
    server,
    timeoutMs,
    chunkBytes,
    options.maxBufferedSendBytes ?? 16 * MiB,
    options.maxBufferedRecvBytes ?? 32 * MiB,
  );
  const abort = (): void => void link.close();
  options.signal?.addEventListener('abort', abort, { once: true });
  const metadata = bearerMetadata(token);
  const creds = clientCredentials(options.tls);
  const channelOptions = clientOptions(options);
  const clients = peers.map((address) => new CollectivePeerClient(address, creds, channelOptions));
  try {
    link.listenForSubscriber();
    const rendezvousOptions: Parameters<typeof rendezvous>[0] = {
      rank,
      worldSize,
      jobId,
      peers,
      clients,
      metadata,
      deadline,
      deadlineMs: connectDeadlineMs,
    };
    if (options.initialBackoffMs !== undefined) rendezvousOptions.initialBackoffMs = options.initialBackoffMs;
    if (options.maxBackoffMs !== undefined) rendezvousOptions.maxBackoffMs = options.maxBackoffMs;
    if (options.signal) rendezvousOptions.signal = options.signal;
    await rendezvous(rendezvousOptions);
    // Keep only the channel to the previous rank.
    const prevClient = clients[link.prev]!;
    for (const client of clients) if (client !== prevClient) client.close();
    link.addClient(prevClient);
    let backoff = options.initialBackoffMs ?? 50;
    for (;;) {
      try {
        await link.subscribe(prevClient, metadata, jobId, deadline);
        break;
      } catch (err) {
        const retriable = (err as { retriable?: boolean }).retriable === true;
        if (!retriable || Date.now() + backoff >= deadline) throw err;
        await new Promise((resolve) => setTimeout(resolve, backoff));
        backoff = Math.min(backoff * 2, options.maxBackoffMs ?? 2_000);
      }
    }
    await link.waitForSubscriber(deadline, connectDeadlineMs);
    if (options.signal?.aborted) throw new CollectiveError(`rank ${rank}: connecting was aborted`);
    return link;
  } catch (err) {
    for (const client of clients) client.close();
    await link.close();
    if (options.signal?.aborted) throw new CollectiveError(`rank ${rank}: connecting to the ring was aborted`);
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', abort);
  }
}
