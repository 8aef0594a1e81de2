// Renders a Grafana dashboard's panels from Prometheus data as one static HTML page (inline SVG, no
// dependencies), for the docs' screenshots: Grafana itself is not available here. It draws what the
// chart's dashboards use — rows, time series (lines, "normal" stacking, fill) and stat panels (the
// last value, over a sparkline) on Grafana's 24-column grid — with the variables resolved and the
// queries interpolated as test/metrics/grafana.mjs does for the tests. Used by
// tools/dashboard-screenshots.mjs.
import { interpolate, resolveVariables } from '../test/metrics/grafana.mjs';

export const PAGE_WIDTH = 1400;
const GRID = { columns: 24, rowHeight: 30, gap: 8, pad: 16, header: 92 };
const FONT = 'DejaVu Sans, Liberation Sans, Arial, sans-serif';
/** Average glyph width of FONT at 12 px, for laying out legends and axis labels without a browser. */
const CHAR_PX = 7;
const COLORS = ['#5b9ef0', '#f2a541', '#6cc56c', '#e8615e', '#b48ae6', '#4fc1c9', '#e58ac4', '#cfcf55', '#a3adb8', '#f07d3c'];
const THEME = { page: '#111318', panel: '#1a1d23', border: '#2b3038', text: '#d8dde3', muted: '#8e97a3', grid: '#2a2f37' };
const NAMED_COLORS = { blue: '#5b9ef0', green: '#6cc56c', red: '#e8615e', yellow: '#cfcf55', orange: '#f2a541', purple: '#b48ae6', text: THEME.text };

