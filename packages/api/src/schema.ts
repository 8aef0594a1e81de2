/**
 * The FineTuneJob resource, defined once. The TypeScript types (Static<>), the validator, the
 * CRD's openAPIV3Schema and the docs' field table are all derived from these schemas.
 * Every object rejects unknown fields; every field says what it is for.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

export const API_GROUP = 'finetune.dev';
export const API_VERSION = 'v1alpha1';
export const KIND = 'FineTuneJob';

const strict = { additionalProperties: false } as const;
const positive = (description: string, extra: object = {}) => Type.Number({ exclusiveMinimum: 0, description, ...extra });
const count = (description: string, minimum = 1, extra: object = {}) => Type.Integer({ minimum, description, ...extra });
const literals = <T extends string>(values: readonly T[], description: string, fallback?: T) =>
  Type.Union(values.map((v) => Type.Literal(v)), { description, ...(fallback !== undefined ? { default: fallback } : {}) });

export const HeadSpec = Type.Object(
  {
    numClasses: count('classes of the new classification head', 2),
    mode: literals(['replace', 'append'] as const, "'replace' re-initializes the model's last linear layer with numClasses outputs; 'append' adds a new linear layer on top of the output", 'replace'),
    seed: Type.Optional(Type.Integer({ description: 'seed of the new head\'s initial weights (default: spec.training.seed)' })),
  },
  { ...strict, description: 'a new classification head for the fine-tuning task' },
);

export const ModelSpec = Type.Object(
  {
    source: Type.String({ minLength: 1, description: 'the pre-trained ONNX model: a path, a file:// or an http(s):// URL' }),
    inputs: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'model inputs the dataset feeds, in order (default: the model\'s first input)' })),
    output: Type.Optional(Type.String({ minLength: 1, description: 'the model output the loss reads (default: the first output)' })),
    head: Type.Optional(HeadSpec),
  },
  { ...strict, description: 'where the pre-trained model comes from and how it is adapted' },
);

export const DataFileSpec = Type.Object(
  {
    path: Type.String({ minLength: 1, description: 'file with the examples (features.npy for the npy format)' }),
    format: Type.Optional(literals(['jsonl', 'csv', 'npy'] as const, 'file format (default: from the extension)')),
    labels: Type.Optional(Type.String({ minLength: 1, description: 'npy format: the file with the labels' })),
  },
  { ...strict, description: 'a dataset file' },
);

export const BUILTIN_DATASETS = ['mnist', 'spam-assassin'] as const;

export const DatasetSpec = Type.Object(
  {
    builtin: Type.Optional(literals(BUILTIN_DATASETS, 'a dataset shipped with the worker (instead of files)')),
    digits: Type.Optional(Type.Array(Type.Integer({ minimum: 0, maximum: 9 }), { minItems: 2, uniqueItems: true, description: 'mnist: the digits to use; labels are their positions in this list' })),
    train: Type.Optional(DataFileSpec),
    validation: Type.Optional(DataFileSpec),
    validationSplit: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1, default: 0.1, description: 'fraction of the training examples held out for validation when no validation file is given' }),
    textField: Type.Optional(Type.String({ minLength: 1, description: 'jsonl/csv: the field with the text to tokenize' })),
    featuresField: Type.Optional(Type.String({ minLength: 1, description: 'jsonl: the field with a numeric feature array' })),
    labelField: Type.String({ minLength: 1, default: 'label', description: 'jsonl/csv: the field with the label (class name or id)' }),
    classes: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 2, uniqueItems: true, description: 'class names; label ids are positions in this list' })),
    maxExamplesPerClass: Type.Optional(count('keep at most this many training examples per class (few-label fine-tuning)')),
    maxLength: Type.Optional(count('text: tokens per example (default: the model input\'s sequence length)')),
  },
  { ...strict, description: 'the labelled data: a built-in dataset or files' },
);

export const TrainableSpec = Type.Object(
  {
    patterns: Type.Optional(Type.Array(Type.String({ minLength: 1 }), { minItems: 1, description: 'initializers that train: exact names or globs (e.g. "encoder.layer.3.*")' })),
    freezeBelow: Type.Optional(Type.String({ minLength: 1, description: 'freeze every parameter used before this node (a node name or a parameter name); train the rest' })),
    headOnly: Type.Optional(Type.Boolean({ description: 'train only the (new) classification head' })),
  },
  { ...strict, description: 'which parameters train; at most one of patterns, freezeBelow, headOnly (default: all)' },
);

export const OptimizerSpec = Type.Object(
  {
    type: literals(['adamw', 'sgd'] as const, 'the update rule', 'adamw'),
    learningRate: positive('peak learning rate', { default: 1e-3 }),
    weightDecay: Type.Optional(Type.Number({ minimum: 0, description: 'adamw: decoupled weight decay (default 0.01); sgd: L2 penalty (default 0)' })),
    momentum: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 1, description: 'sgd: momentum (default 0.9)' })),
    nesterov: Type.Optional(Type.Boolean({ description: 'sgd: Nesterov momentum' })),
    beta1: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 1, description: 'adamw: first-moment decay (default 0.9)' })),
    beta2: Type.Optional(Type.Number({ minimum: 0, exclusiveMaximum: 1, description: 'adamw: second-moment decay (default 0.999)' })),
    eps: Type.Optional(positive('adamw: denominator epsilon (default 1e-8)')),
  },
  { ...strict, default: {}, description: 'optimizer' },
);

export const ScheduleSpec = Type.Object(
  {
    type: literals(['constant', 'cosine', 'linear'] as const, 'learning-rate schedule after warmup', 'constant'),
    warmupSteps: count('steps of linear warmup from 0', 0, { default: 0 }),
    minLrRatio: Type.Optional(Type.Number({ minimum: 0, maximum: 1, description: 'cosine: final learning rate as a fraction of the peak (default 0)' })),
  },
  { ...strict, default: {}, description: 'learning-rate schedule' },
);

export const EarlyStoppingSpec = Type.Object(
  {
    metric: literals(['val_loss', 'val_accuracy'] as const, 'the validation metric watched', 'val_loss'),
    patience: count('evaluations without improvement before stopping'),
    minDelta: Type.Number({ minimum: 0, default: 0, description: 'smallest change that counts as an improvement' }),
  },
  { ...strict, description: 'stop when the validation metric stops improving; the best weights are kept' },
);

export const TrainingSpec = Type.Object(
  {
    loss: literals(['cross_entropy', 'mse'] as const, 'loss on the model output', 'cross_entropy'),
    epochs: count('passes over the training data', 1, { default: 1 }),
    maxSteps: Type.Optional(count('stop after this many optimizer steps (overrides epochs)')),
    batchSize: count('examples per optimizer step, over all workers', 1, { default: 32 }),
    gradientAccumulationSteps: count('micro-batches summed into each optimizer step', 1, { default: 1 }),
    gradientClipNorm: Type.Optional(positive('clip gradients to this global L2 norm')),
    seed: Type.Integer({ minimum: 0, default: 0, description: 'seed for shuffling, splits and new weights' }),
    evalEvery: Type.Optional(count('evaluate every this many steps (default: every epoch)')),
    checkpointEvery: Type.Optional(count('checkpoint every this many steps (default: every epoch)')),
    earlyStopping: Type.Optional(EarlyStoppingSpec),
  },
  { ...strict, default: {}, description: 'the training loop' },
);

export const ResourceList = Type.Record(Type.String(), Type.Union([Type.String(), Type.Number()]), { description: 'Kubernetes resource quantities' });

export const TolerationSpec = Type.Object(
  {
    key: Type.Optional(Type.String({ description: 'taint key (empty with operator Exists: every taint)' })),
    operator: Type.Optional(literals(['Exists', 'Equal'] as const, 'Equal (default) or Exists')),
    value: Type.Optional(Type.String({ description: 'taint value (operator Equal)' })),
    effect: Type.Optional(literals(['NoSchedule', 'PreferNoSchedule', 'NoExecute'] as const, 'taint effect (empty: every effect)')),
    tolerationSeconds: Type.Optional(Type.Integer({ description: 'NoExecute: how long the pod stays bound after the taint appears' })),
  },
  { ...strict, description: 'a Kubernetes toleration' },
);

export const VolumeSpec = Type.Object(
  { name: Type.String({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63, description: 'volume name, referenced by volumeMounts' }) },
  { additionalProperties: true, description: 'a Kubernetes pod volume: name plus one source (persistentVolumeClaim, nfs, hostPath, csi, …)' },
);

export const VolumeMountSpec = Type.Object(
  {
    name: Type.String({ minLength: 1, description: 'the volume to mount' }),
    mountPath: Type.String({ pattern: '^/', description: 'absolute path in the worker container' }),
    readOnly: Type.Optional(Type.Boolean({ description: 'mount read-only' })),
    subPath: Type.Optional(Type.String({ description: 'mount this folder of the volume instead of its root' })),
  },
  { ...strict, description: 'where a volume appears in the worker container' },
);

// Not on/off: YAML 1.1 parsers (kubectl's among them) read those as booleans.
export const ALL_REDUCE_OVERLAP = ['never', 'auto', 'always'] as const;
export type AllReduceOverlap = (typeof ALL_REDUCE_OVERLAP)[number];
export const WIRE_PRECISIONS = ['float32', 'bfloat16', 'float16'] as const;
export type WirePrecision = (typeof WIRE_PRECISIONS)[number];

export const AllReduceSpec = Type.Object(
  {
    overlap: literals(
      ALL_REDUCE_OVERLAP,
      'overlap the gradient all-reduce with the backward pass, bucket by bucket (as PyTorch DDP does): always, never, or auto (with 2+ workers and 2+ buckets); it pays only with a spare core per worker',
      'never',
    ),
    bucketMiB: positive('gradient bucket size for overlap, in MiB', { default: 4 }),
    wirePrecision: literals(
      WIRE_PRECISIONS,
      'number format of gradients between workers: bfloat16 and float16 halve the bytes sent; sums stay float32 and every worker applies the same update',
      'float32',
    ),
  },
  { ...strict, default: {}, description: 'how workers average gradients (docs/data-parallel.md)' },
);

export const WorkersSpec = Type.Object(
  {
    replicas: count('data-parallel workers', 1, { default: 1 }),
    gpusPerWorker: count('nvidia.com/gpu per worker', 0, { default: 0 }),
    resources: Type.Optional(Type.Object({ requests: Type.Optional(ResourceList), limits: Type.Optional(ResourceList) }, { ...strict, description: 'CPU and memory for each worker pod' })),
    image: Type.Optional(Type.String({ minLength: 1, description: "worker image with `ftjob-worker` (installed with `ftjob`) on its PATH (default: the controller's --worker-image)" })),
    imagePullPolicy: Type.Optional(literals(['Always', 'IfNotPresent', 'Never'] as const, 'image pull policy (default: the controller\'s)')),
    port: Type.Optional(Type.Integer({ minimum: 1024, maximum: 65535, description: 'the collective (all-reduce) port (default 29500)' })),
    nodeSelector: Type.Optional(Type.Record(Type.String(), Type.String(), { description: 'node labels worker pods must match (e.g. a GPU pool)' })),
    tolerations: Type.Optional(Type.Array(TolerationSpec, { maxItems: 32, description: 'taints worker pods tolerate (GPU nodes are usually tainted)' })),
    runtimeClassName: Type.Optional(Type.String({ minLength: 1, description: 'RuntimeClass of worker pods (e.g. nvidia)' })),
    serviceAccountName: Type.Optional(Type.String({ minLength: 1, description: 'ServiceAccount of worker pods (workers need no API permissions)' })),
    volumes: Type.Optional(Type.Array(VolumeSpec, { maxItems: 32, description: 'pod volumes for the model, data and output (PVCs or any other volume source)' })),
    volumeMounts: Type.Optional(Type.Array(VolumeMountSpec, { maxItems: 32, description: 'where those volumes appear in the worker container' })),
    allReduce: AllReduceSpec,
  },
  { ...strict, default: {}, description: 'workers' },
);

export const CLEAN_POD_POLICIES = ['All', 'Running', 'None'] as const;

export const RunPolicySpec = Type.Object(
  {
    backoffLimit: count('gang restarts after retryable worker failures before the job fails', 0, { default: 3 }),
    activeDeadlineSeconds: Type.Optional(count('fail the job once it has run this long (seconds since its workers were last started after creation or resume)')),
    ttlSecondsAfterFinished: Type.Optional(count('delete the job this many seconds after it succeeded or failed', 0)),
    cleanPodPolicy: literals(CLEAN_POD_POLICIES, 'worker pods deleted when the job finishes: All, Running (those still running) or None (keep them for debugging)', 'Running'),
    schedulingTimeoutSeconds: count('fail the job when a worker pod stays Pending (unschedulable, image or config errors) this long', 1, { default: 300 }),
  },
  { ...strict, default: {}, description: 'restarts, deadlines and clean-up' },
);

export const OutputSpec = Type.Object(
  {
    path: Type.Optional(Type.String({ minLength: 1, description: 'folder for the fine-tuned model, checkpoints, metrics and report (default: out/<metadata.name>)' })),
  },
  { ...strict, default: {}, description: 'where results go' },
);

export const FineTuneJobSpec = Type.Object(
  {
    model: ModelSpec,
    dataset: DatasetSpec,
    trainable: Type.Optional(TrainableSpec),
    optimizer: OptimizerSpec,
    schedule: ScheduleSpec,
    training: TrainingSpec,
    workers: WorkersSpec,
    output: OutputSpec,
    runPolicy: RunPolicySpec,
    suspend: Type.Boolean({ default: false, description: 'true stops the job: its worker pods are deleted, its status is kept; false resumes it from the latest checkpoint (what Kueue sets)' }),
  },
  { ...strict, description: 'what to fine-tune, on what data, and how' },
);

export const ObjectMeta = Type.Object(
  {
    name: Type.String({ pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63, description: 'job name (a DNS label)' }),
    namespace: Type.Optional(Type.String({ minLength: 1 })),
    labels: Type.Optional(Type.Record(Type.String(), Type.String())),
    annotations: Type.Optional(Type.Record(Type.String(), Type.String())),
  },
  { additionalProperties: true, description: 'Kubernetes object metadata' },
);

export const FineTuneJobSchema = Type.Object(
  {
    apiVersion: Type.Literal(`${API_GROUP}/${API_VERSION}`),
    kind: Type.Literal(KIND),
    metadata: ObjectMeta,
    spec: FineTuneJobSpec,
    status: Type.Optional(Type.Unknown()),
  },
  { ...strict },
);

export const JOB_PHASES = ['Pending', 'Running', 'Restarting', 'Succeeded', 'Failed', 'Suspended'] as const;
export type JobPhase = (typeof JOB_PHASES)[number];

/** A metav1.Condition, as the API conventions define it. */
export const ConditionSchema = Type.Object(
  {
    type: Type.String({ minLength: 1, maxLength: 316, description: 'condition type, e.g. Ready' }),
    status: literals(['True', 'False', 'Unknown'] as const, 'True, False or Unknown'),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'the .metadata.generation the condition was set for' })),
    lastTransitionTime: Type.String({ format: 'date-time', description: 'when status last changed' }),
    reason: Type.String({ minLength: 1, maxLength: 1024, pattern: '^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$', description: 'CamelCase reason' }),
    message: Type.String({ maxLength: 32768, description: 'human-readable details' }),
  },
  { ...strict, description: 'a standard metav1.Condition' },
);

