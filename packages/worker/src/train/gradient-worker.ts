/**
 * The gradient thread: owns the staged training sessions, so onnxruntime's blocking run() keeps
 * this thread busy instead of the main thread, whose event loop meanwhile drives the all-reduce.
 * Micro-batches are accumulated here; on a step's last micro-batch each bucket is averaged into
 * its shared array and announced the moment its stage finishes. Started by
 * gradient-thread.ts; the memory rules are in gradient-thread-protocol.ts.
 */
import { parentPort, workerData } from 'node:worker_threads';
import ort from 'onnxruntime-node';
import { elementCount } from '../onnx/types.js';
import { LABELS_INPUT } from '../autodiff/training-graph.js';
import { GradientAccumulator } from '../optim/accumulate.js';
import type { BatchTensor } from '../data/dataset.js';
import { StagedGradients } from './staged-gradients.js';
import type { Feeds } from './sessions.js';
import { bucketViews, type FromThread, type ThreadInit, type ToThread } from './gradient-thread-protocol.js';

const port = parentPort!;
const init = workerData as ThreadInit;
const sizes = init.params.map((p) => elementCount(p.dims));
const sharedParams = init.sharedParams.map((b) => new Float32Array(b));
/** Per bucket, views of its gradients in the bucket's shared array. */
const sharedGrads = init.buckets.map((bucket, s) => bucketViews(init.sharedGrads[s]!, bucket, sizes));
/** onnxruntime-node reads only unshared memory: the step's parameters are copied here. */
const params = sizes.map((n) => new Float32Array(n));
const accumulators = init.buckets.map((bucket) => new GradientAccumulator(bucket.map((i) => sizes[i]!)));
/** Per bucket, buffers for micro-batches after the first (allocated on first use). */
const scratch: (Float32Array[] | undefined)[] = init.buckets.map(() => undefined);
let losses: number[] = [];

const post = (msg: FromThread) => port.postMessage(msg);
const report = (err: unknown) => post({ type: 'error', message: err instanceof Error ? err.message : String(err), ...(err instanceof Error && err.stack ? { stack: err.stack } : {}) });

function tensorOf(t: BatchTensor): ort.Tensor {
  return new ort.Tensor(t.type, t.data, t.dims);
}

async function micro(staged: StagedGradients, msg: Extract<ToThread, { type: 'micro' }>): Promise<void> {
  if (msg.first) {
    params.forEach((p, i) => p.set(sharedParams[i]!));
    for (const acc of accumulators) acc.reset();
    losses = [];
  }
  const first = accumulators[0]!.count === 0;
  const inputs: Feeds = { [LABELS_INPUT]: tensorOf(msg.batch.labels) };
  for (const [name, t] of Object.entries(msg.batch.inputs)) inputs[name] = tensorOf(t);
  const weight = msg.batch.weight;
  await staged.run(
    inputs,
    params,
    // The first micro-batch's gradients go straight into the accumulators; later ones beside them.
    (s) => (first ? accumulators[s]!.sums : (scratch[s] ??= init.buckets[s]!.map((i) => new Float32Array(sizes[i]!)))),
    (s, loss) => {
      const acc = accumulators[s]!;
      if (first) acc.addWritten(weight);
      else acc.add(scratch[s]!, weight);
      if (loss !== undefined) losses.push(loss);
      if (!msg.last) return;
      acc.average(sharedGrads[s]!);
      post({ type: 'bucket', bucket: s, ...(s === 0 ? { losses } : {}) });
    },
  );
}

async function main(): Promise<void> {
  const staged = await StagedGradients.create(init.training, init.params, init.buckets, init.intraOpThreads ? { intraOpThreads: init.intraOpThreads } : {});
  let queue = Promise.resolve();
  port.on('message', (msg: ToThread) => {
    queue = queue
      .then(async () => {
        if (msg.type === 'micro') await micro(staged, msg);
        else if (msg.type === 'close') {
          await staged.release();
          port.close();
        }
      })
      .catch(report);
  });
  post({ type: 'ready' });
}

main().catch(report);
