/** report.html: one self-contained page a person can open from the job's output folder, even offline. */
import { writeFileAtomic } from './atomic.js';
import { renderLineChart } from './chart.js';
import { escapeHtml } from './escape.js';
import type { EvalPoint, RunSummary } from './summary.js';

/** Series colours; distinct hues that stay apart for the common colour-vision deficiencies. */
export const REPORT_COLORS = {
  trainLoss: '#2563eb',
  validationLoss: '#ea580c',
  accuracy: '#16a34a',
  learningRate: '#9333ea',
} as const;

// Lists longer than this (a big model's tensor names) are cut: the page is for reading, metrics.json has all.
const NAME_LIMIT = 200;

const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

export function formatCount(n: unknown): string {
  if (!isNum(n)) return '—';
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ',');
}

/** Four significant digits; exponent form for tiny or huge values. */
export function formatValue(v: unknown): string {
  if (!isNum(v)) return '—';
  if (v !== 0 && (Math.abs(v) < 1e-3 || Math.abs(v) >= 1e6)) return v.toExponential(3).replace(/\.?0+e/, 'e').replace('e+', 'e');
  return String(Number(v.toPrecision(4)));
}

export function formatDuration(seconds: unknown): string {
  if (!isNum(seconds) || seconds < 0) return '—';
  if (seconds < 60) return `${Number(seconds.toFixed(1))} s`;
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const min = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const pad = (n: number): string => String(n).padStart(2, '0');
  return h > 0 ? `${h} h ${pad(min)} min ${pad(sec)} s` : `${min} min ${pad(sec)} s`;
}

/** The best point's value of its metric: the field named by `metric`, else by its kind (accuracy or loss). */
export function bestValue(best: EvalPoint & { metric: string }): number | undefined {
  const direct = (best as unknown as Record<string, unknown>)[best.metric];
  if (isNum(direct)) return direct;
  const v = /acc/i.test(best.metric) ? best.accuracy : best.loss;
  return isNum(v) ? v : undefined;
}

function factsTable(s: RunSummary): string {
  const rows: [string, string][] = [];
  const model = [`${escapeHtml(s.model?.source ?? '')} → ${escapeHtml(s.model?.output ?? '')}`];
  if (s.model?.exported) model.push(`exported: ${escapeHtml(s.model.exported)}`);
  rows.push(['Model', model.join('<br>')]);
  const p = s.parameters;
  const totalValues = (isNum(p?.trainableValues) ? p.trainableValues : 0) + (isNum(p?.frozenValues) ? p.frozenValues : 0);
  const share = totalValues > 0 && isNum(p?.trainableValues) ? ` (${formatValue((100 * p.trainableValues) / totalValues)}% of values)` : '';
  rows.push(['Trainable', `${formatCount(p?.trainable?.length ?? 0)} tensors · ${formatCount(p?.trainableValues)} values${share}`]);
  rows.push(['Frozen', `${formatCount(p?.frozen?.length ?? 0)} tensors · ${formatCount(p?.frozenValues)} values`]);
  const classes = s.dataset?.classes?.length ? ` · ${formatCount(s.dataset.classes.length)} classes` : '';
  rows.push(['Examples', `${formatCount(s.dataset?.train)} train · ${formatCount(s.dataset?.validation)} validation${classes}`]);
  if (s.best) {
    rows.push([
      'Best validation',
      `${escapeHtml(s.best.metric)} ${formatValue(bestValue(s.best))} at step ${formatCount(s.best.step)} (epoch ${formatValue(s.best.epoch)})`,
    ]);
  } else {
    rows.push(['Best validation', '—']);
  }
  rows.push(['Final step', `${formatCount(s.final?.step)} (epoch ${formatValue(s.final?.epoch)})`]);
  rows.push(['Duration', formatDuration(s.timing?.seconds)]);
  rows.push(['Throughput', isNum(s.timing?.samplesPerSecond) ? `${formatValue(s.timing.samplesPerSecond)} samples/s` : '—']);
  const early = s.final?.stoppedEarly ? ' <span class="badge">stopped early</span>' : '';
  rows.push(['Stop reason', `${escapeHtml(s.final?.reason ?? '')}${early}`]);
  rows.push(['Started', escapeHtml(s.startedAt ?? '')]);
  rows.push(['Finished', escapeHtml(s.finishedAt ?? '')]);
  return `<table class="facts">\n${rows.map(([k, v]) => `<tr><th scope="row">${k}</th><td>${v}</td></tr>`).join('\n')}\n</table>`;
}

function nameList(title: string, names: readonly string[] | undefined): string {
  const list = names ?? [];
  const shown = list.slice(0, NAME_LIMIT).map((n) => `<li>${escapeHtml(n)}</li>`);
  if (list.length > NAME_LIMIT) shown.push(`<li class="more">… and ${formatCount(list.length - NAME_LIMIT)} more (see metrics.json)</li>`);
  return `<details><summary>${escapeHtml(title)} (${formatCount(list.length)})</summary><ul class="names">${shown.join('')}</ul></details>`;
}

function figure(svg: string, caption: string): string {
  return `<figure>\n${svg}\n<figcaption>${caption}</figcaption>\n</figure>`;
}

