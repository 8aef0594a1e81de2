export {
  writeSummary,
  summaryToJson,
  SUMMARY_FORMAT,
  type RunSummary,
  type TrainPoint,
  type EvalPoint,
} from './summary.js';
export { renderReport, writeReport, REPORT_COLORS } from './html.js';
export { renderLineChart, type ChartOptions, type ChartSeries } from './chart.js';
export { niceTicks, niceStep, formatTick, type Ticks, type TickOptions } from './ticks.js';
export { downsampleMinMax, MAX_DRAWN_POINTS } from './downsample.js';
