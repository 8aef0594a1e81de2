/**
 * Cutting a training graph into stages must not change what it computes: the staged sessions
 * give exactly the whole graph's loss and gradients (the same nodes run on the same inputs), for
 * an MLP and a small CNN, across batch-size changes (carried buffers are reused only while the
 * input shapes repeat).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import ort from 'onnxruntime-node';
import { buildTrainingArtifacts, gradName, LABELS_INPUT, LOSS_OUTPUT, type TrainingArtifacts } from '../autodiff/training-graph.js';
import { ModelBuilder, randomValues, rng } from '../testing/model-builder.js';
import { modelToBytes } from '../onnx/load.js';
import { elementCount, type Model } from '../onnx/types.js';
import { canSplit, planStages } from './graph-stages.js';
import { gradientReadyOrder, planBuckets } from './buckets.js';
import { StagedGradients } from './staged-gradients.js';

function mlpModel(): Model {
  const r = rng(5);
  const m = new ModelBuilder();
  let h = m.input('x', ['batch', 6]);
  const dims = [6, 12, 10, 3];
  for (let l = 1; l < dims.length; l++) {
    const [i, o] = [dims[l - 1]!, dims[l]!];
    h = m.node('Gemm', [h, m.param(`fc${l}.weight`, [o, i], randomValues(r, o * i, -0.5, 0.5)), m.param(`fc${l}.bias`, [o], randomValues(r, o, -0.5, 0.5))], { transB: 1 });
    if (l < dims.length - 1) h = m.node('Tanh', [h]);
  }
  m.output(h);
  return m.build();
}

function cnnModel(): Model {
  const r = rng(9);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 1, 6, 6]);
  const c1 = m.node('Relu', [m.node('Conv', [x, m.param('conv1.weight', [4, 1, 3, 3], randomValues(r, 36, -0.4, 0.4)), m.param('conv1.bias', [4], randomValues(r, 4, -0.1, 0.1))], { pads: [1, 1, 1, 1] })]);
  const c2 = m.node('Relu', [m.node('Conv', [c1, m.param('conv2.weight', [4, 4, 3, 3], randomValues(r, 144, -0.3, 0.3)), m.param('conv2.bias', [4], randomValues(r, 4, -0.1, 0.1))], { pads: [1, 1, 1, 1] })]);
  const flat = m.node('Flatten', [c2], { axis: 1 });
  m.output(m.node('Gemm', [flat, m.param('fc.weight', [3, 144], randomValues(r, 432, -0.1, 0.1)), m.param('fc.bias', [3], randomValues(r, 3, -0.1, 0.1))], { transB: 1 }));
  return m.build();
}

function initialValues(model: Model, artifacts: TrainingArtifacts): Float32Array[] {
  const inits = new Map(model.graph.initializers.map((t) => [t.name, t]));
  return artifacts.params.map((p) => Float32Array.from(inits.get(p.name)!.values as Float32Array));
}

/** Each parameter its own bucket (the finest cut): the most carried values. */
function finestBuckets(a: TrainingArtifacts): number[][] {
  return planBuckets(gradientReadyOrder(a.training.graph, a.params), a.params, 1);
}

