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
   * The next message from rank (rank - 1 + worldSize) % worldSize, in send order. Rejects with a
   * CollectiveError when that peer fails, disconnects or stays silent past the link's timeout.
   */
  recv(): Promise<Uint8Array>;
  /**
   * Optional: the caller is done with a message recv() returned and will not touch its bytes
   * again, so the link may reuse that memory for a later message. Calling it is never required
   * (an unreleased message is ordinary garbage); the gRPC link uses it to avoid allocating fresh
   * buffers, which dominated its cost (transport/README.md).
   */
  release?(message: Uint8Array): void;
  /** Releases connections; pending operations reject. */
  close(): Promise<void>;
}
