/** Model surgery for fine-tuning: classification heads, which parameters train, and the exported model. */
export {
  attachHead,
  findClassifier,
  inspectClassifier,
  type AttachHeadOptions,
  type AttachedHead,
  type ClassifierLayer,
  type ClassifierInspection,
  type HeadMode,
} from './head.js';
export { resolveTrainable, type TrainableSpec } from './select.js';
export { withParameters, setMetadata } from './export.js';
