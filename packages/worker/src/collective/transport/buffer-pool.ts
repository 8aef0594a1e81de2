/**
 * Reused byte buffers for the link's frames. Fresh multi-MiB Buffers are the most expensive thing
 * on the data path here (every page faulted in anew, and the churn drives V8 into major GCs; see
 * README.md), so the link encodes outgoing frames into, and assembles incoming messages in,
 * buffers that go back to a pool once the socket or the consumer is done with them.
 *
 * A pool given the collective memory (collective-memory.ts) takes its buffers from there, so that
 * the ring sums received messages into collective buffers with SIMD. Such buffers are not
 * garbage-collected: the pool frees what it drops, and what is given back after clear().
 */
import type { CollectiveMemory } from '../collective-memory.js';

/** Buffer capacities are multiples of this, so messages of slightly different sizes share buffers. */
const GRANULE = 64 * 1024;

export class BufferPool {
  private readonly free: Buffer[] = [];
  private freeBytes = 0;
  /**
   * Buffers handed out by lend(), by their ArrayBuffer, until given back. Weak: a holder that never
   * gives a buffer back (release() is optional) just lets it become garbage.
   */
  private lent = new WeakMap<ArrayBufferLike, Buffer>();
  /** Lent buffers of the collective memory (which all share one memory), by first byte. */
  private readonly lentShared = new Map<number, Buffer>();
  private cleared = false;
  /** Buffers allocated (for tests and diagnostics). */
  allocated = 0;

  /** Keeps at most `maxFreeBytes` of idle buffers; takes new ones from `memory` when given (and not full). */
  constructor(
    private readonly maxFreeBytes: number,
    private readonly memory?: CollectiveMemory,
  ) {}

  /** A whole buffer of at least `bytes` bytes (its own ArrayBuffer or collective block, offset at its start), reused when one is free. */
  acquire(bytes: number): Buffer {
    const free = this.free;
    for (let i = free.length - 1; i >= 0; i--) {
      const b = free[i]!;
      if (b.byteLength >= bytes) {
        free[i] = free[free.length - 1]!;
        free.pop();
        this.freeBytes -= b.byteLength;
        return b;
      }
    }
    this.allocated++;
    const size = Math.max(GRANULE, Math.ceil(bytes / GRANULE) * GRANULE);
    const block = this.memory?.allocate(size);
    if (block) return Buffer.from(block.buffer, block.byteOffset, block.byteLength);
    // allocUnsafeSlow: never a slice of Node's shared pool, so the ArrayBuffer identifies it.
    return Buffer.allocUnsafeSlow(size);
  }

  /** Returns a buffer from acquire() to the pool (dropped when the pool is full or cleared). */
  recycle(buffer: Buffer): void {
    if (this.cleared || this.freeBytes + buffer.byteLength > this.maxFreeBytes) {
      this.drop(buffer);
      return;
    }
    this.free.push(buffer);
    this.freeBytes += buffer.byteLength;
  }

  private drop(buffer: Buffer): void {
    if (this.memory?.owns(buffer)) this.memory.free(buffer);
  }

  /** Exactly `bytes` bytes at the start of a pooled buffer, remembered until giveBack(). */
  lend(bytes: number): Buffer {
    const whole = this.acquire(bytes);
    if (this.memory?.owns(whole)) this.lentShared.set(whole.byteOffset, whole);
    else this.lent.set(whole.buffer, whole);
    return whole.subarray(0, bytes);
  }

  /** Takes back the buffer a view from lend() lies in; false when it is not one (then nothing happens). */
  giveBack(view: Uint8Array): boolean {
    let whole: Buffer | undefined;
    if (this.memory?.owns(view)) {
      // Few buffers are lent at a time (the link's receive queue): a scan is cheap.
      const at = view.byteOffset;
      for (const [start, b] of this.lentShared) {
        if (at >= start && at < start + b.byteLength) {
          whole = b;
          this.lentShared.delete(start);
          break;
        }
      }
    } else {
      whole = this.lent.get(view.buffer);
      if (whole) this.lent.delete(view.buffer);
    }
    if (!whole) return false;
    this.recycle(whole);
    return true;
  }

  /**
   * Drops every idle buffer; buffers still lent are freed when given back. Ordinary ones that
   * never come back become garbage once their holders let go.
   */
  clear(): void {
    for (const b of this.free) this.drop(b);
    this.free.length = 0;
    this.freeBytes = 0;
    this.cleared = true;
  }
}

let mallocThresholdsRaised = false;

/**
 * Makes glibc keep freed memory mapped instead of returning it to the kernel, so that the memory
 * Node itself allocates per socket read (a 64 KiB buffer per read(), plus a copy of it, freed in
 * batches when V8 collects the ArrayBuffers) is reused instead of faulted in anew. glibc trims
 * the top of its heap as soon as more than M_TRIM_THRESHOLD (128 KiB by default) is free there;
 * after V8 frees a batch of read buffers that happens every time, and every page of the next
 * batch faults (measured: ~200 k page faults per GB of a 4 MiB all-reduce; a fault costs
 * ~10-20 µs on this VM). glibc raises the thresholds by itself when a block it had mmap-ed is
 * freed (mmap threshold := the block's size, trim threshold := twice that, for blocks up to
 * 32 MiB including glibc's header and page rounding): so allocate one 30 MiB block, never
 * touched (it costs no memory), and let it go. Once V8 collects it (the next young-generation
 * GC) the mmap threshold is 30 MiB and the trim threshold 60 MiB for the rest of the process.
 * Harmless elsewhere: other allocators (musl) just map and unmap the block, and a threshold the
 * user set (MALLOC_TRIM_THRESHOLD_, GLIBC_TUNABLES) turns glibc's adjustment off.
 */
export function raiseMallocTrimThreshold(): void {
  if (mallocThresholdsRaised) return;
  mallocThresholdsRaised = true;
  Buffer.allocUnsafeSlow(30 * 1024 * 1024);
}
