// The HTML report of a real local run (`ftjob run`), opened in headless Chromium (Debian's
// `chromium`): the screenshot must show each chart's curves, in their series colours, inside that
// chart's plot area (found from the pixels), and no other chart's colours there.
//   node --test test/report/
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { REPORT_COLORS } from '@finetune/worker';
import { ftjob, toyJob } from '../metrics/toy-job.mjs';
import { colourIn, hexToRgb, plotAreas, readPng } from './plot-areas.mjs';
import { CHROMIUM, chromiumScreenshot } from './chromium.mjs';

const SKIP = existsSync(CHROMIUM) ? false : `${CHROMIUM} is not installed (apt-get install chromium; .ci/run does)`;
const WIDTH = 1200;
const HEIGHT = 1600;

/** The charts in reading order (two columns at this width) and the series each one draws. */
const CHARTS = [
  { name: 'loss', series: ['trainLoss', 'validationLoss'] },
  { name: 'validation accuracy', series: ['accuracy'] },
  { name: 'learning rate', series: ['learningRate'] },
];

test('headless Chromium shows every curve of a local run\'s report in its own plot area', { skip: SKIP, timeout: 240_000 }, async (t) => {
  // 300 steps with a cosine schedule and 30 evaluations: every chart has a curve across its plot.
  const job = toyJob({ name: 'report-shot', training: { epochs: 10, evalEvery: 10 } });
  const run = await ftjob(['run', job.file]);
  assert.equal(run.code, 0, `ftjob run failed:\n${run.stderr}`);
  const png = join(job.dir, 'report.png');
  await chromiumScreenshot(join(job.out, 'report.html'), png, { width: WIDTH, height: HEIGHT });
  t.diagnostic(`screenshot: ${png}`);

  const img = readPng(png);
  assert.equal(img.width, WIDTH);
  assert.equal(img.height, HEIGHT);
  const areas = plotAreas(img);
  assert.equal(areas.length, CHARTS.length, `plot areas found: ${JSON.stringify(areas)}`);
  CHARTS.forEach((chart, i) => {
    const area = areas[i];
    // A plot area is several hundred pixels wide at this window size.
    assert.ok(area.x1 - area.x0 > 300 && area.y1 - area.y0 > 120, `${chart.name} plot area ${JSON.stringify(area)}`);
    for (const [series, hex] of Object.entries(REPORT_COLORS)) {
      const { pixels, columnShare } = colourIn(img, area, hexToRgb(hex));
      if (chart.series.includes(series)) {
        assert.ok(pixels >= 100, `${chart.name}: ${series} (${hex}) has only ${pixels} pixels in the plot area`);
        assert.ok(columnShare >= 0.3, `${chart.name}: ${series} (${hex}) spans only ${(100 * columnShare).toFixed(0)}% of the plot's width`);
      } else {
        assert.ok(pixels <= 10, `${chart.name}: ${pixels} pixels of ${series} (${hex}), which belongs to another chart`);
      }
    }
  });
});
