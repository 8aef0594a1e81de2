/** Line charts as inline SVG strings: no script or library, so the report opens anywhere, offline. */
import { escapeHtml } from './escape.js';
import { downsampleMinMax, MAX_DRAWN_POINTS, type Point } from './downsample.js';
import { formatTick, niceTicks, type Ticks } from './ticks.js';

export interface ChartSeries {
  name: string;
  color: string;
  /** [x, y] pairs in any order; pairs with a non-finite (or missing) coordinate are skipped. */
  points: ReadonlyArray<readonly [number, number]>;
}

export interface ChartOptions {
  /** The <svg> id (tests and links find charts by it). */
  id: string;
  title: string;
  xLabel: string;
  yLabel: string;
  series: ChartSeries[];
  /** X values are integers (steps): no fractional ticks. */
  integerX?: boolean;
  width?: number;
  height?: number;
  maxPoints?: number;
}

/** Space around the plot area for tick labels, axis titles and the legend. */
export const CHART_MARGIN = { left: 66, right: 18, top: 30, bottom: 44 } as const;
const DEFAULT_WIDTH = 640;
const DEFAULT_HEIGHT = 320;
/** Sparse series (evaluations) also get dots, so single points show and readers see where data is. */
const MARKER_LIMIT = 40;

export interface PreparedSeries {
  name: string;
  color: string;
  /** Finite points, sorted by x (stable, so repeated steps after a resume keep their order). */
  points: Point[];
  /** Input points dropped for being non-finite. */
  skipped: number;
}

export function prepareSeries(series: ChartSeries): PreparedSeries {
  const points: Point[] = [];
  let skipped = 0;
  for (const p of series.points) {
    const x = p[0];
    const y = p[1];
    // typeof guard: a summary read back from JSON has null where NaN was.
    if (typeof x === 'number' && typeof y === 'number' && Number.isFinite(x) && Number.isFinite(y)) points.push([x, y]);
    else skipped++;
  }
  points.sort((a, b) => a[0] - b[0]);
  return { name: series.name, color: series.color, points, skipped };
}

function extent(values: number[]): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi]; // non-finite when empty; niceTicks falls back to [0, 1]
}

const fmt = (v: number): string => String(Math.round(v * 100) / 100);

