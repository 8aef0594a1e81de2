/**
 * Every use of @grpc/grpc-js private internals by the collective transport, in one place.
 *
 * Why. Profiles of the ring link (perf + --cpu-prof, see README.md in this folder) showed that the
 * bulk path was dominated not by copying but by FRESH MEMORY: grpc-js allocates a new Buffer for
 * every message it sends (ServerInterceptingCall.serializeMessage: allocUnsafe(n + 5) + copy) and
 * for every message it receives (StreamDecoder: Buffer.concat of the 16 KiB DATA chunks). For
 * messages of 1-4 MiB glibc serves those with mmap/munmap, so every page is faulted in anew; on
 * this VM a page fault costs ~10-20 µs and copying into fresh memory measured 1.1-2.7 CPU s/GB
 * against 0.03-0.05 s/GB into reused memory (/tmp probe, 4 MiB buffers). The churn also drove V8
 * into back-to-back concurrent major GCs (external memory pressure): ~20 % of all CPU samples.
 *
 * What. Three confined hooks, each checked when this module loads (so a grpc-js upgrade that
 * changes them fails at startup, not with corrupted gradients) and again on the live objects:
 *
 *  1. disableNagleOnAcceptedSockets: grpc-js sets TCP_NODELAY only on the sockets it dials.
 *  2. sendPreframedMessages: on one server Subscribe call, replace serializeMessage (which copies
 *     every response into a fresh buffer to prepend the 5-byte gRPC prefix) by a pass-through; the
 *     link encodes the prefix itself into reused buffers (encodeFramedMessage). Same bytes on the
 *     wire. Node's http2 sends the buffer without copying and calls the write callback once the
 *     socket took it, so the link recycles the buffer from that callback. A message may also be
 *     given as PreframedParts (a small head + views of the caller's memory): its parts go to the
 *     HTTP/2 stream as one vectored write, so the payload is never copied in user space (the
 *     ring's two send copies were ~8 % of a rank's CPU).
 *  3. receiveIntoPool: on one client Subscribe call, replace the subchannel call's StreamDecoder
 *     by PooledMessageDecoder, which assembles each gRPC message into a buffer from the link's
 *     receive pool; the ring hands a message back (RingLink.release) once it has summed it. It
 *     also stops Node's read-ahead tick on that HTTP/2 stream (skipReadAhead): ~6 % of a rank's
 *     CPU went to scheduling it once per 16 KiB DATA frame for nothing.
 *
 * Pinned: @grpc/grpc-js 1.14.7 (package.json pins the exact version).
 */
