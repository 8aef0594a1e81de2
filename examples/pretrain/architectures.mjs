/**
 * The architectures of the two base models in examples/models/, as side-effect-free builders, so
 * that other scripts can build the same networks (with other seeds) without pre-training anything:
 * examples/pretrain/make-base-models.mjs pre-trains them, bench/finetune-claims.mjs trains them
 * from scratch as the baseline of the fine-tuned models. Importing this module only defines things.
 *
 *   buildCnn(seed)             the digits CNN: 3x [Conv3x3 + ReLU + MaxPool2x2] (16, 32, 32 channels),
 *                              Flatten (288), Linear head of 5; `image` [batch,1,28,28] -> `logits`.
 *   buildEncoder(arch, seed)   the one-block transformer text encoder (TEXT_ARCH: vocab 3000, 64
 *                              tokens, d=64, 2 heads, MLP 128, head of 1024); `tokens` -> `logits`.
 *
 * Both draw every initial weight, in a fixed order, from rng(seed): the same seed gives the same
 * model, byte for byte (make-base-models.mjs relies on it to reproduce the committed files).
 */
import { ModelBuilder, rng, DataType, MASK_ID, PAD_ID } from '@finetune/worker';

/** ONNX attribute values (ModelBuilder turns plain numbers into ints). */
export const attr = {
  float: (value) => ({ type: 'float', value }),
  tensor: (value) => ({ type: 'tensor', value }),
};

/** PyTorch's default Linear/Conv init (kaiming_uniform with a=sqrt(5)): U(-1/sqrt(fanIn), 1/sqrt(fanIn)). */
export function torchUniform(random, count, fanIn) {
  const bound = 1 / Math.sqrt(fanIn);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (2 * random() - 1) * bound;
  return out;
}

/** Normal(0, std) by Box-Muller from the seeded generator. */
export function normal(random, count, std) {
  const out = new Float32Array(count);
  for (let i = 0; i < count; i += 2) {
    const u = 1 - random();
    const v = random();
    const r = Math.sqrt(-2 * Math.log(u)) * std;
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < count) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  return out;
}

// Vision: the digits CNN

export function buildCnn(seed) {
  const r = rng(seed);
  const m = new ModelBuilder(17);
  const conv = (x, name, cin, cout) => {
    const fanIn = cin * 9;
    const w = m.param(`${name}.weight`, [cout, cin, 3, 3], torchUniform(r, cout * fanIn, fanIn));
    const b = m.param(`${name}.bias`, [cout], torchUniform(r, cout, fanIn));
    return m.node('Relu', [m.node('Conv', [x, w, b], { kernel_shape: [3, 3], pads: [1, 1, 1, 1] })]);
  };
  const pool = (x) => m.node('MaxPool', [x], { kernel_shape: [2, 2], strides: [2, 2] });
  const x = m.input('image', ['batch', 1, 28, 28]);
  const c1 = pool(conv(x, 'conv1', 1, 16)); // [b,16,14,14]
  const c2 = pool(conv(c1, 'conv2', 16, 32)); // [b,32,7,7]
  const c3 = conv(c2, 'conv3', 32, 32); // [b,32,7,7]
  // A third MaxPool and Flatten (288 features) rather than GlobalAveragePool (32): the spatial
  // layout it keeps is what makes the features transfer to unseen digits (see examples/models/README.md).
  const nf = 32 * 3 * 3;
  const features = m.node('Flatten', [pool(c3)], { axis: 1 }); // [b,288]
  m.node('Gemm', [features, m.param('head.weight', [5, nf], torchUniform(r, 5 * nf, nf)), m.param('head.bias', [5], torchUniform(r, 5, nf))], { transB: 1 });
  const model = m.build();
  // Name the output `logits` (ModelBuilder names values after their op).
  model.graph.nodes.at(-1).outputs = ['logits'];
  model.graph.outputs = [{ name: 'logits', elemType: DataType.FLOAT, shape: ['batch', 5] }];
  model.graph.name = 'digits-cnn';
  return model;
}

// Text: the one-block transformer encoder

/** The text encoder's shape (make-base-models.mjs's TEXT_RECIPE extends it with the pre-training recipe). */
export const TEXT_ARCH = {
  vocabSize: 3000,
  seqLen: 64,
  dModel: 64,
  heads: 2,
  ffn: 128,
  /** Masked-word targets: token ids below this (the most frequent words; ids 0-3 are specials and never targets). */
  targets: 1024,
};

