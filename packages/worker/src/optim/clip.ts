/** Gradient clipping by global L2 norm, with torch.nn.utils.clip_grad_norm_ semantics (norm_type 2). */

/** L2 norm over all gradients together, accumulated in float64 so millions of squares lose nothing. */
export function globalNorm(grads: readonly Float32Array[]): number {
  let sum = 0;
  for (const g of grads) {
    const n = g.length;
    for (let i = 0; i < n; i++) {
      const x = g[i]!;
      sum += x * x;
    }
  }
  return Math.sqrt(sum);
}

/**
 * Scales the gradients in place by maxNorm / (norm + 1e-6) when norm > maxNorm (PyTorch's clip
 * coefficient, clamped to 1) and returns the pre-clip norm. A non-finite norm (NaN/Inf gradients)
 * is returned with the gradients untouched, so the caller can see it and skip the step; scaling
 * would only spread the NaN to every gradient.
 */
export function clipByGlobalNorm(grads: readonly Float32Array[], maxNorm: number): number {
  if (!(maxNorm > 0)) throw new Error(`clipByGlobalNorm: maxNorm must be > 0, got ${maxNorm}`);
  const norm = globalNorm(grads);
  if (!Number.isFinite(norm) || norm <= maxNorm) return norm;
  const scale = maxNorm / (norm + 1e-6);
  for (const g of grads) {
    const n = g.length;
    for (let i = 0; i < n; i++) g[i] = g[i]! * scale;
  }
  return norm;
}