const escapeXml = (s) => String(s).replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`);
const textWidth = (s, px = 12) => (String(s).length * CHAR_PX * px) / 12;

// ---------------------------------------------------------------------------------------------
// Layout: Grafana's grid (24 columns, 30 px rows) scaled to PAGE_WIDTH.

const panelsOf = (dashboard) => (dashboard.panels ?? []).flatMap((p) => (p.type === 'row' ? [p, ...(p.panels ?? [])] : [p]));

function box({ x, y, w, h }) {
  const col = (PAGE_WIDTH - 2 * GRID.pad - (GRID.columns - 1) * GRID.gap) / GRID.columns;
  return {
    left: GRID.pad + x * (col + GRID.gap),
    top: GRID.header + GRID.pad + y * (GRID.rowHeight + GRID.gap),
    width: w * col + (w - 1) * GRID.gap,
    height: h * GRID.rowHeight + (h - 1) * GRID.gap,
  };
}

/** The page's size in CSS pixels (the screenshot's window size). */
export function pageSize(dashboard) {
  const bottom = Math.max(...panelsOf(dashboard).map((p) => p.gridPos.y + p.gridPos.h));
  return { width: PAGE_WIDTH, height: Math.ceil(box({ x: 0, y: bottom, w: 1, h: 1 }).top + GRID.pad - GRID.gap) };
}

// ---------------------------------------------------------------------------------------------
// Units: the subset of Grafana's unit ids the dashboards use. scale(ref) picks the divisor and
// suffix from the magnitude of a reference value (the axis maximum, or the value itself).

const si = (suffix, prefixes = ['', 'k', 'M', 'G', 'T']) => (ref) => {
  const i = Math.max(0, Math.min(prefixes.length - 1, Math.floor(Math.log10(Math.abs(ref) || 1) / 3)));
  return { div: 1000 ** i, suffix: `${prefixes[i]}${suffix}` };
};
const iec = (names) => (ref) => {
  const i = Math.max(0, Math.min(names.length - 1, Math.floor(Math.log2(Math.abs(ref) || 1) / 10)));
  return { div: 1024 ** i, suffix: ` ${names[i]}` };
};
const UNITS = {
  none: () => ({ div: 1, suffix: '' }),
  short: si(''),
  percent: () => ({ div: 1, suffix: '%' }),
  percentunit: () => ({ div: 0.01, suffix: '%' }),
  s: (ref) => (Math.abs(ref) >= 1 || ref === 0 ? { div: 1, suffix: ' s' } : Math.abs(ref) >= 1e-3 ? { div: 1e-3, suffix: ' ms' } : { div: 1e-6, suffix: ' µs' }),
  bytes: iec(['B', 'KiB', 'MiB', 'GiB', 'TiB']),
  mbytes: iec(['MiB', 'GiB', 'TiB']),
  Bps: si('B/s', [' ', ' k', ' M', ' G', ' T']),
  ops: si(' ops/s', ['', 'k', 'M', 'G']),
  watt: si('W', [' ', ' k', ' M']),
};
const unitOf = (panel) => UNITS[panel.fieldConfig?.defaults?.unit] ?? UNITS.short;

/** `value` in `unit`, scaled by ref's magnitude, with enough decimals to tell `resolution` apart. */
function formatValue(value, unit, ref = value, resolution = Math.abs(value) / 100) {
  const { div, suffix } = unit(ref);
  const decimals = Math.max(0, Math.min(4, -Math.floor(Math.log10((resolution || 1) / div) + 1e-9)));
  return `${(value / div).toFixed(decimals)}${suffix}`;
}

// ---------------------------------------------------------------------------------------------
// Data

/** Grafana's legend: {{label}} replaced by the series' label value; no format → the label set. */
function legendName(format, metric) {
  if (format && format !== '__auto') return format.replace(/\{\{\s*(\w+)\s*\}\}/g, (_m, k) => metric[k] ?? '');
  const { __name__: name = '', ...labels } = metric;
  return `${name}{${Object.entries(labels).map(([k, v]) => `${k}="${v}"`).join(', ')}}`;
}

async function panelSeries(panel, prom, { start, end, step, rateInterval, variables }) {
  const series = [];
  for (const target of panel.targets ?? []) {
    if (!target.expr || target.hide) continue;
    const query = interpolate(target.expr, variables, { rateInterval });
    const { result } = await prom.api('query_range', { query, start, end, step });
    for (const s of result) {
      const points = s.values.map(([t, v]) => [Number(t), Number(v)]).filter(([, v]) => Number.isFinite(v));
      if (points.length > 0) series.push({ name: legendName(target.legendFormat, s.metric), points });
    }
  }
  return series.sort((a, b) => a.name.localeCompare(b.name, 'en', { numeric: true }));
}

/** Stacking "normal": each series' points raised by the sum of the ones before it at the same time. */
function stack(series) {
  const below = new Map();
  return series.map((s) => {
    const points = s.points.map(([t, v]) => {
      const base = below.get(t) ?? 0;
      below.set(t, base + v);
      return [t, base + v, base];
    });
    return { ...s, points };
  });
}

// ---------------------------------------------------------------------------------------------
// Drawing

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw));
  const m = raw / p;
  return (m < 1.5 ? 1 : m < 3 ? 2 : m < 7 ? 5 : 10) * p;
}

function yScale(series, { includeZero, min, max, unit }, ticks) {
  const values = series.flatMap((s) => s.points.flatMap(([, v, base]) => (base === undefined ? [v] : [v, base])));
  let lo = min ?? Math.min(...values);
  let hi = max ?? Math.max(...values);
  if (includeZero) [lo, hi] = [Math.min(lo, 0), Math.max(hi, 0)];
  if (hi - lo < Math.abs(hi) * 1e-9 || hi === lo) [lo, hi] = hi > 0 ? [0, hi] : hi < 0 ? [hi, 0] : [0, 1];
  // Round steps in the unit shown (50 KiB, not 51 200 B).
  const { div } = unit(Math.max(Math.abs(lo), Math.abs(hi)));
  const step = niceStep((hi - lo) / div, ticks) * div;
  lo = min ?? Math.floor(lo / step + 1e-9) * step;
  hi = max ?? Math.ceil(hi / step - 1e-9) * step;
  const tickValues = [];
  for (let v = lo; v <= hi + step / 2; v += step) tickValues.push(Math.abs(v) < step * 1e-9 ? 0 : v);
  return { lo, hi, step, ticks: tickValues };
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600];
const clock = (t, seconds) => new Date(t * 1000).toISOString().slice(11, seconds ? 19 : 16);

/** A legend laid out in rows within `width`: [{ name, color, x, row }] and the row count. */
function legendLayout(series, width) {
  let x = 0;
  let row = 0;
  const items = series.map((s, i) => {
    const w = 22 + textWidth(s.name) + 16;
    if (x > 0 && x + w > width) [x, row] = [0, row + 1];
    const item = { name: s.name, color: COLORS[i % COLORS.length], x, row };
    x += w;
    return item;
  });
  return { items, rows: items.length ? row + 1 : 0 };
}

/** Runs of points without a gap longer than maxGap seconds (Grafana's spanNulls: false breaks the line). */
function splitAtGaps(points, maxGap) {
  const runs = [[]];
  points.forEach((p, i) => {
    if (i > 0 && p[0] - points[i - 1][0] > maxGap) runs.push([]);
    runs.at(-1).push(p);
  });
  return runs;
}

function timeseriesSvg(panel, series, { width, height, start, end, step }) {
  const custom = panel.fieldConfig?.defaults?.custom ?? {};
  const stacked = custom.stacking?.mode === 'normal';
  const shown = stacked ? stack(series) : series;
  const legend = legendLayout(series, width - 16);
  const legendHeight = legend.rows * 18;
  const unit = unitOf(panel);
  // Top margin, plot, time labels (24 px), legend rows, bottom margin.
  const plot = { y0: 8, y1: height - legendHeight - 24 - 6 };
  const y = yScale(shown, { includeZero: stacked || custom.fillOpacity > 0, min: panel.fieldConfig?.defaults?.min, max: panel.fieldConfig?.defaults?.max, unit }, Math.max(2, Math.floor((plot.y1 - plot.y0) / 40)));
  const yRef = Math.max(Math.abs(y.lo), Math.abs(y.hi));
  const yLabels = y.ticks.map((v) => formatValue(v, unit, yRef, y.step));
  plot.x0 = 10 + Math.max(...yLabels.map((l) => textWidth(l, 11)));
  plot.x1 = width - 12;
  const px = (t) => plot.x0 + ((t - start) / (end - start)) * (plot.x1 - plot.x0);
  const py = (v) => plot.y1 - ((v - y.lo) / (y.hi - y.lo)) * (plot.y1 - plot.y0);
  const out = [];

  y.ticks.forEach((v, i) => {
    out.push(`<line x1="${plot.x0}" x2="${plot.x1}" y1="${py(v)}" y2="${py(v)}" stroke="${THEME.grid}"/>`);
    out.push(`<text x="${plot.x0 - 6}" y="${py(v) + 4}" text-anchor="end" font-size="11" fill="${THEME.muted}">${escapeXml(yLabels[i])}</text>`);
  });
  const tStep = TIME_STEPS.find((s) => ((plot.x1 - plot.x0) / (end - start)) * s >= 85) ?? 3600;
  for (let t = Math.ceil(start / tStep) * tStep; t <= end; t += tStep) {
    if (px(t) + textWidth(clock(t, tStep < 60), 11) / 2 > width - 2) break; // no clipped label at the right edge
    out.push(`<line x1="${px(t)}" x2="${px(t)}" y1="${plot.y0}" y2="${plot.y1}" stroke="${THEME.grid}"/>`);
    out.push(`<text x="${px(t)}" y="${plot.y1 + 15}" text-anchor="middle" font-size="11" fill="${THEME.muted}">${clock(t, tStep < 60)}</text>`);
  }

  // Areas first (a stacked one down to the series below it), then the lines over them; stacked lines
  // from the top down, so where a series adds nothing the line below it keeps its own colour.
  const runs = (points) => splitAtGaps(points, custom.spanNulls === true ? Infinity : 1.5 * step);
  const xy = ([t, v]) => `${px(t).toFixed(1)},${py(v).toFixed(1)}`;
  const fill = (custom.fillOpacity ?? 0) / 100;
  const colored = shown.map((s, i) => ({ ...s, color: COLORS[i % COLORS.length] }));
  if (fill > 0) {
    for (const s of colored) {
      for (const run of runs(s.points).filter((r) => r.length > 1)) {
        const base = run.map(([t, , b = Math.max(y.lo, 0)]) => xy([t, b])).reverse();
        out.push(`<polygon points="${[...run.map(xy), ...base].join(' ')}" fill="${s.color}" fill-opacity="${fill}" stroke="none"/>`);
      }
    }
  }
  const lineWidth = custom.lineWidth ?? 1;
  for (const s of stacked ? [...colored].reverse() : colored) {
    for (const run of runs(s.points)) {
      if (run.length === 1) out.push(`<circle cx="${px(run[0][0])}" cy="${py(run[0][1])}" r="${lineWidth + 1}" fill="${s.color}"/>`);
      else out.push(`<polyline points="${run.map(xy).join(' ')}" fill="none" stroke="${s.color}" stroke-width="${lineWidth}" stroke-linejoin="round"/>`);
    }
  }

  for (const item of legend.items) {
    const ly = plot.y1 + 30 + item.row * 18;
    out.push(`<rect x="${8 + item.x}" y="${ly - 2}" width="14" height="4" rx="1" fill="${item.color}"/>`);
    out.push(`<text x="${8 + item.x + 20}" y="${ly + 4}" font-size="12" fill="${THEME.text}">${escapeXml(item.name)}</text>`);
  }
  return `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}">${out.join('')}</svg>`;
}

