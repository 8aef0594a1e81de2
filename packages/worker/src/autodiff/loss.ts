/**
 * Losses appended to the forward graph. Each emits the scalar loss and, directly, the gradient of
 * the loss with respect to the model output it reads (cheaper and more accurate than
 * differentiating the loss's own ops).
 */
import { DataType } from '../onnx/types.js';
import { attr, type GraphBuilder } from './builder.js';
import type { ValueFactsTable } from './facts.js';
import { UserError } from '../errors.js';

export type LossKind = 'cross_entropy' | 'mse';
export const LOSS_KINDS: readonly LossKind[] = ['cross_entropy', 'mse'];

export interface LossNodes {
  /** The float scalar loss value. */
  loss: string;
  /** d loss / d prediction, same shape as the prediction. */
  gradPrediction: string;
}

/** Element type and shape of the labels input, derived from the prediction's facts. */
export function labelsSpec(kind: LossKind, prediction: string, facts: ValueFactsTable): { elemType: DataType; rank: number } {
  const rank = facts.rank(prediction);
  return kind === 'cross_entropy' ? { elemType: DataType.INT64, rank: rank - 1 } : { elemType: DataType.FLOAT, rank };
}

export function emitLoss(kind: LossKind, b: GraphBuilder, prediction: string, labels: string, facts: ValueFactsTable, lossName: string): LossNodes {
  if (facts.dataType(prediction) !== DataType.FLOAT) {
    throw new UserError(`the loss reads output '${prediction}', which is not float32`);
  }
  return kind === 'cross_entropy' ? crossEntropy(b, prediction, labels, facts, lossName) : meanSquaredError(b, prediction, labels, lossName);
}

/**
 * Softmax cross-entropy over the last axis, averaged over every other position:
 * loss = -mean(log_softmax(z)[label]);  d loss / d z = (softmax(z) - onehot(label)) / count.
 * Labels must lie in [0, classes); the data loader checks that, since OneHot silently drops others.
 */
function crossEntropy(b: GraphBuilder, logits: string, labels: string, facts: ValueFactsTable, lossName: string): LossNodes {
  const rank = facts.rank(logits);
  if (rank < 2) throw new UserError(`cross_entropy needs logits of rank >= 2 ([..., classes]); output '${logits}' has rank ${rank}`);
  const classes = facts.dims(logits)[rank - 1]!;
  if (facts.get(logits).dynamic[rank - 1]) throw new UserError(`cross_entropy needs a fixed number of classes; the last axis of '${logits}' is dynamic`);
  const logProbs = b.op('LogSoftmax', [logits], { axis: attr.int(-1) }, 'log_probs');
  const oneHot = b.op('OneHot', [labels, b.i64([classes], true), b.f32([0, 1])], { axis: attr.int(-1) }, 'one_hot');
  const picked = b.reduceSum(b.mul(logProbs, oneHot), [-1], false);
  const meanPicked = b.op('ReduceMean', [picked], { keepdims: attr.int(0) }, 'mean_log_prob');
  b.push({ name: b.fresh('loss_node'), opType: 'Neg', domain: '', inputs: [meanPicked], outputs: [lossName], attributes: {} });
  const count = b.sizeAsFloat(labels);
  const probs = b.op('Exp', [logProbs], {}, 'probs');
  const gradPrediction = b.div(b.sub(probs, oneHot), count);
  return { loss: lossName, gradPrediction };
}

/** Mean squared error over every element: loss = mean((p - t)^2);  d loss / d p = 2 (p - t) / count. */
function meanSquaredError(b: GraphBuilder, prediction: string, targets: string, lossName: string): LossNodes {
  const diff = b.sub(prediction, targets);
  const squared = b.mul(diff, diff);
  b.push({
    name: b.fresh('loss_node'),
    opType: 'ReduceMean',
    domain: '',
    inputs: [squared],
    outputs: [lossName],
    attributes: { keepdims: attr.int(0) },
  });
  const scale = b.div(b.f32(2), b.sizeAsFloat(prediction));
  return { loss: lossName, gradPrediction: b.mul(diff, scale) };
}