import { createRequire } from 'node:module';
import type { Server as NetServer, Socket } from 'node:net';
import { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';

const require = createRequire(import.meta.url);

const GRPC_PREFIX_BYTES = 5;

function internalsChanged(what: string): Error {
  return new Error(
    `internal: @grpc/grpc-js ${grpcVersion()} changed (${what}); the collective transport relies on 1.14.7 internals ` +
      '(see packages/worker/src/collective/transport/grpc-internals.ts)',
  );
}

function grpcVersion(): string {
  try {
    return String((require('@grpc/grpc-js/package.json') as { version?: unknown }).version);
  } catch {
    return '(unknown version)';
  }
}

type Ctor = abstract new (...args: never[]) => object;

function internalClass(module: string, name: string): Ctor {
  let exports: Record<string, unknown>;
  try {
    exports = require(`@grpc/grpc-js/build/src/${module}.js`) as Record<string, unknown>;
  } catch (err) {
    throw internalsChanged(`cannot load build/src/${module}.js: ${(err as Error).message}`);
  }
  const ctor = exports[name];
  if (typeof ctor !== 'function') throw internalsChanged(`build/src/${module}.js no longer exports ${name}`);
  return ctor as Ctor;
}

function requireMethod(ctor: Ctor, method: string): void {
  if (typeof (ctor.prototype as Record<string, unknown>)[method] !== 'function') throw internalsChanged(`${ctor.name}.prototype.${method} is gone`);
}

// ── load-time checks: every class and method the hooks below touch ──

if ((require('@grpc/grpc-js') as typeof grpc).Server !== grpc.Server) {
  throw internalsChanged('require() and import resolve to different copies of the package');
}
const BaseServerInterceptingCall = internalClass('server-interceptors', 'BaseServerInterceptingCall');
requireMethod(BaseServerInterceptingCall, 'serializeMessage');
requireMethod(BaseServerInterceptingCall, 'sendMessage');
requireMethod(BaseServerInterceptingCall, 'checkCancelled');
requireMethod(BaseServerInterceptingCall, 'maybeSendMetadata');
requireMethod(BaseServerInterceptingCall, 'sendStatus');
const ResolvingCall = internalClass('resolving-call', 'ResolvingCall');
const RetryingCall = internalClass('retrying-call', 'RetryingCall');
const LoadBalancingCall = internalClass('load-balancing-call', 'LoadBalancingCall');
const Http2SubchannelCall = internalClass('subchannel-call', 'Http2SubchannelCall');
const StreamDecoder = internalClass('stream-decoder', 'StreamDecoder');
requireMethod(StreamDecoder, 'write');
{
  // Its state is read when taking over in the middle of a message (see PooledMessageDecoder).
  const probe = new (StreamDecoder as unknown as new (max: number) => Partial<StreamDecoderLike>)(-1);
  if (probe.readState !== 0 || probe.readSizeRemaining !== 4 || probe.readMessageRemaining !== 0 || probe.maxReadMessageLength !== -1) {
    throw internalsChanged('StreamDecoder no longer keeps readState / readSizeRemaining / readMessageRemaining / maxReadMessageLength');
  }
}

{
  // skipReadAhead relies on Readable keeping a settable `readingMore` flag in its state.
  const probe = new Readable({ read() {} }) as unknown as { _readableState?: { readingMore?: unknown } };
  const state = probe._readableState;
  if (!state || state.readingMore !== false) throw internalsChanged(`node ${process.version}: Readable state no longer has readingMore`);
  state.readingMore = true;
  if (state.readingMore !== true) throw internalsChanged(`node ${process.version}: Readable state's readingMore cannot be set`);
}

// ── 1. TCP_NODELAY on accepted sockets ──

/**
 * Bulk data flows server → client, but grpc-js sets TCP_NODELAY only on the sockets it dials, not
 * on those its server accepts. With Nagle's algorithm on, the tail of every message waits for the
 * peer's delayed ACK (40 ms on Linux): measured here, a 1 MiB message took 46 ms one way, and a
 * 16 MiB all-reduce between 2 ranks ran at 0.09 GB/s. grpc-js keeps its http2 servers in a
 * private map; reach it and set no-delay on every accepted socket. Call after bindAsync.
 */
export function disableNagleOnAcceptedSockets(server: grpc.Server): void {
  const http2Servers = (server as unknown as { http2Servers?: Map<NetServer, unknown> }).http2Servers;
  if (!(http2Servers instanceof Map)) throw internalsChanged('Server.http2Servers is gone; TCP_NODELAY cannot be set');
  for (const http2Server of http2Servers.keys()) {
    http2Server.on('connection', (socket: Socket) => socket.setNoDelay(true));
  }
}

// ── 2. pre-framed responses on a server call ──

/**
 * One gRPC message as consecutive byte ranges written without copying: `parts[0]` starts with the
 * 5-byte gRPC prefix announcing `byteLength - 5` bytes, the rest follow back to back (views of
 * the caller's memory, which must stay unchanged until the write callback).
 */
export class PreframedParts {
  readonly byteLength: number;
  constructor(readonly parts: readonly Buffer[]) {
    let n = 0;
    for (const p of parts) n += p.byteLength;
    this.byteLength = n;
  }
}

/** What sendPreframedMessages uses of grpc-js's BaseServerInterceptingCall. */
interface ServerCallInternals {
  serializeMessage(value: unknown): Buffer;
  sendMessage(message: unknown, callback: () => void): void;
  checkCancelled(): boolean;
  maybeSendMetadata(): void;
  sendStatus(status: { code: grpc.status; details: string; metadata: grpc.Metadata | null }): void;
  stream: import('node:stream').Writable;
  callEventTracker?: { addMessageSent(): void };
}

/**
 * Makes grpc-js write the objects this server streaming call is given as-is: each must be a
 * complete gRPC message (encodeFramedMessage) or PreframedParts, which is checked. Throws when
 * the call is not the shape grpc-js 1.14.7 builds (a server without interceptors).
 */
export function sendPreframedMessages(call: grpc.ServerWritableStream<unknown, unknown>): void {
  const inner = (call as unknown as { call?: unknown }).call;
  if (!(inner instanceof BaseServerInterceptingCall)) throw internalsChanged('a server call no longer wraps a BaseServerInterceptingCall');
  const internals = inner as unknown as ServerCallInternals;
  const stream = internals.stream as Partial<import('node:stream').Writable> | undefined;
  if (!stream || typeof stream.write !== 'function' || typeof stream.cork !== 'function' || typeof stream.uncork !== 'function') {
    throw internalsChanged('BaseServerInterceptingCall.stream is no longer a writable HTTP/2 stream');
  }
  internals.serializeMessage = passThrough;
  const sendMessage = internals.sendMessage;
  internals.sendMessage = function (this: ServerCallInternals, message: unknown, callback: () => void): void {
    if (message instanceof PreframedParts) sendParts(this, message, callback);
    else sendMessage.call(this, message, callback);
  };
}

/** BaseServerInterceptingCall.sendMessage for PreframedParts: the same steps, one vectored write instead of a copy. */
function sendParts(call: ServerCallInternals, message: PreframedParts, callback: () => void): void {
  if (call.checkCancelled()) return; // as grpc-js: the call is over and its stream reports why
  const { parts } = message;
  const head = parts[0];
  if (!head || head.byteLength < GRPC_PREFIX_BYTES || head[0] !== 0 || head.readUInt32BE(1) !== message.byteLength - GRPC_PREFIX_BYTES) {
    call.sendStatus({ code: grpc.status.INTERNAL, details: 'collective transport: PreframedParts must start with a gRPC prefix announcing the rest', metadata: null });
    return;
  }
  call.maybeSendMetadata();
  const stream = call.stream;
  const last = parts.length - 1;
  // Corked, the parts reach the HTTP/2 stream as one writev (one write request, no copy).
  stream.cork();
  for (let i = 0; i < last; i++) stream.write(parts[i]);
  stream.write(parts[last], (error?: Error | null) => {
    if (error) {
      call.sendStatus({ code: grpc.status.INTERNAL, details: 'Internal server error', metadata: null });
      return;
    }
    call.callEventTracker?.addMessageSent();
    callback();
  });
  stream.uncork();
}

function passThrough(value: unknown): Buffer {
  // grpc-js turns a throw here into an INTERNAL status on the stream: loud, never silent corruption.
  if (!Buffer.isBuffer(value) || value.byteLength < GRPC_PREFIX_BYTES || value[0] !== 0 || value.readUInt32BE(1) !== value.byteLength - GRPC_PREFIX_BYTES) {
    throw new Error('collective transport: a Subscribe response must be a gRPC-framed message (encodeFramedMessage)');
  }
  return value;
}

// ── 3. pooled message assembly on a client call ──

/** Hands out buffers for received messages (the link's receive pool). */
export interface MessageBufferSource {
  /** A Buffer of exactly `bytes` bytes, 8-byte aligned, the link can later take back. */
  acquire(bytes: number): Buffer;
}

/** What is used of grpc-js's StreamDecoder (readState: 0 between messages, 1 reading the length, 2 the body). */
interface StreamDecoderLike {
  write(data: Buffer): Buffer[];
  readState: number;
  readSizeRemaining: number;
  readMessageRemaining: number;
  maxReadMessageLength: number;
}

/**
 * grpc-js's StreamDecoder contract (write(chunk) → complete length-prefixed messages, prefix
 * included; a throw becomes RESOURCE_EXHAUSTED), assembling into pooled buffers. When it takes
 * over in the middle of a message, the decoder it replaces is fed exactly the rest of that
 * message first.
 */
export class PooledMessageDecoder {
  private readonly prefix = Buffer.alloc(GRPC_PREFIX_BYTES);
  private prefixFilled = 0;
  private message: Buffer | undefined;
  private filled = 0;
  /** Messages assembled here (the rest went through grpc-js's decoder). */
  pooledMessages = 0;

  constructor(
    private readonly maxLength: number,
    private readonly source: MessageBufferSource,
    private previous: StreamDecoderLike | undefined,
    /** Called for every chunk before it is decoded (receiveIntoPool: skipReadAhead). */
    private readonly onChunk?: () => void,
  ) {}

  write(data: Buffer): Buffer[] {
    this.onChunk?.();
    const out: Buffer[] = [];
    let at = 0;
    const end = data.byteLength;
    while (this.previous && at < end) {
      const p = this.previous;
      if (p.readState === 0) {
        this.previous = undefined;
        break;
      }
      const rest = p.readState === 1 ? p.readSizeRemaining : p.readState === 2 ? p.readMessageRemaining : -1;
      if (!(rest > 0)) throw internalsChanged(`StreamDecoder in an unknown state (readState ${p.readState}, ${rest} bytes to go)`);
      const n = Math.min(rest, end - at);
      out.push(...p.write(data.subarray(at, at + n)));
      at += n;
    }
    if (this.previous && this.previous.readState === 0) this.previous = undefined;
    if (this.previous) return out;
    while (at < end) {
      let m = this.message;
      if (!m) {
        while (this.prefixFilled < GRPC_PREFIX_BYTES && at < end) this.prefix[this.prefixFilled++] = data[at++]!;
        if (this.prefixFilled < GRPC_PREFIX_BYTES) break;
        this.prefixFilled = 0;
        const length = this.prefix.readUInt32BE(1);
        if (this.maxLength !== -1 && length > this.maxLength) throw new Error(`Received message larger than max (${length} vs ${this.maxLength})`);
        m = this.source.acquire(GRPC_PREFIX_BYTES + length);
        this.prefix.copy(m, 0);
        this.message = m;
        this.filled = GRPC_PREFIX_BYTES;
      }
      const n = Math.min(m.byteLength - this.filled, end - at);
      if (n > 0) {
        data.copy(m, this.filled, at, at + n);
        this.filled += n;
        at += n;
      }
      if (this.filled === m.byteLength) {
        out.push(m);
        this.pooledMessages++;
        this.message = undefined;
      }
    }
    // A zero-length message whose prefix ended exactly at the end of the chunk.
    const m = this.message;
    if (m && this.filled === m.byteLength) {
      out.push(m);
      this.pooledMessages++;
      this.message = undefined;
    }
    return out;
  }
}

/**
 * Makes the client streaming call `stream` assemble received messages into buffers from
 * `source`. Call once the call has started (its response headers arrived). Throws when grpc-js's
 * call chain is not the shape 1.14.7 builds.
 */
export function receiveIntoPool(stream: grpc.ClientReadableStream<unknown>, source: MessageBufferSource): PooledMessageDecoder {
  const hop = (from: unknown, key: string): unknown => (from !== null && typeof from === 'object' ? (from as Record<string, unknown>)[key] : undefined);
  const resolving = hop(hop(stream, 'call'), 'call');
  if (!(resolving instanceof ResolvingCall)) throw internalsChanged('ClientReadableStream.call.call is no longer a ResolvingCall');
  const retrying = hop(resolving, 'child');
  if (!(retrying instanceof RetryingCall)) throw internalsChanged('ResolvingCall.child is no longer a RetryingCall');
  const attempts = hop(retrying, 'underlyingCalls');
  if (!Array.isArray(attempts) || attempts.length !== 1) throw internalsChanged('RetryingCall.underlyingCalls is not one attempt');
  const balancing = hop(attempts[0], 'call');
  if (!(balancing instanceof LoadBalancingCall)) throw internalsChanged('the attempt is no longer a LoadBalancingCall');
  const subchannelCall = hop(balancing, 'child');
  if (!(subchannelCall instanceof Http2SubchannelCall)) throw internalsChanged('LoadBalancingCall.child is no longer an Http2SubchannelCall');
  const decoder = hop(subchannelCall, 'decoder') as StreamDecoderLike | undefined;
  if (!(decoder instanceof StreamDecoder) || typeof decoder.readState !== 'number' || typeof decoder.maxReadMessageLength !== 'number') {
    throw internalsChanged('Http2SubchannelCall.decoder is no longer a StreamDecoder');
  }
  const http2Stream = hop(subchannelCall, 'http2Stream');
  if (!(http2Stream instanceof Readable)) throw internalsChanged('Http2SubchannelCall.http2Stream is no longer a readable stream');
  const pooled = new PooledMessageDecoder(
    decoder.maxReadMessageLength,
    source,
    decoder.readState === 0 ? undefined : decoder,
    skipReadAhead(http2Stream),
  );
  (subchannelCall as unknown as { decoder: unknown }).decoder = pooled;
  return pooled;
}

/**
 * For a stream that pushes data by itself (an HTTP/2 stream: Node's C++ side delivers every DATA
 * frame while the stream is reading), returns a function to call from its 'data' handler that
 * keeps Readable from scheduling its read-ahead tick after the chunk. Node does that per pushed
 * chunk (maybeReadMore: a process.nextTick whose object literal takes V8's slow path, then
 * read(0) → _read → the native readStart), i.e. per 16 KiB DATA frame; profiles put it at ~6 %
 * of a rank's CPU. The read-ahead is redundant here: reading only stops when Readable's buffer is
 * full (push() returned false), and then read() restarts it as soon as the consumer drains the
 * buffer, without the tick. Setting `readingMore` is what the tick itself does while pending.
 */
export function skipReadAhead(stream: Readable): () => void {
  const state = (stream as unknown as { _readableState?: { readingMore?: boolean } })._readableState;
  if (!state || typeof state.readingMore !== 'boolean') throw internalsChanged(`node ${process.version}: the stream's Readable state has no readingMore`);
  return () => {
    state.readingMore = true;
  };
}
