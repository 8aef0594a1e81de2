export {
  createOptimizer,
  type Optimizer,
  type OptimizerSpec,
  type OptimizerState,
  type OptimizerType,
  type SgdSpec,
  type AdamWSpec,
} from './optimizer.js';
export { learningRateAt, lrMultiplier, type ScheduleSpec } from './schedule.js';
export { globalNorm, clipByGlobalNorm } from './clip.js';
export { GradientAccumulator } from './accumulate.js';