export function renderLineChart(options: ChartOptions): string {
  const width = options.width ?? DEFAULT_WIDTH;
  const height = options.height ?? DEFAULT_HEIGHT;
  const maxPoints = options.maxPoints ?? MAX_DRAWN_POINTS;
  const m = CHART_MARGIN;
  const plot = { x: m.left, y: m.top, w: width - m.left - m.right, h: height - m.top - m.bottom };
  const series = options.series.map(prepareSeries);
  const all = series.flatMap((s) => s.points);
  const xTicks = niceTicks(...extent(all.map((p) => p[0])), { integer: options.integerX === true, target: 6 });
  const yTicks = niceTicks(...extent(all.map((p) => p[1])), { target: 5 });
  // niceTicks guarantees max > min, so these never divide by zero.
  const sx = (x: number): number => plot.x + ((x - xTicks.min) / (xTicks.max - xTicks.min)) * plot.w;
  const sy = (y: number): number => plot.y + (1 - (y - yTicks.min) / (yTicks.max - yTicks.min)) * plot.h;

  const parts: string[] = [];
  const total = all.length;
  parts.push(
    `<svg id="${escapeHtml(options.id)}" class="chart" viewBox="0 0 ${width} ${height}" width="${width}" height="${height}" ` +
      `role="img" aria-label="${escapeHtml(options.title)}" data-points="${total}" preserveAspectRatio="xMidYMid meet">`,
    `<title>${escapeHtml(options.title)}</title>`,
    `<rect class="plot-area" x="${plot.x}" y="${plot.y}" width="${plot.w}" height="${plot.h}" fill="#ffffff" stroke="#cbd5e1"/>`,
  );
  parts.push(...axisMarkup(xTicks, yTicks, sx, sy, plot));
  parts.push(
    `<text class="axis-title" x="${fmt(plot.x + plot.w / 2)}" y="${height - 6}" text-anchor="middle">${escapeHtml(options.xLabel)}</text>`,
    `<text class="axis-title" transform="translate(14 ${fmt(plot.y + plot.h / 2)}) rotate(-90)" text-anchor="middle">${escapeHtml(options.yLabel)}</text>`,
  );

  // No clipping needed: the tick domain covers every point, so all vertices lie in the plot area.
  parts.push(`<g class="series-group">`);
  for (const s of series) {
    const drawn = downsampleMinMax(s.points, maxPoints);
    const coords = drawn.map((p) => `${fmt(sx(p[0]))},${fmt(sy(p[1]))}`);
    parts.push(
      `<polyline class="series" data-series="${escapeHtml(s.name)}" data-points="${s.points.length}" data-drawn="${drawn.length}" ` +
        `data-skipped="${s.skipped}" fill="none" stroke="${escapeHtml(s.color)}" stroke-width="1.75" stroke-linejoin="round" ` +
        `stroke-linecap="round" points="${coords.join(' ')}"/>`,
    );
    if (drawn.length <= MARKER_LIMIT) {
      for (const c of coords) {
        const [cx, cy] = c.split(',');
        parts.push(`<circle class="marker" cx="${cx}" cy="${cy}" r="2.75" fill="${escapeHtml(s.color)}"/>`);
      }
    }
  }
  parts.push(`</g>`);

  if (total === 0) {
    parts.push(
      `<text class="no-data" x="${fmt(plot.x + plot.w / 2)}" y="${fmt(plot.y + plot.h / 2)}" text-anchor="middle">no data</text>`,
    );
  }
  parts.push(legendMarkup(series, plot.x + plot.w));
  parts.push(`</svg>`);
  return parts.join('\n');
}

function axisMarkup(
  xTicks: Ticks,
  yTicks: Ticks,
  sx: (x: number) => number,
  sy: (y: number) => number,
  plot: { x: number; y: number; w: number; h: number },
): string[] {
  const out: string[] = [];
  const bottom = plot.y + plot.h;
  for (const v of yTicks.values) {
    const y = fmt(sy(v));
    out.push(
      `<line class="grid" x1="${plot.x}" x2="${plot.x + plot.w}" y1="${y}" y2="${y}" stroke="#e2e8f0"/>`,
      `<text class="tick tick-y" x="${plot.x - 6}" y="${y}" dy="0.32em" text-anchor="end" data-value="${v}">${formatTick(v, yTicks.step)}</text>`,
    );
  }
  for (const v of xTicks.values) {
    const x = fmt(sx(v));
    out.push(
      `<line class="tick-mark" x1="${x}" x2="${x}" y1="${bottom}" y2="${bottom + 4}" stroke="#94a3b8"/>`,
      `<text class="tick tick-x" x="${x}" y="${bottom + 16}" text-anchor="middle" data-value="${v}">${formatTick(v, xTicks.step)}</text>`,
    );
  }
  return out;
}

/** Legend in the top margin, right-aligned, only for series that have data. */
function legendMarkup(series: PreparedSeries[], right: number): string {
  const shown = series.filter((s) => s.points.length > 0);
  const items: string[] = [];
  let x = right;
  // Laid out right to left with an estimated text width (no layout engine in a string builder).
  for (const s of [...shown].reverse()) {
    const textWidth = s.name.length * 6.4;
    x -= textWidth;
    items.unshift(
      `<g class="legend-item"><line x1="${fmt(x - 24)}" x2="${fmt(x - 6)}" y1="12" y2="12" stroke="${escapeHtml(s.color)}" stroke-width="2.5"/>` +
        `<text x="${fmt(x)}" y="12" dy="0.32em">${escapeHtml(s.name)}</text></g>`,
    );
    x -= 40;
  }
  return `<g class="legend">${items.join('')}</g>`;
}
