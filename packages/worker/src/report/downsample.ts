/**
 * Shrinks a long series for drawing. A plain stride would skip spikes (a loss blow-up is exactly what
 * a reader looks for), so each bucket keeps its lowest and highest point instead: the drawn line has
 * the same envelope as the full one, including the global minimum and maximum.
 */

export type Point = readonly [x: number, y: number];

/** Default cap on drawn points per series: far more than a chart's pixel width, still a small file. */
export const MAX_DRAWN_POINTS = 1000;

/**
 * At most maxPoints points (at least 4 are allowed), in the input's order: the first and last point,
 * then per bucket of consecutive points its min and max by y. Shorter input comes back unchanged.
 */
export function downsampleMinMax(points: readonly Point[], maxPoints: number = MAX_DRAWN_POINTS): Point[] {
  const cap = Math.max(4, Math.floor(maxPoints));
  const n = points.length;
  if (n <= cap) return points.slice();
  const buckets = Math.floor((cap - 2) / 2);
  const interior = n - 2;
  const out: Point[] = [points[0]!];
  for (let b = 0; b < buckets; b++) {
    const start = 1 + Math.floor((b * interior) / buckets);
    const end = 1 + Math.floor(((b + 1) * interior) / buckets);
    if (start >= end) continue;
    let iMin = start;
    let iMax = start;
    for (let i = start + 1; i < end; i++) {
      const y = points[i]![1];
      if (y < points[iMin]![1]) iMin = i;
      if (y > points[iMax]![1]) iMax = i;
    }
    if (iMin === iMax) out.push(points[iMin]!);
    else if (iMin < iMax) out.push(points[iMin]!, points[iMax]!);
    else out.push(points[iMax]!, points[iMin]!);
  }
  out.push(points[n - 1]!);
  return out;
}
