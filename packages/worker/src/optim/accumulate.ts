/**
 * Gradient accumulation over micro-batches into preallocated buffers. With mean losses, averaging
 * the k micro-batch gradients (each micro-batch of size b) equals the gradient of one batch of
 * k*b; with unequal micro-batches, weight each by its size to keep that equality.
 */
export class GradientAccumulator {
  private readonly buffers: Float32Array[];
  private weightSum = 0;
  private added = 0;

  constructor(private readonly sizes: readonly number[]) {
    this.buffers = sizes.map((n) => new Float32Array(n));
  }

  /** Micro-batches added since the last average() or reset(). */
  get count(): number {
    return this.added;
  }

  /** The accumulation buffers, for a producer that writes the first micro-batch straight into them (see addWritten). */
  get sums(): readonly Float32Array[] {
    return this.buffers;
  }

  /**
   * Counts a first micro-batch whose gradients the producer already wrote into `sums` (e.g.
   * onnxruntime's preallocated outputs), scaling them by `weight`: the same values add() would
   * leave, without the copy.
   */
  addWritten(weight = 1): void {
    if (!(weight > 0) || !Number.isFinite(weight)) throw new Error(`GradientAccumulator: weight must be finite and > 0, got ${weight}`);
    if (this.added !== 0) throw new Error('GradientAccumulator: addWritten() is only for the first micro-batch of an accumulation');
    if (weight !== 1) {
      for (const acc of this.buffers) {
        const n = acc.length;
        for (let i = 0; i < n; i++) acc[i] = weight * acc[i]!;
      }
    }
    this.weightSum = weight;
    this.added = 1;
  }

  /** Adds one micro-batch's gradients (copied, so the caller may reuse its arrays) with weight `weight`. */
  add(grads: readonly Float32Array[], weight = 1): void {
    if (!(weight > 0) || !Number.isFinite(weight)) throw new Error(`GradientAccumulator: weight must be finite and > 0, got ${weight}`);
    if (grads.length !== this.sizes.length) throw new Error(`GradientAccumulator: expected ${this.sizes.length} gradients, got ${grads.length}`);
    for (let p = 0; p < grads.length; p++) {
      if (grads[p]!.length !== this.sizes[p]) throw new Error(`GradientAccumulator: gradient ${p} has ${grads[p]!.length} values, expected ${this.sizes[p]}`);
    }
    const first = this.added === 0;
    for (let p = 0; p < grads.length; p++) {
      const acc = this.buffers[p]!;
      const g = grads[p]!;
      const n = acc.length;
      // The first micro-batch overwrites, so no zero-fill pass is needed between accumulations.
      if (first && weight === 1) acc.set(g);
      else if (first) for (let i = 0; i < n; i++) acc[i] = weight * g[i]!;
      else if (weight === 1) for (let i = 0; i < n; i++) acc[i] = acc[i]! + g[i]!;
      else for (let i = 0; i < n; i++) acc[i] = acc[i]! + weight * g[i]!;
    }
    this.weightSum += weight;
    this.added++;
  }

  /**
   * Turns the sums into the (weighted) mean and starts a new accumulation. Without `out`, in
   * place: returns the buffers, valid until the next add(), which overwrites them. With `out`
   * (arrays of the same sizes, e.g. shared with another thread), writes the mean there in the
   * same pass and returns `out`.
   */
  average(out?: readonly Float32Array[]): Float32Array[] {
    if (this.added === 0) throw new Error('GradientAccumulator: average() before any add()');
    if (out && (out.length !== this.sizes.length || out.some((o, i) => o.length !== this.sizes[i]))) {
      throw new Error(`GradientAccumulator: average() into ${out.length} arrays that do not match sizes ${this.sizes.join(', ')}`);
    }
    const inv = 1 / this.weightSum;
    this.buffers.forEach((acc, p) => {
      const dst = out ? out[p]! : acc;
      const n = acc.length;
      // A single unit-weight micro-batch is already its own mean.
      if (inv === 1) {
        if (dst !== acc) dst.set(acc);
      } else {
        for (let i = 0; i < n; i++) dst[i] = acc[i]! * inv;
      }
    });
    this.added = 0;
    this.weightSum = 0;
    return out ? [...out] : this.buffers;
  }

  /** Drops a partial accumulation. */
  reset(): void {
    this.added = 0;
    this.weightSum = 0;
  }
}
