import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renderReport, writeReport, REPORT_COLORS } from './html.js';
import { sampleRunSummary } from './sample.js';
import type { RunSummary } from './summary.js';

// --- tiny readers for the generated markup (we control its shape, so regexes are enough) ---

function svgById(html: string, id: string): string | undefined {
  return html.match(new RegExp(`<svg id="${id}"[\\s\\S]*?</svg>`))?.[0];
}

function attrs(tag: string): Record<string, string> {
  return Object.fromEntries([...tag.matchAll(/([\w-]+)="([^"]*)"/g)].map((m) => [m[1]!, m[2]!]));
}

interface Line {
  series: string;
  points: number;
  drawn: number;
  stroke: string;
  coords: [number, number][];
}

function polylines(svg: string): Line[] {
  return [...svg.matchAll(/<polyline [^>]*\/>/g)].map((m) => {
    const a = attrs(m[0]);
    const coords = (a.points ?? '')
      .split(' ')
      .filter(Boolean)
      .map((c) => c.split(',').map(Number) as [number, number]);
    return { series: a['data-series']!, points: Number(a['data-points']), drawn: Number(a['data-drawn']), stroke: a.stroke!, coords };
  });
}

function plotArea(svg: string): { x0: number; y0: number; x1: number; y1: number } {
  const a = attrs(svg.match(/<rect class="plot-area"[^>]*>/)![0]);
  const x0 = Number(a.x);
  const y0 = Number(a.y);
  return { x0, y0, x1: x0 + Number(a.width), y1: y0 + Number(a.height) };
}

/** Tick values and their label text for one axis. */
function ticks(svg: string, axis: 'x' | 'y'): { value: number; label: string; pos: number }[] {
  return [...svg.matchAll(new RegExp(`<text class="tick tick-${axis}"([^>]*)>([^<]*)</text>`, 'g'))].map((m) => {
    const a = attrs(m[1]!);
    return { value: Number(a['data-value']), label: m[2]!, pos: Number(axis === 'x' ? a.x : a.y) };
  });
}

function isNice(x: number): boolean {
  if (!(x > 0)) return false;
  const mantissa = x / 10 ** Math.floor(Math.log10(x) + 1e-12);
  return [1, 2, 2.5, 5, 10].some((n) => Math.abs(mantissa - n) < 1e-9 * n);
}

const finite = (xs: (number | undefined)[]): number[] => xs.filter((x): x is number => typeof x === 'number' && Number.isFinite(x));

function assertNoBadNumbers(html: string): void {
  assert.ok(!html.includes('NaN'), 'NaN in output');
  assert.ok(!html.includes('Infinity'), 'Infinity in output');
  assert.ok(!html.includes('undefined'), 'undefined in output');
}

// --- tests ---

test('the report has the three charts with one drawn point per data point', () => {
  const s = sampleRunSummary({ steps: 240, evalEvery: 40 });
  const html = renderReport(s);
  const loss = svgById(html, 'chart-loss')!;
  const acc = svgById(html, 'chart-accuracy')!;
  const lr = svgById(html, 'chart-lr')!;
  assert.ok(loss && acc && lr, 'all three charts present');
  assert.equal(attrs(loss.slice(0, loss.indexOf('>')))['data-points'], String(240 + 6));

  const [train, val] = polylines(loss);
  assert.equal(polylines(loss).length, 2);
  assert.equal(train!.series, 'training loss');
  assert.equal(train!.points, 240);
  assert.equal(train!.coords.length, 240);
  assert.equal(val!.series, 'validation loss');
  assert.equal(val!.coords.length, 6);
  assert.notEqual(train!.stroke, val!.stroke, 'distinct colours');
  assert.match(loss, /class="legend"[\s\S]*training loss[\s\S]*validation loss/);

  assert.equal(polylines(acc)[0]!.coords.length, 6);
  assert.equal(polylines(lr)[0]!.coords.length, 240);
  const strokes = new Set([...polylines(loss), ...polylines(acc), ...polylines(lr)].map((l) => l.stroke));
  assert.equal(strokes.size, 4);
  assert.deepEqual([...strokes].sort(), Object.values(REPORT_COLORS).sort());
  assertNoBadNumbers(html);
});

test('no accuracy chart when no evaluation has an accuracy', () => {
  const html = renderReport(sampleRunSummary({ steps: 50, evalEvery: 10, accuracy: false }));
  assert.equal(svgById(html, 'chart-accuracy'), undefined);
  assert.ok(svgById(html, 'chart-loss') && svgById(html, 'chart-lr'));
});

test('polyline points lie inside the plot area and are monotone in x; values map back to data', () => {
  const s = sampleRunSummary({ steps: 500, evalEvery: 25 });
  s.train[100]!.loss = 9; // a spike above everything else
  const html = renderReport(s);
  for (const id of ['chart-loss', 'chart-accuracy', 'chart-lr']) {
    const svg = svgById(html, id)!;
    const area = plotArea(svg);
    const yt = ticks(svg, 'y');
    const xt = ticks(svg, 'x');
    for (const line of polylines(svg)) {
      assert.ok(line.coords.length > 0);
      for (let i = 0; i < line.coords.length; i++) {
        const [x, y] = line.coords[i]!;
        assert.ok(x >= area.x0 && x <= area.x1 && y >= area.y0 && y <= area.y1, `${id} ${line.series} point ${i} (${x}, ${y}) outside`);
        if (i > 0) assert.ok(x >= line.coords[i - 1]![0], `${id} ${line.series} x not monotone at ${i}`);
      }
    }
    // The outer ticks are the axis domain: first/last tick sit on the plot edges.
    assert.ok(Math.abs(yt[0]!.pos - area.y1) < 0.01 && Math.abs(yt.at(-1)!.pos - area.y0) < 0.01, `${id} y ticks span the plot`);
    assert.ok(Math.abs(xt[0]!.pos - area.x0) < 0.01 && Math.abs(xt.at(-1)!.pos - area.x1) < 0.01, `${id} x ticks span the plot`);
  }
  // The spike is drawn at the right height.
  const loss = svgById(html, 'chart-loss')!;
  const area = plotArea(loss);
  const yt = ticks(loss, 'y');
  const expected = area.y0 + (1 - (9 - yt[0]!.value) / (yt.at(-1)!.value - yt[0]!.value)) * (area.y1 - area.y0);
  assert.ok(Math.abs(Math.min(...polylines(loss)[0]!.coords.map((c) => c[1])) - expected) < 0.01);
});

test('points logged out of order are drawn sorted by step', () => {
  const s = sampleRunSummary({ steps: 60, evalEvery: 10 });
  s.train.reverse();
  s.eval = [s.eval[3]!, s.eval[0]!, s.eval[5]!, s.eval[1]!, s.eval[4]!, s.eval[2]!];
  const html = renderReport(s);
  for (const id of ['chart-loss', 'chart-accuracy', 'chart-lr']) {
    for (const line of polylines(svgById(html, id)!)) {
      const xs = line.coords.map((c) => c[0]);
      assert.deepEqual(xs, [...xs].sort((a, b) => a - b), `${id} ${line.series}`);
    }
  }
});

test('tick labels are nice and cover the data range', () => {
  const s = sampleRunSummary({ steps: 777, evalEvery: 37 });
  const html = renderReport(s);
  const data: Record<string, { x: number[]; y: number[] }> = {
    'chart-loss': { x: [...s.train, ...s.eval].map((p) => p.step), y: finite([...s.train, ...s.eval].map((p) => p.loss)) },
    'chart-accuracy': { x: s.eval.map((p) => p.step), y: finite(s.eval.map((p) => p.accuracy)) },
    'chart-lr': { x: s.train.map((p) => p.step), y: finite(s.train.map((p) => p.learningRate)) },
  };
  for (const [id, d] of Object.entries(data)) {
    const svg = svgById(html, id)!;
    for (const axis of ['x', 'y'] as const) {
      const t = ticks(svg, axis);
      const values = axis === 'x' ? d.x : d.y;
      assert.ok(t.length >= 3 && t.length <= 9, `${id} ${axis}: ${t.length} ticks`);
      const step = t[1]!.value - t[0]!.value;
      assert.ok(isNice(Number(step.toPrecision(10))), `${id} ${axis} step ${step}`);
      for (let i = 0; i < t.length; i++) {
        if (i > 0) assert.ok(Math.abs(t[i]!.value - t[i - 1]!.value - step) < step * 1e-6, `${id} ${axis} uneven`);
        assert.ok(Math.abs(Number(t[i]!.label) - t[i]!.value) < step * 1e-6, `${id} ${axis} label ${t[i]!.label} vs ${t[i]!.value}`);
      }
      assert.ok(t[0]!.value <= Math.min(...values), `${id} ${axis} low end`);
      assert.ok(t.at(-1)!.value >= Math.max(...values), `${id} ${axis} high end`);
      if (axis === 'x') assert.ok(t.every((x) => Number.isInteger(x.value)), 'integer steps');
    }
  }
  const lrLabels = ticks(svgById(html, 'chart-lr')!, 'y').map((t) => t.label);
  assert.ok(lrLabels.some((l) => /e-\d/.test(l)), `small learning rates in exponent form: ${lrLabels.join(' ')}`);
});

test('job name and other text are escaped', () => {
  const s = sampleRunSummary({ steps: 10, evalEvery: 5, job: '<script>alert(1)</script>' });
  s.final.reason = 'loss "exploded" & <b>stopped</b>';
  s.parameters.trainable.push('<img src=x onerror=alert(2)>');
  s.config = { note: '</pre><script>alert(3)</script>' };
  const html = renderReport(s);
  assert.ok(!/<script/i.test(html), 'no script element anywhere');
  assert.ok(!html.includes('<img'), 'no injected element');
  assert.ok(!html.includes('<b>'));
  assert.match(html, /<title>&lt;script&gt;alert\(1\)&lt;\/script&gt; — training report<\/title>/);
  assert.match(html, /<h1>&lt;script&gt;alert\(1\)&lt;\/script&gt;<\/h1>/);
  assert.ok(html.includes('loss &quot;exploded&quot; &amp; &lt;b&gt;stopped&lt;/b&gt;'));
});

test('the page is self-contained: no scripts, links, fonts or network', () => {
  const html = renderReport(sampleRunSummary());
  assert.ok(html.startsWith('<!doctype html>'));
  assert.doesNotMatch(html, /https?:\/\//);
  assert.doesNotMatch(html, /<script|<link|<img|<iframe|\bsrc=|url\(|@import|@font-face/i);
  assert.match(html, /<meta http-equiv="Content-Security-Policy" content="default-src 'none'/);
  assert.match(html, /<style>/);
});

test('empty, single-point and constant series produce no NaN', () => {
  const empty = sampleRunSummary({ steps: 0, evalEvery: 10 });
  assert.equal(empty.train.length, 0);
  let html = renderReport(empty);
  assertNoBadNumbers(html);
  assert.equal(polylines(svgById(html, 'chart-loss')!)[0]!.coords.length, 0);
  assert.match(svgById(html, 'chart-loss')!, /no data/);
  assert.match(html, /Best validation<\/th><td>—/);

  const one = sampleRunSummary({ steps: 1, evalEvery: 1 });
  html = renderReport(one);
  assertNoBadNumbers(html);
  for (const id of ['chart-loss', 'chart-accuracy', 'chart-lr']) {
    const svg = svgById(html, id)!;
    for (const line of polylines(svg)) assert.equal(line.coords.length, 1, `${id} ${line.series}`);
    assert.match(svg, /<circle class="marker"/, 'a single point is drawn as a dot');
  }

  const flat = sampleRunSummary({ steps: 30, evalEvery: 10 });
  for (const p of flat.train) {
    p.loss = 0.7;
    p.learningRate = 1e-3;
  }
  for (const p of flat.eval) {
    p.loss = 0.7;
    p.accuracy = 0;
  }
  html = renderReport(flat);
  assertNoBadNumbers(html);
  for (const id of ['chart-loss', 'chart-accuracy', 'chart-lr']) {
    const svg = svgById(html, id)!;
    const area = plotArea(svg);
    for (const line of polylines(svg)) {
      const ys = new Set(line.coords.map((c) => c[1]));
      assert.equal(ys.size, 1, 'a flat line');
      const [y] = ys;
      assert.ok(y! >= area.y0 && y! <= area.y1);
    }
  }
});

test('NaN values are skipped and counted; a summary read back from JSON (nulls) renders too', () => {
  const s = sampleRunSummary({ steps: 100, evalEvery: 20 });
  s.train[10]!.loss = NaN;
  s.train[11]!.loss = Infinity;
  s.train[12]!.learningRate = NaN;
  s.eval[1]!.accuracy = NaN;
  s.timing.seconds = NaN;
  let html = renderReport(s);
  assertNoBadNumbers(html);
  const [train] = polylines(svgById(html, 'chart-loss')!);
  assert.equal(train!.points, 98);
  assert.equal(train!.coords.length, 98);
  assert.equal(polylines(svgById(html, 'chart-lr')!)[0]!.coords.length, 99);
  assert.equal(polylines(svgById(html, 'chart-accuracy')!)[0]!.coords.length, 4);
  assert.match(html, /training loss: 98 points, 2 non-finite skipped/);

  const back = JSON.parse(JSON.stringify(s)) as RunSummary;
  html = renderReport(back);
  assertNoBadNumbers(html);
  assert.equal(polylines(svgById(html, 'chart-loss')!)[0]!.coords.length, 98);
});

test('long series are downsampled for drawing but keep their extremes', () => {
  const s = sampleRunSummary({ steps: 50_000, evalEvery: 5000 });
  s.train[12_345]!.loss = 25;
  s.train[40_000]!.loss = -1;
  const html = renderReport(s);
  const svg = svgById(html, 'chart-loss')!;
  const [train] = polylines(svg);
  assert.equal(train!.points, 50_000);
  assert.ok(train!.coords.length <= 1000 && train!.coords.length === train!.drawn, `drawn ${train!.coords.length}`);
  const area = plotArea(svg);
  const yt = ticks(svg, 'y');
  const toPixel = (v: number): number => area.y0 + (1 - (v - yt[0]!.value) / (yt.at(-1)!.value - yt[0]!.value)) * (area.y1 - area.y0);
  const ys = train!.coords.map((c) => c[1]);
  assert.ok(Math.abs(Math.min(...ys) - toPixel(25)) < 0.01, 'maximum kept');
  assert.ok(Math.abs(Math.max(...ys) - toPixel(-1)) < 0.01, 'minimum kept');
  assert.match(html, /training loss: 50,000 points, drawn as [\d,]+ \(min\/max per bucket\)/);
  assert.ok(html.length < 200_000, `report stays small: ${html.length} chars`);
});

test('facts table shows the key numbers', () => {
  const s = sampleRunSummary({ steps: 300, evalEvery: 50 });
  s.final.stoppedEarly = true;
  s.final.reason = 'no improvement for 3 evaluations';
  const html = renderReport(s);
  const row = (name: string): string => html.match(new RegExp(`<th scope="row">${name}</th><td>(.*?)</td>`))?.[1] ?? '';
  assert.equal(row('Model'), 'models/base.onnx → out/model.onnx<br>exported: out/inference.onnx');
  assert.match(row('Trainable'), /^2 tensors · 7,850 values \(3\.23% of values\)$/);
  assert.equal(row('Frozen'), '3 tensors · 235,200 values');
  assert.equal(row('Examples'), '60,000 train · 10,000 validation · 10 classes');
  assert.match(row('Best validation'), /^accuracy 0\.\d+ at step 300 \(epoch 3\)$/);
  assert.equal(row('Final step'), '300 (epoch 3)');
  assert.equal(row('Duration'), '12 min 34 s');
  assert.equal(row('Throughput'), '1251 samples/s');
  assert.match(row('Stop reason'), /^no improvement for 3 evaluations <span class="badge">stopped early<\/span>$/);
});

test('writeReport writes the rendered page atomically', () => {
  const dir = mkdtempSync(join(tmpdir(), 'report-html-'));
  const s = sampleRunSummary({ steps: 20, evalEvery: 5 });
  writeReport(join(dir, 'report.html'), s);
  assert.equal(readFileSync(join(dir, 'report.html'), 'utf8'), renderReport(s));
  assert.deepEqual(readdirSync(dir), ['report.html']);
});