/** One line under a chart saying what was drawn, so a reader knows when points were skipped or thinned. */
function caption(svg: string): string {
  const notes: string[] = [];
  for (const m of svg.matchAll(/data-series="([^"]*)" data-points="(\d+)" data-drawn="(\d+)" data-skipped="(\d+)"/g)) {
    const [, name, points, drawn, skipped] = m;
    let note = `${name}: ${formatCount(Number(points))} points`;
    if (Number(drawn) < Number(points)) note += `, drawn as ${formatCount(Number(drawn))} (min/max per bucket)`;
    if (Number(skipped) > 0) note += `, ${formatCount(Number(skipped))} non-finite skipped`;
    notes.push(note); // name is already escaped inside the attribute
  }
  return notes.join(' · ');
}

const STYLE = `
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f1f5f9; color: #0f172a; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1160px; margin: 0 auto; padding: 24px; }
h1 { margin: 0 0 2px; font-size: 22px; overflow-wrap: anywhere; }
.sub { margin: 0 0 16px; color: #475569; }
.card { background: #ffffff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 12px 16px; margin-bottom: 16px; }
table.facts { border-collapse: collapse; width: 100%; }
table.facts th { text-align: left; font-weight: 600; color: #334155; padding: 4px 16px 4px 0; white-space: nowrap; vertical-align: top; width: 1%; }
table.facts td { padding: 4px 0; overflow-wrap: anywhere; }
table.facts tr + tr > * { border-top: 1px solid #f1f5f9; }
.badge { background: #fef3c7; color: #92400e; border-radius: 4px; padding: 0 6px; font-size: 12px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; margin-bottom: 16px; }
figure { margin: 0; background: #ffffff; border: 1px solid #e2e8f0; border-radius: 8px; padding: 10px 12px; }
figure h2 { font-size: 15px; margin: 0 0 4px; }
svg.chart { width: 100%; height: auto; display: block; }
svg.chart text { font: 11px system-ui, sans-serif; fill: #475569; }
svg.chart .axis-title { font-size: 12px; fill: #334155; }
svg.chart .legend text { font-size: 12px; fill: #0f172a; }
svg.chart .no-data { font-size: 14px; fill: #94a3b8; }
figcaption { color: #64748b; font-size: 12px; margin-top: 4px; }
details { margin: 6px 0; }
summary { cursor: pointer; font-weight: 600; }
pre { background: #f8fafc; border: 1px solid #e2e8f0; border-radius: 6px; padding: 10px; overflow: auto; font-size: 12px; }
ul.names { columns: 3 220px; font: 12px ui-monospace, Menlo, Consolas, monospace; margin: 6px 0; padding-left: 18px; }
footer { color: #94a3b8; font-size: 12px; }
`;

/** The report page. Pure function of the summary; tolerates a summary read back from JSON (nulls for NaN). */
export function renderReport(summary: RunSummary): string {
  const job = escapeHtml(summary.job ?? '');
  const train = summary.train ?? [];
  const evals = summary.eval ?? [];
  const step = (p: { step: number }): number => p.step;

  const charts: string[] = [];
  const loss = renderLineChart({
    id: 'chart-loss',
    title: 'Loss',
    xLabel: 'step',
    yLabel: 'loss',
    integerX: true,
    series: [
      { name: 'training loss', color: REPORT_COLORS.trainLoss, points: train.map((p) => [step(p), p.loss]) },
      { name: 'validation loss', color: REPORT_COLORS.validationLoss, points: evals.map((p) => [step(p), p.loss]) },
    ],
  });
  charts.push(figure(`<h2>Loss</h2>\n${loss}`, caption(loss)));

  // Only when the task has an accuracy (classification): a chart of nothing but "no data" is noise.
  if (evals.some((p) => isNum(p.accuracy))) {
    const acc = renderLineChart({
      id: 'chart-accuracy',
      title: 'Validation accuracy',
      xLabel: 'step',
      yLabel: 'accuracy',
      integerX: true,
      series: [{ name: 'validation accuracy', color: REPORT_COLORS.accuracy, points: evals.map((p) => [step(p), p.accuracy ?? NaN]) }],
    });
    charts.push(figure(`<h2>Validation accuracy</h2>\n${acc}`, caption(acc)));
  }

  const lr = renderLineChart({
    id: 'chart-lr',
    title: 'Learning rate',
    xLabel: 'step',
    yLabel: 'learning rate',
    integerX: true,
    series: [{ name: 'learning rate', color: REPORT_COLORS.learningRate, points: train.map((p) => [step(p), p.learningRate]) }],
  });
  charts.push(figure(`<h2>Learning rate</h2>\n${lr}`, caption(lr)));

  let config: string;
  try {
    config = JSON.stringify(summary.config ?? {}, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v), 2);
  } catch {
    config = '(not serializable)';
  }

  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>${job} — training report</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>${job}</h1>
<p class="sub">Fine-tuning report · ${escapeHtml(summary.finishedAt ?? '')}</p>
<section class="card">
${factsTable(summary)}
</section>
<section class="charts">
${charts.join('\n')}
</section>
<section class="card">
<details><summary>Resolved configuration</summary><pre>${escapeHtml(config)}</pre></details>
${nameList('Trainable parameters', summary.parameters?.trainable)}
${nameList('Frozen parameters', summary.parameters?.frozen)}
</section>
<footer>${escapeHtml(summary.format ?? '')} · generated by finetune-operator</footer>
</main>
</body>
</html>
`;
}

/** Writes report.html via a temporary file and a rename. */
export function writeReport(path: string, summary: RunSummary): void {
  writeFileAtomic(path, renderReport(summary));
}
