import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateFineTuneJob } from '@finetune/api';
import { planWorkers, loopbackNetwork, ENV } from './workers.js';

const job = validateFineTuneJob({
  apiVersion: 'finetune.dev/v1alpha1',
  kind: 'FineTuneJob',
  metadata: { name: 'digits', namespace: 'ml' },
  spec: { model: { source: 'm.onnx' }, dataset: { builtin: 'mnist' }, workers: { replicas: 3 }, training: { batchSize: 30 } },
});

test('one worker spec per replica, each with the full rendezvous environment', () => {
  const plan = planWorkers(job, loopbackNetwork(7000), 'secret');
  assert.equal(plan.length, 3);
  assert.deepEqual(plan.map((w) => w.env[ENV.rank]), ['0', '1', '2']);
  for (const w of plan) {
    assert.equal(w.env[ENV.worldSize], '3');
    assert.equal(w.env[ENV.peers], '127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002');
    assert.equal(w.env[ENV.port], String(7000 + w.rank));
    assert.equal(w.env[ENV.jobId], 'ml/digits');
    assert.equal(w.env[ENV.token], 'secret');
  }
});

test('the plan is a pure function of its inputs, and a replica override wins', () => {
  assert.deepEqual(planWorkers(job, loopbackNetwork(7000), 't'), planWorkers(job, loopbackNetwork(7000), 't'));
  assert.equal(planWorkers(job, loopbackNetwork(7000), 't', 1).length, 1);
});
