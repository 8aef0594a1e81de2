/**
 * Memory the collective can sum in with SIMD: one WebAssembly memory per process, from which the
 * gRPC link takes its receive buffers and GradientBucket (or any caller, allocateCollectiveBuffer)
 * its float32 buffers. When both the received message and the destination lie in it, the
 * reduce-scatter sum `dst[i] += src[i]` runs as a WebAssembly f32x4 loop instead of a JavaScript
 * loop: ~3-4x faster per element here (V8 does not vectorise JavaScript), which measured 11-15 %
 * less CPU for a whole world-2 all-reduce (the sum was the largest single item of a rank's
 * profile after the kernel's TCP work). Anything else is summed by the JavaScript loop, so this
 * is an optimisation, never a requirement.
 *
 * One fixed reservation. A WebAssembly memory cannot grow without detaching its ArrayBuffer (every
 * view handed out would silently become empty), and a shared one, which grows in place, is a
 * SharedArrayBuffer, which V8 copies into and out of with slow relaxed-atomic loops (measured 2.5x
 * slower memcpy, which cost more than SIMD saved). So the memory is created once at its full size
 * (4 GiB, or less where the system refuses): that is address space, not memory; pages are backed
 * only when first written, like any anonymous mapping.
 *
 * Results are bitwise those of the JavaScript loop: f32x4.add is IEEE binary32 addition (round to
 * nearest even, subnormals kept), and JavaScript's float32 `a + b` computed in binary64 and
 * rounded to binary32 is correctly rounded too (53 >= 2·24 + 2). Only NaN payload bits may differ.
 *
 * Blocks are handed out in 64 KiB pages, first fit, coalesced when freed, and never returned to
 * the system (reused instead: no page is faulted in twice). Nothing is freed by the garbage
 * collector: a block stays allocated until free() (all blocks share one ArrayBuffer, so the
 * collector cannot tell whether a block is still used).
 */

const PAGE = 64 * 1024;
/** 4 GiB minus a page: wasm32 addresses, and `dst + bytes` never wraps in the loop below. */
const MAX_PAGES = 65535;
/** Reservations tried in turn until the system grants one. */
const RESERVATIONS = [MAX_PAGES, 16384, 4096];

/**
 * add(dst, src, bytes): f32 dst[i] += src[i] over `bytes` (a multiple of 32) at byte addresses
 * dst and src of the imported memory. Hand-assembled to avoid a build step; the WAT:
 *
 *   (module
 *     (import "m" "memory" (memory 1 65535))
 *     (func (export "add") (param $dst i32) (param $src i32) (param $bytes i32)
 *       (local $end i32)
 *       (local.set $end (i32.add (local.get $dst) (local.get $bytes)))
 *       (block $done (loop $next
 *         (br_if $done (i32.ge_u (local.get $dst) (local.get $end)))
 *         (v128.store offset=0 (local.get $dst)
 *           (f32x4.add (v128.load offset=0 (local.get $dst)) (v128.load offset=0 (local.get $src))))
 *         (v128.store offset=16 (local.get $dst)
 *           (f32x4.add (v128.load offset=16 (local.get $dst)) (v128.load offset=16 (local.get $src))))
 *         (local.set $dst (i32.add (local.get $dst) (i32.const 32)))
 *         (local.set $src (i32.add (local.get $src) (i32.const 32)))
 *         (br $next)))))
 */
