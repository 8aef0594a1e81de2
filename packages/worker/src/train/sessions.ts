/**
 * The training and evaluation graphs loaded into onnxruntime-node. Parameters live in
 * Float32Arrays owned by the trainer and are fed by reference on every run (no copies).
 */
import ort from 'onnxruntime-node';
import { modelToBytes } from '../onnx/load.js';
import { gradName, LABELS_INPUT, LOSS_OUTPUT, type TrainingArtifacts } from '../autodiff/training-graph.js';

export interface SessionOptions {
  /** Threads for one op (default: onnxruntime's choice, all cores). */
  intraOpThreads?: number;
}

export type Feeds = Record<string, ort.Tensor>;

export interface GradientResult {
  loss: number;
  grads: Map<string, Float32Array>;
}

export interface EvalResult {
  loss: number;
  prediction: ort.Tensor;
}

function ortOptions(options: SessionOptions): ort.InferenceSession.SessionOptions {
  return {
    graphOptimizationLevel: 'all',
    ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
    interOpNumThreads: 1,
  };
}

export class TrainingSessions {
  private constructor(
    /** Absent when created for evaluation only (the training graph then runs in the gradient thread). */
    private readonly training: ort.InferenceSession | undefined,
    private readonly evaluation: ort.InferenceSession,
    private readonly artifacts: TrainingArtifacts,
  ) {}

  static async create(artifacts: TrainingArtifacts, options: SessionOptions = {}): Promise<TrainingSessions> {
    const sessionOptions = ortOptions(options);
    const [training, evaluation] = await Promise.all([
      ort.InferenceSession.create(modelToBytes(artifacts.training), sessionOptions),
      ort.InferenceSession.create(modelToBytes(artifacts.eval), sessionOptions),
    ]);
    return new TrainingSessions(training, evaluation, artifacts);
  }

  /** Only the evaluation graph: gradients() is unavailable. */
  static async createEvaluation(artifacts: TrainingArtifacts, options: SessionOptions = {}): Promise<TrainingSessions> {
    return new TrainingSessions(undefined, await ort.InferenceSession.create(modelToBytes(artifacts.eval), ortOptions(options)), artifacts);
  }

  private feedsWith(inputs: Feeds, labels: ort.Tensor, params: ReadonlyMap<string, Float32Array>): Feeds {
    const feeds: Feeds = { ...inputs, [LABELS_INPUT]: labels };
    for (const p of this.artifacts.params) feeds[p.name] = new ort.Tensor('float32', params.get(p.name)!, p.dims);
    return feeds;
  }

  /** Loss and the gradient of every trainable parameter for one (micro-)batch. */
  async gradients(inputs: Feeds, labels: ort.Tensor, params: ReadonlyMap<string, Float32Array>): Promise<GradientResult> {
    if (!this.training) throw new Error('TrainingSessions: created for evaluation only');
    const out = await this.training.run(this.feedsWith(inputs, labels, params));
    const grads = new Map<string, Float32Array>();
    for (const p of this.artifacts.params) grads.set(p.name, out[gradName(p.name)]!.data as Float32Array);
    return { loss: (out[LOSS_OUTPUT]!.data as Float32Array)[0]!, grads };
  }

  /** Loss and the model's prediction for one batch (no gradients). */
  async evaluate(inputs: Feeds, labels: ort.Tensor, params: ReadonlyMap<string, Float32Array>): Promise<EvalResult> {
    const prediction = this.artifacts.prediction;
    const out = await this.evaluation.run(this.feedsWith(inputs, labels, params), [LOSS_OUTPUT, prediction]);
    return { loss: (out[LOSS_OUTPUT]!.data as Float32Array)[0]!, prediction: out[prediction]! };
  }

  async release(): Promise<void> {
    await Promise.all([this.training?.release(), this.evaluation.release()]);
  }
}
