/**
 * Reused byte buffers for the link's frames. Fresh multi-MiB Buffers are the most expensive thing
 * on the data path here (every page faulted in anew, and the churn drives V8 into major GCs; see
 * README.md), so the link encodes outgoing frames into, and assembles incoming messages in,
 * buffers that go back to a pool once the socket or the consumer is done with them.
 */

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
  /** Buffers allocated (for tests and diagnostics). */
  allocated = 0;

  /** Keeps at most `maxFreeBytes` of idle buffers. */
  constructor(private readonly maxFreeBytes: number) {}

  /** A whole buffer of at least `bytes` bytes (its own ArrayBuffer, offset 0), reused when one is free. */
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
    // allocUnsafeSlow: never a slice of Node's shared pool, so the ArrayBuffer identifies it.
    return Buffer.allocUnsafeSlow(Math.max(GRANULE, Math.ceil(bytes / GRANULE) * GRANULE));
  }

  /** Returns a buffer from acquire() to the pool (dropped when the pool is full). */
  recycle(buffer: Buffer): void {
    if (this.freeBytes + buffer.byteLength > this.maxFreeBytes) return;
    this.free.push(buffer);
    this.freeBytes += buffer.byteLength;
  }

  /** Exactly `bytes` bytes at the start of a pooled buffer, remembered until giveBack(). */
  lend(bytes: number): Buffer {
    const whole = this.acquire(bytes);
    this.lent.set(whole.buffer, whole);
    return whole.subarray(0, bytes);
  }

  /** Takes back the buffer a view from lend() lies in; false when it is not one (then nothing happens). */
  giveBack(view: Uint8Array): boolean {
    const whole = this.lent.get(view.buffer);
    if (!whole) return false;
    this.lent.delete(view.buffer);
    this.recycle(whole);
    return true;
  }

  /** Drops every buffer (lent ones become ordinary garbage once their holders let go). */
  clear(): void {
    this.free.length = 0;
    this.freeBytes = 0;
    this.lent = new WeakMap();
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