function addModuleBytes(): Uint8Array {
  const leb = (n: number): number[] => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n !== 0) b |= 0x80;
      out.push(b);
    } while (n !== 0);
    return out;
  };
  const section = (id: number, content: number[]): number[] => [id, ...leb(content.length), ...content];
  const get = (i: number) => [0x20, i];
  const set = (i: number) => [0x21, i];
  const load = (offset: number) => [0xfd, 0x00, 0x04, ...leb(offset)]; // v128.load align=16
  const store = (offset: number) => [0xfd, 0x0b, 0x04, ...leb(offset)]; // v128.store align=16
  const f32x4Add = [0xfd, 0xe4, 0x01];
  const lane = (offset: number) => [...get(0), ...get(0), ...load(offset), ...get(1), ...load(offset), ...f32x4Add, ...store(offset)];
  const body = [
    0x01, 0x01, 0x7f, // one local i32 ($end)
    ...get(0), ...get(2), 0x6a, ...set(3), // end = dst + bytes
    0x02, 0x40, 0x03, 0x40, // block, loop
    ...get(0), ...get(3), 0x4f, 0x0d, 0x01, // br_if 1 (dst >= end, unsigned)
    ...lane(0),
    ...lane(16),
    ...get(0), 0x41, 0x20, 0x6a, ...set(0), // dst += 32
    ...get(1), 0x41, 0x20, 0x6a, ...set(1), // src += 32
    0x0c, 0x00, 0x0b, 0x0b, // br 0, end loop, end block
    0x0b, // end func
  ];
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
    ...section(1, [0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00]), // type (i32 i32 i32) -> ()
    ...section(2, [0x01, 0x01, 0x6d, 0x06, ...[...'memory'].map((c) => c.charCodeAt(0)), 0x02, 0x01, ...leb(1), ...leb(MAX_PAGES)]), // import m.memory, 1..MAX pages
    ...section(3, [0x01, 0x00]), // one function of type 0
    ...section(7, [0x01, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00]), // export "add"
    ...section(10, [0x01, ...leb(body.length), ...body]),
  ]);
}

/** The parts of the WebAssembly JS API used here (the project's TypeScript libs do not declare it). */
interface WasmMemory {
  readonly buffer: ArrayBuffer;
}
interface WasmApi {
  Memory: new (descriptor: { initial: number; maximum: number }) => WasmMemory;
  Module: new (bytes: Uint8Array) => object;
  Instance: new (module: object, imports: object) => { exports: Record<string, unknown> };
}

export interface CollectiveMemory {
  /** At least `bytes` bytes (whole 64 KiB pages, zero-filled or reused), or undefined when the memory is full. */
  allocate(bytes: number): Uint8Array | undefined;
  /** Gives back a block from allocate(); `block` must start where the block starts. */
  free(block: ArrayBufferView): void;
  /** Whether `view` lies in this memory. */
  owns(view: ArrayBufferView): boolean;
  /** dst[i] += src[i] with SIMD; both must lie in this memory and have the same length. */
  add(dst: Float32Array, src: Float32Array): void;
  /** Bytes reserved (for tests and diagnostics). */
  readonly size: number;
}

class WasmCollectiveMemory implements CollectiveMemory {
  /** Free runs of pages, by first page, sorted. */
  private readonly freeRuns: { start: number; pages: number }[];
  /** Allocated blocks: first byte → pages. */
  private readonly blocks = new Map<number, number>();
  private readonly buffer: ArrayBuffer;

  constructor(
    memory: WasmMemory,
    private readonly addKernel: (dst: number, src: number, bytes: number) => void,
  ) {
    this.buffer = memory.buffer;
    this.freeRuns = [{ start: 0, pages: this.buffer.byteLength / PAGE }];
  }

  get size(): number {
    return this.buffer.byteLength;
  }

  allocate(bytes: number): Uint8Array | undefined {
    if (!Number.isSafeInteger(bytes) || bytes < 0) throw new RangeError(`CollectiveMemory.allocate: bytes must be a non-negative integer, got ${bytes}`);
    const pages = Math.max(1, Math.ceil(bytes / PAGE));
    const runs = this.freeRuns;
    for (let i = 0; i < runs.length; i++) {
      const run = runs[i]!;
      if (run.pages < pages) continue;
      const start = run.start;
      if (run.pages === pages) runs.splice(i, 1);
      else {
        run.start += pages;
        run.pages -= pages;
      }
      this.blocks.set(start * PAGE, pages);
      return new Uint8Array(this.buffer, start * PAGE, pages * PAGE);
    }
    return undefined; // full: callers fall back to ordinary buffers
  }

