import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseFineTuneJob, validateFineTuneJob } from '@finetune/api';
import { desiredObjects, jobFileText, type ClusterFineTuneJob, type ObjectPlanOptions, type EnvVar } from './objects.js';
import { ENV } from './workers.js';

function clusterJob(spec: Record<string, unknown>, name = 'digits'): ClusterFineTuneJob {
  const job = validateFineTuneJob({
    apiVersion: 'finetune.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: { name, namespace: 'ml', uid: '0b9c6c6e-1f2a-4d1e-9a43-6f0a8c2b7d11', resourceVersion: '42', generation: 3 },
    spec: { model: { source: 'https://models.example/m.onnx' }, dataset: { builtin: 'mnist', digits: [5, 6, 7, 8, 9] }, ...spec },
    status: { phase: 'Running' },
  });
  return job as ClusterFineTuneJob;
}

const TOKEN = 'a-random-token-of-32-characters!';
const options: ObjectPlanOptions = { image: 'ghcr.io/finetune/worker:0.1.0', imagePullPolicy: 'IfNotPresent', token: TOKEN };
const job3 = clusterJob({
  workers: { replicas: 3, resources: { requests: { cpu: '2', memory: '4Gi' }, limits: { memory: '8Gi' } } },
  training: { batchSize: 30 },
});

const envOf = (env: EnvVar[], name: string) => env.find((e) => e.name === name);

test('every object has apiVersion, kind, a name in the job namespace and is owned by the FineTuneJob', () => {
  const plan = desiredObjects(job3, options);
  const all = [plan.service, plan.configMap, plan.secret!, ...plan.pods];
  assert.deepEqual(
    all.map((o) => [o.apiVersion, o.kind, o.metadata.name]),
    [
      ['v1', 'Service', 'digits-workers'],
      ['v1', 'ConfigMap', 'digits-spec'],
      ['v1', 'Secret', 'digits-token'],
      ['v1', 'Pod', 'digits-worker-0'],
      ['v1', 'Pod', 'digits-worker-1'],
      ['v1', 'Pod', 'digits-worker-2'],
    ],
  );
  for (const o of all) {
    assert.equal(o.metadata.namespace, 'ml');
    assert.deepEqual(o.metadata.ownerReferences, [
      { apiVersion: 'finetune.dev/v1alpha1', kind: 'FineTuneJob', name: 'digits', uid: '0b9c6c6e-1f2a-4d1e-9a43-6f0a8c2b7d11', controller: true, blockOwnerDeletion: true },
    ]);
    assert.equal(o.metadata.labels['app.kubernetes.io/name'], 'finetune-worker');
    assert.equal(o.metadata.labels['finetune.dev/job-name'], 'digits');
  }
});

test('a headless Service selects the job\'s pods and publishes not-ready addresses', () => {
  const { service, pods } = desiredObjects(job3, { ...options, workerPort: 31000 });
  assert.equal(service.spec.clusterIP, 'None');
  assert.equal(service.spec.publishNotReadyAddresses, true);
  assert.deepEqual(service.spec.ports, [{ name: 'collective', port: 31000, targetPort: 31000, protocol: 'TCP' }]);
  for (const pod of pods) {
    for (const [key, value] of Object.entries(service.spec.selector)) assert.equal(pod.metadata.labels[key], value);
  }
  assert.deepEqual(Object.keys(service.spec.selector).sort(), ['app.kubernetes.io/name', 'finetune.dev/job-name']);
});

test('each pod has a stable hostname under the Service, its rank label, restartPolicy Never and the worker command', () => {
  const { pods } = desiredObjects(job3, options);
  pods.forEach((pod, rank) => {
    assert.equal(pod.spec.hostname, `digits-worker-${rank}`);
    assert.equal(pod.spec.subdomain, 'digits-workers');
    assert.equal(pod.metadata.labels['finetune.dev/rank'], String(rank));
    assert.equal(pod.spec.restartPolicy, 'Never');
    const [c] = pod.spec.containers;
    assert.equal(pod.spec.containers.length, 1);
    assert.equal(c!.image, 'ghcr.io/finetune/worker:0.1.0');
    assert.equal(c!.imagePullPolicy, 'IfNotPresent');
    assert.deepEqual(c!.command, ['ftjob-worker', '/etc/finetune/job.yaml']);
    assert.deepEqual(c!.ports, [{ name: 'collective', containerPort: 29500, protocol: 'TCP' }]);
    assert.deepEqual(c!.readinessProbe?.tcpSocket, { port: 'collective' });
  });
});