/** The colour of the last threshold step at or below `value` (Grafana's absolute thresholds). */
function thresholdColor(panel, value) {
  const steps = panel.fieldConfig?.defaults?.thresholds?.steps ?? [];
  const step = steps.filter((s) => s.value === null || s.value <= value).at(-1);
  return NAMED_COLORS[step?.color] ?? (step?.color?.startsWith('#') ? step.color : THEME.text);
}

/** A stat panel: one cell per series with its name, its last value and a sparkline of the window. */
function statSvg(panel, series, { width, height, start, end }) {
  const unit = unitOf(panel);
  const n = series.length;
  // Side by side while each value has room, else one under the other (Grafana's "auto").
  const vertical = width / n < 200;
  const cell = vertical ? { w: width, h: height / n } : { w: width / n, h: height };
  const out = [];
  series.forEach((s, i) => {
    const [x0, y0] = vertical ? [0, i * cell.h] : [i * cell.w, 0];
    const last = s.points.at(-1)[1];
    const color = thresholdColor(panel, last);
    const values = s.points.map(([, v]) => v);
    const [lo, hi] = [Math.min(0, ...values), Math.max(...values)];
    const spark = s.points.map(([t, v]) => `${(x0 + ((t - start) / (end - start)) * cell.w).toFixed(1)},${(y0 + cell.h - 4 - ((v - lo) / (hi - lo || 1)) * cell.h * 0.45).toFixed(1)}`);
    if (panel.options?.graphMode !== 'none' && spark.length > 1) {
      const floor = `${(x0 + ((s.points.at(-1)[0] - start) / (end - start)) * cell.w).toFixed(1)},${y0 + cell.h - 4} ${spark[0].split(',')[0]},${y0 + cell.h - 4}`;
      out.push(`<polygon points="${spark.join(' ')} ${floor}" fill="${color}" fill-opacity="0.12" stroke="none"/>`);
      out.push(`<polyline points="${spark.join(' ')}" fill="none" stroke="${color}" stroke-opacity="0.6" stroke-width="1.5"/>`);
    }
    // Integers as they are, anything else to three significant digits.
    const text = formatValue(last, unit, last, Number.isInteger(last) ? 1 : Math.abs(last) / 100);
    const size = Math.min(cell.h * 0.36, (cell.w - 16) / Math.max(3, text.length * 0.75), 44);
    out.push(`<text x="${x0 + cell.w / 2}" y="${y0 + cell.h * 0.3}" text-anchor="middle" font-size="12" fill="${THEME.muted}">${escapeXml(s.name)}</text>`);
    out.push(`<text x="${x0 + cell.w / 2}" y="${y0 + cell.h * 0.3 + 8 + size}" text-anchor="middle" font-size="${size.toFixed(1)}" font-weight="bold" fill="${color}">${escapeXml(text)}</text>`);
  });
  return `<svg width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="${FONT}">${out.join('')}</svg>`;
}

