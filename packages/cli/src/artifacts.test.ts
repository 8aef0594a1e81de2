/** The `ftjob artifacts` contract, exercised through the real binary in a child process. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ort from 'onnxruntime-node';
import { ModelBuilder, loadModel, randomValues, rng, saveModel, nonStandardOps } from '@finetune/worker';

const BIN = fileURLToPath(new URL('../bin/ftjob.js', import.meta.url));

function ftjob(...args: string[]) {
  const res = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8' });
  return { code: res.status, stdout: res.stdout, stderr: res.stderr };
}

function writeMlp(dir: string): string {
  const r = rng(5);
  const m = new ModelBuilder();
  const x = m.input('x', ['batch', 6]);
  const h = m.node('Relu', [m.node('Gemm', [x, m.param('fc1.weight', [8, 6], randomValues(r, 48)), m.param('fc1.bias', [8], randomValues(r, 8))], { transB: 1 })]);
  m.output(m.node('Gemm', [h, m.param('fc2.weight', [3, 8], randomValues(r, 24)), m.param('fc2.bias', [3], randomValues(r, 3))], { transB: 1 }));
  const path = join(dir, 'mlp.onnx');
  saveModel(m.build(), path);
  return path;
}

test('--help lists the artifacts and inspect subcommands', () => {
  const res = ftjob('--help');
  assert.equal(res.code, 0);
  assert.match(res.stdout, /artifacts \[options\] <model>/);
  assert.match(res.stdout, /inspect \[options\] <model>/);
});

test('inspect lists inputs, initializers and op counts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'ftjob-cli-'));
  const res = ftjob('inspect', writeMlp(dir));
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /inputs:\n  x: float \[batch, 6\]/);
  assert.match(res.stdout, /fc1\.weight: float \[8, 6\]/);
  assert.match(res.stdout, /Gemm x2\n/);
});

test('artifacts writes training.onnx and eval.onnx that follow the documented contract', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ftjob-cli-'));
  const model = writeMlp(dir);
  const out = join(dir, 'art');
  const res = ftjob('artifacts', model, '--out', out, '--trainable', 'fc2.*', '--loss', 'cross_entropy');
  assert.equal(res.code, 0, res.stderr);
  assert.match(res.stdout, /trainable: 2 tensors, 27 values/);
  assert.match(res.stdout, /frozen: 2 tensors, 56 values/);

  const training = await loadModel(join(out, 'training.onnx'));
  assert.deepEqual(training.graph.inputs.map((i) => i.name), ['x', 'labels', 'fc2.weight', 'fc2.bias']);
  assert.deepEqual(training.graph.outputs.map((o) => o.name), ['loss', 'fc2.weight_grad', 'fc2.bias_grad']);
  assert.equal(training.graph.inputs[1]!.elemType, 7, 'labels are int64 for cross_entropy');
  assert.deepEqual(nonStandardOps(training), []);
  assert.ok(training.graph.initializers.some((t) => t.name === 'fc1.weight'), 'frozen weights stay initializers');

  const evaluation = await loadModel(join(out, 'eval.onnx'));
  const forward = await loadModel(model);
  assert.deepEqual(evaluation.graph.outputs.map((o) => o.name), ['loss', forward.graph.outputs[0]!.name]);
  const manifest = JSON.parse(readFileSync(join(out, 'artifacts.json'), 'utf8'));
  assert.equal(manifest.format, 'finetune-operator/artifacts@1');

  // onnxruntime loads and runs it; gradient shapes equal parameter shapes.
  const session = await ort.InferenceSession.create(join(out, 'training.onnx'));
  const feeds = {
    x: new ort.Tensor('float32', randomValues(rng(1), 12), [2, 6]),
    labels: new ort.Tensor('int64', BigInt64Array.from([0n, 2n]), [2]),
    'fc2.weight': new ort.Tensor('float32', randomValues(rng(2), 24), [3, 8]),
    'fc2.bias': new ort.Tensor('float32', randomValues(rng(3), 3), [3]),
  };
  const result = await session.run(feeds);
  assert.deepEqual(result['fc2.weight_grad']!.dims, [3, 8]);
  assert.equal(result.loss!.dims.length, 0);
});

test('mse loss takes float targets; without --trainable every float initializer trains', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ftjob-cli-'));
  const out = join(dir, 'art');
  const res = ftjob('artifacts', writeMlp(dir), '--out', out, '--loss', 'mse');
  assert.equal(res.code, 0, res.stderr);
  const training = await loadModel(join(out, 'training.onnx'));
  assert.equal(training.graph.inputs.find((i) => i.name === 'labels')!.elemType, 1);
  assert.deepEqual(training.graph.outputs.map((o) => o.name), ['loss', 'fc1.weight_grad', 'fc1.bias_grad', 'fc2.weight_grad', 'fc2.bias_grad']);
});

const badCases: [string, (dir: string) => string[], RegExp][] = [
  ['a missing model file', (dir) => ['artifacts', join(dir, 'missing.onnx'), '--out', join(dir, 'o')], /cannot read model file .*missing\.onnx.*ENOENT/],
  ['a file that is not ONNX', (dir) => {
    writeFileSync(join(dir, 'notes.onnx'), 'hello, I am a text file\n');
    return ['artifacts', join(dir, 'notes.onnx'), '--out', join(dir, 'o')];
  }, /not an ONNX model/],
  ['a trainable name that matches no initializer', (dir) => ['artifacts', writeMlp(dir), '--out', join(dir, 'o'), '--trainable', 'fc3.weight'], /--trainable fc3\.weight: no initializer has this name \(initializers include: .*fc1\.weight/],
  ['a glob that matches nothing', (dir) => ['artifacts', writeMlp(dir), '--out', join(dir, 'o'), '--trainable', 'encoder.*'], /--trainable encoder\.\*: the pattern matches no float32 initializer/],
  ['an unknown loss', (dir) => ['artifacts', writeMlp(dir), '--out', join(dir, 'o'), '--loss', 'hinge'], /option '--loss <kind>' argument 'hinge' is invalid.*cross_entropy, mse/],
  ['a missing --out', (dir) => ['artifacts', writeMlp(dir)], /required option '--out <dir>' not specified/],
  ['an unknown output name', (dir) => ['artifacts', writeMlp(dir), '--out', join(dir, 'o'), '--output', 'probs'], /--output probs: the model has no output of that name/],
  ['a malformed --dim', (dir) => ['artifacts', writeMlp(dir), '--out', join(dir, 'o'), '--dim', 'batch'], /expected NAME=SIZE/],
];

for (const [label, args, message] of badCases) {
  test(`artifacts rejects ${label} with one clear line and a non-zero exit`, () => {
    const dir = mkdtempSync(join(tmpdir(), 'ftjob-bad-'));
    const res = ftjob(...args(dir));
    assert.notEqual(res.code, 0);
    assert.match(res.stderr, message);
    assert.doesNotMatch(res.stderr, /\n\s+at /, 'no stack trace');
    assert.ok(!existsSync(join(dir, 'o', 'training.onnx')), 'nothing written on error');
  });
}