async function compare(model: Model, exampleDims: number[], batches: number[]) {
  const artifacts = await buildTrainingArtifacts(model, { loss: 'cross_entropy' });
  const buckets = finestBuckets(artifacts);
  assert.ok(buckets.length >= 3, `several stages (${buckets.length})`);
  const whole = await ort.InferenceSession.create(modelToBytes(artifacts.training), { graphOptimizationLevel: 'all', intraOpNumThreads: 1 });
  const staged = await StagedGradients.create(artifacts.training, artifacts.params, buckets, { intraOpThreads: 1 });
  assert.equal(staged.stageCount, buckets.length);
  const params = initialValues(model, artifacts);
  const r = rng(17);
  const targets = buckets.map((b) => b.map((i) => new Float32Array(elementCount(artifacts.params[i]!.dims))));
  for (const n of batches) {
    const x = new ort.Tensor('float32', randomValues(r, n * elementCount(exampleDims)), [n, ...exampleDims]);
    const labels = new ort.Tensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(i % 3)), [n]);
    const feeds: Record<string, ort.Tensor> = { x, [LABELS_INPUT]: labels };
    artifacts.params.forEach((p, i) => (feeds[p.name] = new ort.Tensor('float32', params[i]!, p.dims)));
    const expected = await whole.run(feeds);
    const seen: number[] = [];
    let loss: number | undefined;
    await staged.run({ x, [LABELS_INPUT]: labels }, params, (s) => targets[s]!, (s, l) => {
      seen.push(s);
      if (l !== undefined) loss = l;
    });
    assert.deepEqual(seen, buckets.map((_, s) => s), 'stages report in order');
    assert.equal(loss, (expected[LOSS_OUTPUT]!.data as Float32Array)[0], `batch ${n}: loss`);
    buckets.forEach((bucket, s) =>
      bucket.forEach((p, j) => {
        const name = artifacts.params[p]!.name;
        assert.deepEqual(targets[s]![j], expected[gradName(name)]!.data, `batch ${n}: gradient of ${name}`);
      }),
    );
  }
  await Promise.all([whole.release(), staged.release()]);
}

test('an MLP cut into one stage per parameter gives the whole graph\'s loss and gradients, bit for bit', async () => {
  await compare(mlpModel(), [6], [5, 5, 3, 5]);
});

test('a CNN cut into stages gives the whole graph\'s loss and gradients, bit for bit', async () => {
  await compare(cnnModel(), [1, 6, 6], [4, 4, 2]);
});

test('every node runs in exactly one stage; carried values go from an earlier stage to a later one', async () => {
  const artifacts = await buildTrainingArtifacts(mlpModel(), { loss: 'cross_entropy' });
  const buckets = finestBuckets(artifacts);
  const wanted = buckets.map((b, s) => [...(s === 0 ? [LOSS_OUTPUT] : []), ...b.map((i) => gradName(artifacts.params[i]!.name))]);
  const plans = planStages(artifacts.training.graph, wanted);
  const placed = plans.flatMap((p) => p.nodes.filter((n) => n.inputs.some(Boolean)).map((n) => n.name));
  const graphNodes = artifacts.training.graph.nodes.filter((n) => n.inputs.some(Boolean)).map((n) => n.name);
  assert.deepEqual([...placed].sort(), [...graphNodes].sort());
  plans.forEach((plan, s) => {
    for (const name of plan.carriedIn) assert.ok(plans.slice(0, s).some((earlier) => earlier.carriedOut.includes(name)), `stage ${s} reads '${name}' from an earlier stage`);
  });
  // The forward pass and the loss run in the first stage.
  assert.ok(plans[0]!.nodes.some((n) => n.outputs.includes(LOSS_OUTPUT)));
  assert.deepEqual(plans.at(-1)!.carriedOut, []);
});

test('graphs with subgraphs are not cut, and unknown outputs are refused', async () => {
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 2]);
  const cond = m.input('cond', [], 9);
  const branch = (op: string) => ({ type: 'graph' as const, value: { name: op, nodes: [{ name: op, opType: op, domain: '', inputs: [x], outputs: [`${op}_out`], attributes: {} }], inputs: [], outputs: [{ name: `${op}_out`, elemType: 1 }], initializers: [], valueInfo: [] } });
  m.output(m.node('If', [cond], { then_branch: branch('Relu'), else_branch: branch('Tanh') }));
  const graph = m.build().graph;
  assert.equal(canSplit(graph), false);
  assert.throws(() => planStages(graph, [[graph.outputs[0]!.name]]), /subgraph/);
  assert.throws(() => planStages(mlpModel().graph, [['nope']]), /'nope' is not an output/);
});