function panelHtml(panel, series, range) {
  const b = box(panel.gridPos);
  const place = `left:${b.left}px;top:${b.top}px;width:${b.width}px;height:${b.height}px`;
  if (panel.type === 'row') return `<div class="row" style="${place}">▾ ${escapeXml(panel.title)}</div>`;
  const size = { width: Math.floor(b.width - 2), height: Math.floor(b.height - 34), ...range };
  let body;
  if (series.length === 0) body = '<div class="nodata">No data</div>';
  else if (panel.type === 'stat' || panel.type === 'gauge') body = statSvg(panel, series, size);
  else body = timeseriesSvg(panel, series, size);
  return `<div class="panel" style="${place}"><div class="title">${escapeXml(panel.title)}</div>${body}</div>`;
}

/**
 * The dashboard's panels over `window` ({ start, end } in Unix seconds) as a standalone HTML page,
 * PAGE_WIDTH wide and pageSize(dashboard).height tall. `note` is a line shown under the title
 * (where the picture comes from).
 */
export async function renderDashboard(dashboard, prom, window, { scrapeIntervalS = 1, note = '' } = {}) {
  const { start, end } = window;
  // As Grafana: about one point per pixel, never finer than the scrape interval; $__rate_interval
  // is max(4 scrape intervals, step + 1 scrape interval).
  const step = Math.max(scrapeIntervalS, Math.ceil((end - start) / 600));
  const rateInterval = `${Math.max(4 * scrapeIntervalS, step + scrapeIntervalS)}s`;
  const variables = await resolveVariables(dashboard, prom, { start, end, rateInterval });
  const panels = [];
  for (const panel of panelsOf(dashboard)) {
    const series = panel.type === 'row' ? [] : await panelSeries(panel, prom, { start, end, step, rateInterval, variables });
    panels.push(panelHtml(panel, series, { start, end, step }));
  }
  const shownVariables = [...variables]
    .filter(([name]) => ((dashboard.templating?.list ?? []).find((v) => v.name === name)?.hide ?? 0) < 2)
    .map(([name, v]) => `<span class="var">${escapeXml(name)} = <b>${escapeXml(v.multi ? `All (${v.values.join(', ')})` : v.values[0])}</b></span>`);
  const { height } = pageSize(dashboard);
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>${escapeXml(dashboard.title)}</title><style>
  body { margin: 0; width: ${PAGE_WIDTH}px; height: ${height}px; position: relative; background: ${THEME.page}; color: ${THEME.text}; font: 13px ${FONT}; overflow: hidden; }
  header { position: absolute; left: ${GRID.pad}px; right: ${GRID.pad}px; top: 12px; }
  h1 { font-size: 19px; font-weight: 600; margin: 0 0 6px; }
  .meta { color: ${THEME.muted}; font-size: 12.5px; }
  .note { color: ${THEME.muted}; font-size: 12.5px; font-style: italic; margin-top: 6px; }
  .var { background: ${THEME.panel}; border: 1px solid ${THEME.border}; border-radius: 3px; padding: 1px 7px; margin-right: 8px; color: ${THEME.text}; }
  .var b { font-weight: 600; }
  .panel { position: absolute; box-sizing: border-box; background: ${THEME.panel}; border: 1px solid ${THEME.border}; border-radius: 4px; overflow: hidden; }
  .title { height: 32px; line-height: 32px; padding: 0 10px; font-weight: 600; font-size: 13.5px; white-space: nowrap; }
  .row { position: absolute; font-size: 15px; font-weight: 600; line-height: 30px; }
  .nodata { color: ${THEME.muted}; text-align: center; margin-top: 25%; }
</style></head><body>
<header><h1>${escapeXml(dashboard.title)}</h1>
<div class="meta">${shownVariables.join('')}${clock(start, true)} – ${clock(end, true)} UTC (${Math.round(end - start)} s, step ${step} s)</div>
${note ? `<div class="note">${escapeXml(note)}</div>` : ''}</header>
${panels.join('\n')}
</body></html>
`;
}
