import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFineTuneJob, SpecError } from './validate.js';

const minimal = `
apiVersion: finetune.dev/v1alpha1
kind: FineTuneJob
metadata:
  name: digits
spec:
  model:
    source: examples/models/base.onnx
  dataset:
    builtin: mnist
`;

function problems(yaml: string): string[] {
  try {
    parseFineTuneJob(yaml, 'job.yaml');
  } catch (err) {
    assert.ok(err instanceof SpecError, `expected a SpecError, got ${err}`);
    assert.match(err.message, /^job\.yaml: /);
    return err.problems;
  }
  assert.fail('expected the spec to be rejected');
}

test('a minimal job gets documented defaults', () => {
  const job = parseFineTuneJob(minimal);
  assert.equal(job.spec.optimizer.type, 'adamw');
  assert.equal(job.spec.optimizer.learningRate, 1e-3);
  assert.equal(job.spec.schedule.type, 'constant');
  assert.equal(job.spec.training.batchSize, 32);
  assert.equal(job.spec.training.epochs, 1);
  assert.equal(job.spec.training.loss, 'cross_entropy');
  assert.equal(job.spec.workers.replicas, 1);
  assert.equal(job.spec.dataset.validationSplit, 0.1);
  assert.equal(job.spec.dataset.labelField, 'label');
});

test('unknown fields are rejected with their path, and a near miss is suggested', () => {
  assert.deepEqual(problems(minimal + '  training:\n    epoch: 3\n'), ["spec.training.epoch: unknown field (did you mean 'epochs'?)"]);
  assert.deepEqual(problems(minimal + '  colour: blue\n'), ['spec.colour: unknown field (allowed: model, dataset, trainable, optimizer, schedule, training, workers, output, runPolicy, suspend)']);
});

test('bad values name the field and what was expected', () => {
  assert.deepEqual(problems(minimal + '  optimizer:\n    learningRate: -1\n'), ['spec.optimizer.learningRate: must be > 0']);
  assert.deepEqual(problems(minimal + '  optimizer:\n    type: adam\n'), ['spec.optimizer.type: must be one of "adamw", "sgd"']);
  assert.deepEqual(problems(minimal + '  training:\n    batchSize: 2.5\n'), ['spec.training.batchSize: must be integer']);
  assert.deepEqual(problems(minimal.replace('name: digits', 'name: Digits_1')), ['metadata.name: must match pattern "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"']);
  assert.deepEqual(problems(minimal.replace('builtin: mnist', 'builtin: cifar')), ['spec.dataset.builtin: must be one of "mnist", "spam-assassin"']);
});

test('missing required fields are reported', () => {
  const noModel = minimal.replace('  model:\n    source: examples/models/base.onnx\n', '');
  assert.deepEqual(problems(noModel), ['spec.model: required field is missing']);
  assert.deepEqual(problems(minimal.replace('kind: FineTuneJob', 'kind: Job')), ['kind: must be "FineTuneJob"']);
});

test('several problems are reported together', () => {
  const p = problems(minimal + '  optimizer:\n    learningRate: 0\n  training:\n    epochs: 0\n');
  assert.equal(p.length, 2);
  assert.ok(p.includes('spec.training.epochs: must be >= 1'));
});