test('the rendezvous environment: exact peers for 3 replicas, rank, world size, port, job id', () => {
  const { pods } = desiredObjects(job3, options);
  const peers = [0, 1, 2].map((r) => `digits-worker-${r}.digits-workers.ml.svc:29500`).join(',');
  assert.equal(peers, 'digits-worker-0.digits-workers.ml.svc:29500,digits-worker-1.digits-workers.ml.svc:29500,digits-worker-2.digits-workers.ml.svc:29500');
  pods.forEach((pod, rank) => {
    const env = pod.spec.containers[0]!.env;
    assert.deepEqual(
      env.filter((e) => e.name !== ENV.token),
      [
        { name: 'FT_RANK', value: String(rank) },
        { name: 'FT_WORLD_SIZE', value: '3' },
        { name: 'FT_PEERS', value: peers },
        { name: 'FT_PORT', value: '29500' },
        { name: 'FT_JOB_ID', value: 'ml/digits' },
        { name: 'FT_BIND_HOST', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } },
        { name: 'FT_TERMINATION_LOG', value: '/dev/termination-log' },
      ],
    );
    const container = pod.spec.containers[0]!;
    assert.deepEqual([container.terminationMessagePath, container.terminationMessagePolicy], ['/dev/termination-log', 'FallbackToLogsOnError']);
  });
});

test('FT_TOKEN comes from the Secret by secretKeyRef; the token value appears only in the Secret', () => {
  const plan = desiredObjects(job3, options);
  assert.deepEqual(plan.secret?.stringData, { token: TOKEN });
  assert.equal(plan.secret?.type, 'Opaque');
  for (const pod of plan.pods) {
    assert.deepEqual(envOf(pod.spec.containers[0]!.env, 'FT_TOKEN'), { name: 'FT_TOKEN', valueFrom: { secretKeyRef: { name: 'digits-token', key: 'token' } } });
    assert.ok(!JSON.stringify(pod).includes(TOKEN));
  }
  assert.ok(!JSON.stringify(plan.configMap).includes(TOKEN));
});

test('the Secret is planned only when a token is given; tokenSecretName names the referenced Secret', () => {
  const withoutToken = desiredObjects(job3, { image: 'w:1' });
  assert.equal('secret' in withoutToken, false);
  assert.equal(envOf(withoutToken.pods[0]!.spec.containers[0]!.env, 'FT_TOKEN')?.valueFrom?.secretKeyRef?.name, 'digits-token');
  const custom = desiredObjects(job3, { image: 'w:1', tokenSecretName: 'shared-ring-token' });
  assert.equal(envOf(custom.pods[2]!.spec.containers[0]!.env, 'FT_TOKEN')?.valueFrom?.secretKeyRef?.name, 'shared-ring-token');
  assert.equal(desiredObjects(job3, { ...options, tokenSecretName: 'shared-ring-token' }).secret?.metadata.name, 'shared-ring-token');
  assert.throws(() => desiredObjects(job3, { image: 'w:1', token: 'short' }), /at least 16 characters/);
});

test('resources are copied from spec.workers.resources; no GPU limit without gpusPerWorker', () => {
  const { pods } = desiredObjects(job3, options);
  for (const pod of pods) {
    assert.deepEqual(pod.spec.containers[0]!.resources, { requests: { cpu: '2', memory: '4Gi' }, limits: { memory: '8Gi' } });
  }
  const bare = desiredObjects(clusterJob({ workers: { replicas: 1 } }), options);
  assert.deepEqual(bare.pods[0]!.spec.containers[0]!.resources, {});
});

test('gpusPerWorker > 0 adds nvidia.com/gpu limits and keeps the other resources', () => {
  const gpu = clusterJob({ workers: { replicas: 2, gpusPerWorker: 4, resources: { requests: { cpu: 8 }, limits: { memory: '64Gi' } } }, training: { batchSize: 32 } });
  for (const pod of desiredObjects(gpu, options).pods) {
    assert.deepEqual(pod.spec.containers[0]!.resources, { requests: { cpu: 8 }, limits: { memory: '64Gi', 'nvidia.com/gpu': '4' } });
  }
  const gpuOnly = clusterJob({ workers: { replicas: 1, gpusPerWorker: 1 } });
  assert.deepEqual(desiredObjects(gpuOnly, options).pods[0]!.spec.containers[0]!.resources, { limits: { 'nvidia.com/gpu': '1' } });
});