export const TrainingProgressSchema = Type.Object(
  {
    step: Type.Integer({ minimum: 0, description: 'optimizer steps done' }),
    totalSteps: Type.Optional(Type.Integer({ minimum: 0, description: 'optimizer steps planned' })),
    epoch: Type.Integer({ minimum: 0, description: 'current epoch' }),
    loss: Type.Optional(Type.Number({ description: 'last training loss' })),
    validationMetric: Type.Optional(Type.Number({ description: 'last validation metric' })),
    validationMetricName: Type.Optional(Type.String({ description: 'val_accuracy or val_loss' })),
    updatedAt: Type.Optional(Type.String({ format: 'date-time', description: 'when rank 0 last reported' })),
  },
  { ...strict, description: 'training progress read from rank 0' },
);

export const FineTuneJobStatusSchema = Type.Object(
  {
    phase: Type.Optional(literals(JOB_PHASES, 'where the job is in its life')),
    conditions: Type.Optional(Type.Array(ConditionSchema, { description: 'Created, Running, Restarting, Suspended, Succeeded, Failed' })),
    observedGeneration: Type.Optional(Type.Integer({ minimum: 0, description: 'the .metadata.generation this status describes' })),
    replicas: Type.Optional(Type.Integer({ minimum: 0, description: 'worker pods wanted' })),
    readyReplicas: Type.Optional(Type.Integer({ minimum: 0, description: 'worker pods ready' })),
    workersReady: Type.Optional(Type.String({ description: 'ready/total worker pods, e.g. 3/4' })),
    restarts: Type.Optional(Type.Integer({ minimum: 0, description: 'gang restarts so far' })),
    startTime: Type.Optional(Type.String({ format: 'date-time', description: 'when the workers were last started (creation or resume)' })),
    completionTime: Type.Optional(Type.String({ format: 'date-time', description: 'when the job succeeded or failed' })),
    progress: Type.Optional(Type.String({ description: 'training progress, e.g. 57%' })),
    training: Type.Optional(TrainingProgressSchema),
  },
  { ...strict, description: 'observed state, written by the controller' },
);

export type FineTuneJobStatus = Static<typeof FineTuneJobStatusSchema>;
export type Condition = Static<typeof ConditionSchema>;
export type TrainingProgress = Static<typeof TrainingProgressSchema>;

export type FineTuneJob = Static<typeof FineTuneJobSchema>;
export type FineTuneJobSpecT = Static<typeof FineTuneJobSpec>;
export type ModelSpecT = Static<typeof ModelSpec>;
export type DatasetSpecT = Static<typeof DatasetSpec>;
export type DataFileSpecT = Static<typeof DataFileSpec>;
export type TrainableSpecT = Static<typeof TrainableSpec>;
export type OptimizerSpecT = Static<typeof OptimizerSpec>;
export type ScheduleSpecT = Static<typeof ScheduleSpec>;
export type TrainingSpecT = Static<typeof TrainingSpec>;
export type WorkersSpecT = Static<typeof WorkersSpec>;
export type RunPolicySpecT = Static<typeof RunPolicySpec>;
export type TolerationSpecT = Static<typeof TolerationSpec>;
export type HeadSpecT = Static<typeof HeadSpec>;
export type AnySchema = TSchema;