export function buildEncoder(R, seed) {
  const { vocabSize: V, seqLen: T, dModel: D, heads: H, ffn: F, targets: K } = R;
  const dh = D / H;
  const r = rng(seed);
  const m = new ModelBuilder(17);
  const linear = (x, name, fin, fout) => {
    // Stored [in, out] for MatMul (PyTorch stores Linear weights [out, in]).
    const w = m.param(`${name}.weight`, [fin, fout], torchUniform(r, fin * fout, fin));
    const b = m.param(`${name}.bias`, [fout], torchUniform(r, fout, fin));
    return m.node('Add', [m.node('MatMul', [x, w]), b]);
  };
  const layerNorm = (x, name) =>
    m.node('LayerNormalization', [x, m.param(`${name}.weight`, [D], new Float32Array(D).fill(1)), m.param(`${name}.bias`, [D], new Float32Array(D))], { axis: -1, epsilon: attr.float(1e-5) });
  // Scalar constants are Constant nodes, not float initializers, so that no trainable-parameter
  // selection (default: every float initializer) can pick them up.
  const f32 = (name, v) => m.node('Constant', [], { value: attr.tensor({ name, dataType: DataType.FLOAT, dims: [], values: Float32Array.of(v) }) });
  const i64 = (name, v) => m.int64(name, [v.length], v);

  const tokens = m.input('tokens', ['batch', T], DataType.INT64);
  // Padding mask from the tokens themselves: [PAD] = 0.
  const isPad = m.node('Equal', [tokens, m.int64('const.pad_id', [], [PAD_ID])]); // bool [b,T]
  const keep = m.node('Cast', [m.node('Not', [isPad])], { to: DataType.FLOAT }); // float [b,T]
  const negInf = f32('const.neg_large', -1e9);

  const embedded = m.node('Gather', [m.param('embed.weight', [V, D], normal(r, V * D, 0.1)), tokens], { axis: 0 }); // [b,T,D]
  const x0 = m.node('Add', [embedded, m.param('pos.weight', [T, D], normal(r, T * D, 0.1))]);

  // Self-attention (pre-norm), H heads.
  const a = layerNorm(x0, 'block.ln1');
  const headsShape = i64('const.heads_shape', [0, T, H, dh]);
  const heads = (v) => m.node('Transpose', [m.node('Reshape', [v, headsShape])], { perm: [0, 2, 1, 3] }); // [b,H,T,dh]
  const q = heads(linear(a, 'block.attn.query', D, D));
  const k = heads(linear(a, 'block.attn.key', D, D));
  const v = heads(linear(a, 'block.attn.value', D, D));
  const scores = m.node('Mul', [m.node('MatMul', [q, m.node('Transpose', [k], { perm: [0, 1, 3, 2] })]), f32('const.attn_scale', 1 / Math.sqrt(dh))]); // [b,H,T,T]
  const keyPad = m.node('Unsqueeze', [isPad, i64('const.axes_1_2', [1, 2])]); // [b,1,1,T]
  const probs = m.node('Softmax', [m.node('Where', [keyPad, negInf, scores])], { axis: -1 });
  const context = m.node('Reshape', [m.node('Transpose', [m.node('MatMul', [probs, v])], { perm: [0, 2, 1, 3] }), i64('const.merge_shape', [0, T, D])]);
  const x1 = m.node('Add', [x0, linear(context, 'block.attn.out', D, D)]);

  // GELU MLP (erf form), pre-norm.
  const f = linear(layerNorm(x1, 'block.ln2'), 'block.mlp.fc1', D, F);
  const gelu = m.node('Mul', [m.node('Mul', [f, f32('const.half', 0.5)]), m.node('Add', [m.node('Erf', [m.node('Mul', [f, f32('const.inv_sqrt2', Math.SQRT1_2)])]), f32('const.one', 1)])]);
  const x2 = m.node('Add', [x1, linear(gelu, 'block.mlp.fc2', F, D)]);
  const hidden = layerNorm(x2, 'final_ln'); // [b,T,D]

  // Mean over the non-pad positions (at least one, so all-pad input gives zeros, not NaN).
  const keep3 = m.node('Unsqueeze', [keep, i64('const.axes_2', [2])]); // [b,T,1]
  const count = m.node('Clip', [m.node('ReduceSum', [keep3, i64('const.axes_seq2', [1])], { keepdims: 1 }), f32('const.min_count', 1)]); // [b,1,1]
  // Pooling weights: 1/count on every non-pad position, plus 1 on [MASK] positions. Text from the
  // tokenizer never contains [MASK] (words are letters and digits), so for fine-tuning this is the
  // plain masked mean; in pre-training it hands the head the masked position's own hidden state,
  // which makes masked-word prediction learnable (mean pooling alone got half the accuracy).
  const isMask = m.node('Cast', [m.node('Equal', [tokens, m.int64('const.mask_id', [], [MASK_ID])])], { to: DataType.FLOAT });
  const weights = m.node('Add', [m.node('Div', [keep3, count]), m.node('Unsqueeze', [isMask, i64('const.axes_2b', [2])])]); // [b,T,1]
  const pooled = m.node('ReduceSum', [m.node('Mul', [hidden, weights]), i64('const.axes_seq', [1])], { keepdims: 0 }); // [b,D]
  m.node('Gemm', [pooled, m.param('head.weight', [K, D], torchUniform(r, K * D, D)), m.param('head.bias', [K], torchUniform(r, K, D))], { transB: 1 });

  const model = m.build();
  model.graph.nodes.at(-1).outputs = ['logits'];
  model.graph.outputs = [{ name: 'logits', elemType: DataType.FLOAT, shape: ['batch', K] }];
  model.graph.name = 'text-encoder';
  return model;
}