  free(block: ArrayBufferView): void {
    if (!this.owns(block)) throw new Error('CollectiveMemory.free: not a block of this memory');
    const pages = this.blocks.get(block.byteOffset);
    if (pages === undefined) throw new Error(`CollectiveMemory.free: no block starts at byte ${block.byteOffset}`);
    this.blocks.delete(block.byteOffset);
    let start = block.byteOffset / PAGE;
    let count = pages;
    const runs = this.freeRuns;
    let i = 0;
    while (i < runs.length && runs[i]!.start < start) i++;
    const before = runs[i - 1];
    const after = runs[i];
    if (after && start + count === after.start) {
      count += after.pages;
      runs.splice(i, 1);
    }
    if (before && before.start + before.pages === start) {
      before.pages += count;
    } else {
      runs.splice(i, 0, { start, pages: count });
    }
  }

  owns(view: ArrayBufferView): boolean {
    return view.buffer === this.buffer;
  }

  add(dst: Float32Array, src: Float32Array): void {
    const n = dst.length;
    if (src.length !== n) throw new RangeError(`CollectiveMemory.add: lengths differ (${n} vs ${src.length})`);
    if (!this.owns(dst) || !this.owns(src)) throw new Error('CollectiveMemory.add: both arrays must lie in the collective memory');
    const bulk = n & ~7; // 8 floats (32 bytes) per iteration
    if (bulk > 0) this.addKernel(dst.byteOffset, src.byteOffset, bulk * 4);
    for (let i = bulk; i < n; i++) dst[i] += src[i]!;
  }
}

/**
 * A collective memory reserving `pages` 64 KiB pages (at most 65535), or undefined where
 * WebAssembly SIMD is missing or the system refuses the reservation. Tests make small ones; the
 * process uses one (collectiveMemory()).
 */
export function createCollectiveMemory(pages: number): CollectiveMemory | undefined {
  if (!Number.isInteger(pages) || pages < 1 || pages > MAX_PAGES) throw new RangeError(`createCollectiveMemory: pages must be an integer in [1, ${MAX_PAGES}], got ${pages}`);
  const wasm = (globalThis as unknown as { WebAssembly?: WasmApi }).WebAssembly;
  if (!wasm) return undefined;
  try {
    const memory = new wasm.Memory({ initial: pages, maximum: pages });
    const add = new wasm.Instance(new wasm.Module(addModuleBytes()), { m: { memory } }).exports['add'];
    return typeof add === 'function' ? new WasmCollectiveMemory(memory, add as (dst: number, src: number, bytes: number) => void) : undefined;
  } catch {
    return undefined; // no WebAssembly SIMD here, or not this much address space
  }
}

let instance: CollectiveMemory | null | undefined;

/**
 * The process's collective memory (4 GiB of address space, less where refused), or undefined
 * where WebAssembly SIMD is not available: then everything uses ordinary buffers and the
 * JavaScript sum.
 */
export function collectiveMemory(): CollectiveMemory | undefined {
  if (instance === undefined) {
    instance = null;
    for (const pages of RESERVATIONS) {
      const memory = createCollectiveMemory(pages);
      if (memory) {
        instance = memory;
        break;
      }
    }
  }
  return instance ?? undefined;
}

/**
 * A Float32Array of `length` elements in the collective memory when there is room (all-reduces
 * of it sum with SIMD), else an ordinary one. Contents are unspecified (reused memory). Give it
 * back with freeCollectiveBuffer once done: collective memory is not garbage-collected.
 */
export function allocateCollectiveBuffer(length: number): Float32Array {
  if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`allocateCollectiveBuffer: length must be a non-negative integer, got ${length}`);
  const block = length > 0 ? collectiveMemory()?.allocate(length * 4) : undefined;
  return block ? new Float32Array(block.buffer, block.byteOffset, length) : new Float32Array(length);
}

/** Gives back a buffer from allocateCollectiveBuffer (an ordinary one is left to the garbage collector). */
export function freeCollectiveBuffer(array: Float32Array): void {
  const memory = collectiveMemory();
  if (memory?.owns(array)) memory.free(array);
}
