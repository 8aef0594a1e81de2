export { UserError, isUserError, TrainingInterrupted } from './errors.js';
export * from './onnx/types.js';
export { loadModel, loadModelFile, saveModel, modelToBytes, type ModelSource, type SaveOptions } from './onnx/load.js';
export { decodeModel, encodeModel } from './onnx/codec.js';
export { summarizeModel, type ModelSummary } from './onnx/inspect.js';
export {
  buildTrainingArtifacts,
  gradName,
  LABELS_INPUT,
  LOSS_OUTPUT,
  type TrainingArtifacts,
  type TrainingGraphOptions,
  type ParameterInfo,
} from './autodiff/training-graph.js';
export { writeArtifacts, type ArtifactsReport } from './autodiff/artifacts.js';
export { LOSS_KINDS, type LossKind } from './autodiff/loss.js';
export { selectTrainable } from './autodiff/trainable.js';
export { supportedOps } from './autodiff/rules/index.js';
export { ModelBuilder, rng, randomValues } from './testing/model-builder.js';
export { writeToyTask, type ToyTaskOptions, type ToyLayer } from './testing/toy-task.js';
export { attr } from './autodiff/builder.js';
export { gradCheck, nonStandardOps, type GradCheckOptions } from './testing/gradcheck.js';
export * from './optim/index.js';
export * from './report/index.js';
export * from './data/index.js';
export * from './model/index.js';
export * from './train/index.js';
export * from './collective/index.js';
export * from './metrics/index.js';
