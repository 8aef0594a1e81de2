export { prepareRun, type PreparedRun } from './prepare.js';
export { runTraining, evaluateDataset, outputDirOf, type TrainerOptions, type RunResult } from './trainer.js';
export { TrainingSessions } from './sessions.js';
export { saveCheckpoint, loadLatestCheckpoint, type Checkpoint } from './checkpoint.js';
export { SILENT, type ProgressSink, type RunInfo } from './progress.js';
