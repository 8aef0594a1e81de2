/**
 * The only thing the collective algorithms know about the network: each rank sends byte messages
 * to the next rank in the ring and receives them, in order, from the previous one. gRPC is one
 * implementation (transport/); an in-memory one serves tests and world size 1. Keeping the
 * algorithm unaware of the transport makes it testable in one process.
 */

/** A failure of the collective, naming the peer involved (and the step, when the caller knows it). */
export class CollectiveError extends Error {
  override readonly name = 'CollectiveError';
  constructor(message: string, readonly peer?: number) {
    super(message);
  }
}

export interface RingLink {
  readonly rank: number;
  readonly worldSize: number;
  /**
   * Sends one message to rank (rank + 1) % worldSize. Resolves once the transport accepted it
   * (respecting backpressure); the bytes may be reused after that.
   */
  send(message: Uint8Array): Promise<void>;
  /**
   * Optional zero-copy send: the concatenation of `parts` as one message (the receiver sees one
   * message, as from send()), read from the caller's memory while it is transmitted. Resolves
   * once the transport no longer needs the bytes; until then the parts must stay unchanged (that
   * is the difference from send(), which resolves once the bytes are accepted). Ordered with
   * send() calls. Rejects like send() when the peer fails; the transport then drops what it had
   * not transmitted yet.
   */
  sendv?(parts: readonly Uint8Array[]): Promise<void>;
  /**
   * The next message from rank (rank - 1 + worldSize) % worldSize, in send order. Rejects with a
   * CollectiveError when that peer fails, disconnects or stays silent past the link's timeout.
   */
  recv(): Promise<Uint8Array>;
  /**
   * Optional: the caller is done with a message recv() returned and will not touch its bytes (nor
   * any view of them) again, so the link may reuse that memory for a later message. The gRPC link
   * uses it to avoid allocating fresh buffers, which dominated its cost (transport/README.md).
   * A caller that never calls it gets ordinary garbage-collected messages. Once a caller has
   * called it, the gRPC link places later messages in the collective memory (where the ring sums
   * with SIMD; collective-memory.ts), which the garbage collector does not reclaim: from then on
   * the caller must release every message it receives, as the ring does. Messages still queued
   * when the link closes are reclaimed by close().
   */
  release?(message: Uint8Array): void;
  /** Releases connections; pending operations reject. */
  close(): Promise<void>;
}