test('the ConfigMap holds the job file, mounted at /etc/finetune, and it round-trips through parseFineTuneJob', () => {
  const { configMap, pods } = desiredObjects(job3, options);
  const text = configMap.data['job.yaml']!;
  assert.equal(text, jobFileText(job3));
  const parsed = parseFineTuneJob(text, 'configmap');
  assert.deepEqual(parsed.spec, job3.spec);
  assert.deepEqual(parsed.metadata, { name: 'digits', namespace: 'ml' });
  assert.equal(parsed.apiVersion, 'finetune.dev/v1alpha1');
  assert.equal(parsed.kind, 'FineTuneJob');
  assert.ok(!text.includes('resourceVersion') && !text.includes('uid') && !text.includes('"status"'));
  for (const pod of pods) {
    assert.deepEqual(pod.spec.volumes[0], { name: 'job-spec', configMap: { name: 'digits-spec', items: [{ key: 'job.yaml', path: 'job.yaml' }] } });
    assert.deepEqual(pod.spec.containers[0]!.volumeMounts[0], { name: 'job-spec', mountPath: '/etc/finetune', readOnly: true });
  }
});

test('scheduling options and extra volumes are passed through', () => {
  const { pods } = desiredObjects(job3, {
    ...options,
    serviceAccountName: 'trainer',
    nodeSelector: { 'cloud.example/gpu': 'h100' },
    tolerations: [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }],
    runtimeClassName: 'nvidia',
    volumes: [{ name: 'out', persistentVolumeClaim: { claimName: 'results' } }],
    volumeMounts: [{ name: 'out', mountPath: '/out' }],
    readinessProbe: false,
  });
  const spec = pods[1]!.spec;
  assert.equal(spec.serviceAccountName, 'trainer');
  assert.deepEqual(spec.nodeSelector, { 'cloud.example/gpu': 'h100' });
  assert.deepEqual(spec.tolerations, [{ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' }]);
  assert.equal(spec.runtimeClassName, 'nvidia');
  assert.deepEqual(spec.volumes.map((v) => v.name), ['job-spec', 'out']);
  assert.deepEqual(spec.containers[0]!.volumeMounts.map((m) => m.mountPath), ['/etc/finetune', '/out']);
  assert.equal(spec.containers[0]!.readinessProbe, undefined);
  assert.throws(() => desiredObjects(job3, { ...options, volumes: [{ name: 'job-spec', emptyDir: {} }] }), /reserved/);
});

test('pure: the same input gives deep-equal output, and the output shares nothing with the input', () => {
  const opts: ObjectPlanOptions = { ...options, tolerations: [{ key: 'k', operator: 'Exists' }], volumes: [{ name: 'v', emptyDir: {} }] };
  const before = structuredClone(job3);
  const a = desiredObjects(job3, opts);
  const b = desiredObjects(structuredClone(job3), structuredClone(opts));
  assert.deepEqual(a, b);
  assert.deepEqual(job3, before);
  a.pods[0]!.spec.containers[0]!.resources.requests!['cpu'] = '99';
  a.pods[0]!.spec.tolerations![0]!.key = 'changed';
  assert.deepEqual(job3, before);
  assert.deepEqual(desiredObjects(job3, opts), b);
});

test('names that cannot make valid objects are refused with a clear error', () => {
  assert.throws(() => desiredObjects(clusterJob({ workers: { replicas: 1 } }, '7digits'), options), /DNS-1035/);
  assert.throws(() => desiredObjects(clusterJob({ workers: { replicas: 1 } }, 'a'.repeat(60)), options), /cannot name its Service/);
  // 54 characters: `-workers` fits (62), `-worker-9` fits (63), `-worker-10` does not (64).
  const long = 'a'.repeat(54);
  assert.equal(desiredObjects(clusterJob({ workers: { replicas: 10 }, training: { batchSize: 30 } }, long), options).pods[9]!.spec.hostname.length, 63);
  assert.throws(() => desiredObjects(clusterJob({ workers: { replicas: 11 }, training: { batchSize: 33 } }, long), options), /too long for the pod hostname/);
  assert.throws(() => desiredObjects(job3, { ...options, workerPort: 70000 }), /workerPort/);
  const noUid = structuredClone(job3) as ClusterFineTuneJob;
  noUid.metadata.uid = '';
  assert.throws(() => desiredObjects(noUid, options), /uid/);
});
