/**
 * Runs a training graph cut into stages (graph-stages.ts), one onnxruntime session per stage, and
 * reports each stage's gradients as soon as it finishes. Gradients are written by onnxruntime
 * straight into caller-given buffers (preallocated outputs), and the values carried between
 * stages reuse their buffers from the previous micro-batch of the same shape, so a step touches
 * no fresh memory once warm.
 */
import ort from 'onnxruntime-node';
import { modelToBytes } from '../onnx/load.js';
import { DataType, ORT_ELEMENT_TYPES, type Model } from '../onnx/types.js';
import { gradName, LOSS_OUTPUT, type ParameterInfo } from '../autodiff/training-graph.js';
import { planStages, stageModel, type StagePlan } from './graph-stages.js';
import type { Feeds, SessionOptions } from './sessions.js';

interface Stage {
  plan: StagePlan;
  session: ort.InferenceSession;
  /** Parameter indices whose gradients this stage outputs, in bucket order. */
  params: number[];
}

export class StagedGradients {
  /** Carried outputs of the last micro-batch, reused as preallocated outputs while the input shapes repeat. */
  private spare = new Map<string, ort.Tensor>();
  private spareKey = '';
  private recycle = true;
  private readonly paramIndex: Map<string, number>;

  private constructor(
    private readonly stages: Stage[],
    private readonly params: readonly ParameterInfo[],
  ) {
    this.paramIndex = new Map(params.map((p, i) => [p.name, i]));
  }

  /**
   * One stage per bucket (parameter indices, in the order the stages run); the loss comes out of
   * the first. Sessions are created in order, so each stage's carried inputs are typed from the
   * outputs onnxruntime inferred for the stages before it.
   */
  static async create(training: Model, params: readonly ParameterInfo[], buckets: readonly (readonly number[])[], options: SessionOptions = {}): Promise<StagedGradients> {
    const wanted = buckets.map((bucket, s) => [...(s === 0 ? [LOSS_OUTPUT] : []), ...bucket.map((i) => gradName(params[i]!.name))]);
    const plans = planStages(training.graph, wanted);
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      graphOptimizationLevel: 'all',
      ...(options.intraOpThreads ? { intraOpNumThreads: options.intraOpThreads } : {}),
      interOpNumThreads: 1,
    };
    const types = new Map<string, DataType>();
    const stages: Stage[] = [];
    try {
      for (const [s, plan] of plans.entries()) {
        const session = await ort.InferenceSession.create(modelToBytes(stageModel(training, plan, types, s)), sessionOptions);
        stages.push({ plan, session, params: [...buckets[s]!] });
        for (const meta of session.outputMetadata) {
          if (meta.isTensor && plan.carriedOut.includes(meta.name)) {
            const type = ORT_ELEMENT_TYPES[meta.type];
            if (type === undefined || type === DataType.STRING) throw new Error(`stage ${s}: carried value '${meta.name}' has type ${meta.type}, which stages cannot pass on`);
            types.set(meta.name, type);
          }
        }
      }
    } catch (err) {
      await Promise.all(stages.map((s) => s.session.release()));
      throw err;
    }
    return new StagedGradients(stages, params);
  }

  get stageCount(): number {
    return this.stages.length;
  }

  /** Parameter indices of each stage's gradients. */
  get buckets(): number[][] {
    return this.stages.map((s) => [...s.params]);
  }

  /**
   * Runs every stage on one micro-batch. `inputs` holds the model inputs and the labels;
   * `targets(s)` gives the buffers stage s writes its gradients into (one per parameter of its
   * bucket). `onStage(s, loss)` runs after stage s has written them (loss: from the first stage).
   */
  async run(
    inputs: Feeds,
    params: readonly Float32Array[],
    targets: (stage: number) => readonly Float32Array[],
    onStage: (stage: number, loss: number | undefined) => void,
  ): Promise<void> {
    const key = Object.entries(inputs).map(([name, t]) => `${name}:${t.dims.join('x')}`).join(',');
    const reuse = this.recycle && key === this.spareKey;
    const carried = new Map<string, ort.Tensor>();
    for (const [s, stage] of this.stages.entries()) {
      const feeds: Feeds = {};
      for (const name of stage.plan.graphInputs) {
        const p = this.paramIndex.get(name);
        feeds[name] = p !== undefined ? new ort.Tensor('float32', params[p]!, this.params[p]!.dims) : inputs[name]!;
        if (!feeds[name]) throw new Error(`stage ${s}: no value for input '${name}'`);
      }
      for (const name of stage.plan.carriedIn) feeds[name] = carried.get(name)!;
      const fetches: Record<string, ort.Tensor | null> = {};
      const out = targets(s);
      stage.params.forEach((p, j) => (fetches[gradName(this.params[p]!.name)] = new ort.Tensor('float32', out[j]!, this.params[p]!.dims)));
      if (s === 0) fetches[LOSS_OUTPUT] = null;
      for (const name of stage.plan.carriedOut) fetches[name] = (reuse && this.spare.get(name)) || null;
      let result: ort.InferenceSession.OnnxValueMapType;
      try {
        result = await stage.session.run(feeds, fetches);
      } catch (err) {
        // A carried value whose shape depends on the data (not only on the input shapes) cannot
        // be preallocated: run again without, and stop recycling.
        if (!reuse) throw err;
        this.recycle = false;
        for (const name of stage.plan.carriedOut) fetches[name] = null;
        result = await stage.session.run(feeds, fetches);
      }
      for (const name of stage.plan.carriedOut) carried.set(name, result[name] as ort.Tensor);
      onStage(s, s === 0 ? Number((result[LOSS_OUTPUT]!.data as Float32Array)[0]) : undefined);
    }
    this.spare = carried;
    this.spareKey = key;
  }

  async release(): Promise<void> {
    await Promise.all(this.stages.map((s) => s.session.release()));
  }
}
