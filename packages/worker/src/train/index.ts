export { prepareRun, type PreparedRun } from './prepare.js';
export { runTraining, evaluateDataset, outputDirOf, type TrainerOptions, type RunResult } from './trainer.js';
export { OVERLAP_MODES, type OverlapMode } from './compute-setup.js';
export { TrainingSessions } from './sessions.js';
export { saveCheckpoint, loadLatestCheckpoint, type Checkpoint } from './checkpoint.js';
export { SILENT, type ProgressSink, type RunInfo } from './progress.js';
export { DEFAULT_BUCKET_BYTES } from './buckets.js';