test('cross-field rules: dataset source, optimizer fields, trainable choice, head and batch', () => {
  assert.deepEqual(problems(minimal.replace('builtin: mnist', 'validationSplit: 0.2')), ['spec.dataset: give either builtin or train']);
  assert.deepEqual(problems(minimal + '  optimizer:\n    type: adamw\n    momentum: 0.9\n'), ["spec.optimizer.momentum: applies only to type 'sgd'"]);
  assert.deepEqual(problems(minimal + '  trainable:\n    headOnly: true\n    patterns: ["fc.*"]\n'), ['spec.trainable: give at most one of patterns, freezeBelow, headOnly (got patterns, headOnly)']);
  assert.deepEqual(problems(minimal.replace('base.onnx\n', 'base.onnx\n    head:\n      numClasses: 1\n')), ['spec.model.head.numClasses: must be >= 2']);
  assert.deepEqual(problems(minimal + '  training:\n    batchSize: 30\n  workers:\n    replicas: 4\n'), ['spec.training.batchSize: 30 must be divisible by spec.workers.replicas (4)']);
  assert.deepEqual(problems(minimal.replace('builtin: mnist', 'builtin: spam-assassin\n    digits: [1, 2]')), ["spec.dataset.digits: applies only to builtin 'mnist'"]);
  assert.deepEqual(problems(minimal.replace('builtin: mnist', 'train:\n      path: x.npy')), ['spec.dataset.train.labels: required for npy data (the file with the labels)']);
});

test('YAML syntax errors give the line', () => {
  assert.deepEqual(problems('apiVersion: [unclosed\nkind: FineTuneJob\n').length, 1);
  assert.match(problems('apiVersion: [unclosed\nkind: FineTuneJob\n')[0]!, /^line \d+, column \d+: /);
  assert.deepEqual(problems('- just\n- a list\n'), ['expected a FineTuneJob object (apiVersion, kind, metadata, spec)']);
});

test('run policy and suspend get their defaults; workers take scheduling fields and volumes', () => {
  const job = parseFineTuneJob(`${minimal}
  workers:
    nodeSelector: { pool: gpu }
    tolerations: [{ key: nvidia.com/gpu, operator: Exists, effect: NoSchedule }]
    volumes: [{ name: out, persistentVolumeClaim: { claimName: results } }]
    volumeMounts: [{ name: out, mountPath: /out }]
`);
  assert.deepEqual(job.spec.runPolicy, { backoffLimit: 3, cleanPodPolicy: 'Running', schedulingTimeoutSeconds: 300 });
  assert.equal(job.spec.suspend, false);
  assert.deepEqual(job.spec.workers.volumes, [{ name: 'out', persistentVolumeClaim: { claimName: 'results' } }], 'the volume source is kept');
});

test('a volume mount must name a declared volume, and volume names are unique', () => {
  assert.deepEqual(
    problems(`${minimal}
  workers:
    volumes: [{ name: out, emptyDir: {} }, { name: out, emptyDir: {} }]
    volumeMounts: [{ name: data, mountPath: /data }]
`),
    ["spec.workers.volumeMounts[0].name: 'data' is not a volume in spec.workers.volumes", 'spec.workers.volumes: volume names must be unique'],
  );
  assert.deepEqual(
    problems(`${minimal}
  runPolicy: { cleanPodPolicy: Some }
`),
    ['spec.runPolicy.cleanPodPolicy: must be one of "All", "Running", "None"'],
  );
});

test('spec.workers.allReduce: float32 without overlap by default; bad choices name the field', () => {
  assert.deepEqual(parseFineTuneJob(minimal).spec.workers.allReduce, { overlap: 'never', bucketMiB: 4, wirePrecision: 'float32' });
  const set = parseFineTuneJob(`${minimal}  workers:\n    allReduce: { overlap: auto, wirePrecision: bfloat16 }\n`).spec.workers.allReduce;
  assert.deepEqual(set, { overlap: 'auto', bucketMiB: 4, wirePrecision: 'bfloat16' });
  assert.deepEqual(problems(`${minimal}  workers:\n    allReduce: { wirePrecision: fp8 }\n`), ['spec.workers.allReduce.wirePrecision: must be one of "float32", "bfloat16", "float16"']);
  assert.deepEqual(problems(`${minimal}  workers:\n    allReduce: { bucketMiB: 0 }\n`), ['spec.workers.allReduce.bucketMiB: must be > 0']);
  assert.deepEqual(problems(`${minimal}  workers:\n    allReduce: { overlap: sometimes }\n`), ['spec.workers.allReduce.overlap: must be one of "never", "auto", "always"']);
});
