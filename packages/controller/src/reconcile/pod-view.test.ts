import { test } from 'node:test';
import assert from 'node:assert/strict';
import { podView, SPEC_HASH_ANNOTATION, type KubePod } from './pod-view.js';

/** A worker pod the way kube-apiserver returns it (only the fields podView reads, plus some it must ignore). */
function kubePod(status: KubePod['status'], meta: Partial<KubePod['metadata']> = {}): KubePod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name: 'digits-worker-1',
      namespace: 'ml',
      uid: '5f0e4c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b',
      resourceVersion: '1234',
      creationTimestamp: '2025-03-01T10:00:01Z',
      labels: { 'app.kubernetes.io/name': 'finetune-worker', 'finetune.dev/job-name': 'digits', 'finetune.dev/rank': '1' },
      annotations: { [SPEC_HASH_ANNOTATION]: 'abc123' },
      ...meta,
    },
    spec: { nodeName: 'gpu-node-a' },
    ...(status ? { status } : {}),
  };
}

const base = {
  name: 'digits-worker-1',
  uid: '5f0e4c1a-2b3d-4e5f-8a9b-0c1d2e3f4a5b',
  rank: 1,
  terminating: false,
  createdAt: new Date('2025-03-01T10:00:01Z'),
  specHash: 'abc123',
};

test('a running, ready worker', () => {
  const view = podView(
    kubePod({
      phase: 'Running',
      podIP: '10.244.0.7',
      conditions: [
        { type: 'PodScheduled', status: 'True' },
        { type: 'Initialized', status: 'True' },
        { type: 'ContainersReady', status: 'True' },
        { type: 'Ready', status: 'True' },
      ],
      containerStatuses: [{ name: 'worker', ready: true, state: { running: { startedAt: '2025-03-01T10:00:03Z' } } }],
    }),
  );
  assert.deepEqual(view, { ...base, phase: 'Running', ready: true, ip: '10.244.0.7' });
});

test('running but not Ready yet', () => {
  const view = podView(kubePod({ phase: 'Running', conditions: [{ type: 'Ready', status: 'False', reason: 'ContainersNotReady' }] }));
  assert.equal(view!.ready, false);
  assert.equal(view!.ip, undefined);
  assert.equal(view!.pendingReason, undefined, 'only a Pending pod has a pending reason');
});

test('a pod without a status yet is Pending, not ready, with no reason', () => {
  assert.deepEqual(podView(kubePod(undefined)), { ...base, phase: 'Pending', ready: false });
});

test('the scheduler\'s PodScheduled=False reason and message say why a pod is Pending', () => {
  const message = '0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.';
  const view = podView(kubePod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message }] }));
  assert.equal(view!.pendingReason, `Unschedulable: ${message}`);
  const bare = podView(kubePod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False' }] }));
  assert.equal(bare!.pendingReason, 'Unschedulable', 'no dangling colon when the scheduler gives no message');
  const gated = podView(kubePod({ phase: 'Pending', conditions: [{ type: 'PodScheduled', status: 'False', reason: 'SchedulingGated', message: 'Scheduling is blocked due to non-empty scheduling gates' }] }));
  assert.equal(gated!.pendingReason, 'SchedulingGated: Scheduling is blocked due to non-empty scheduling gates');
});

test('a scheduled pod that cannot start reports its container\'s waiting reason', () => {
  const waiting = (reason: string, message?: string) =>
    podView(
      kubePod({
        phase: 'Pending',
        conditions: [{ type: 'PodScheduled', status: 'True' }],
        containerStatuses: [{ name: 'worker', ready: false, state: { waiting: { reason, ...(message ? { message } : {}) } } }],
      }),
    )!.pendingReason;
  assert.equal(waiting('ImagePullBackOff', 'Back-off pulling image "ghcr.io/x/worker:nope"'), 'ImagePullBackOff: Back-off pulling image "ghcr.io/x/worker:nope"');
  assert.equal(waiting('ContainerCreating'), 'ContainerCreating');
  const both = podView(
    kubePod({
      phase: 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: 'no nodes' }],
      containerStatuses: [{ name: 'worker', state: { waiting: { reason: 'ContainerCreating' } } }],
    }),
  );
  assert.equal(both!.pendingReason, 'Unschedulable: no nodes', 'not being scheduled is the reason to report');
});

test('a terminated container gives the exit code and reason: message (trimmed)', () => {
  const failed = podView(
    kubePod({
      phase: 'Failed',
      podIP: '10.244.0.7',
      containerStatuses: [{ name: 'worker', ready: false, state: { terminated: { exitCode: 137, reason: 'OOMKilled', message: '  killed at step 40\n' } } }],
    }),
  );
  assert.deepEqual(failed, { ...base, phase: 'Failed', ready: false, ip: '10.244.0.7', exitCode: 137, terminationMessage: 'OOMKilled: killed at step 40' });
  const plain = podView(kubePod({ phase: 'Failed', containerStatuses: [{ name: 'worker', state: { terminated: { exitCode: 2, reason: 'Error' } } }] }));
  assert.equal(plain!.exitCode, 2);
  assert.equal(plain!.terminationMessage, 'Error');
  const done = podView(kubePod({ phase: 'Succeeded', containerStatuses: [{ name: 'worker', state: { terminated: { exitCode: 0, reason: 'Completed' } } }] }));
  assert.equal(done!.exitCode, 0);
  assert.equal(done!.phase, 'Succeeded');
  const evicted = podView(kubePod({ phase: 'Failed' }));
  assert.equal(evicted!.exitCode, undefined, 'no container status (e.g. evicted): the exit code is unknown');
});

test('a pod with a deletionTimestamp is terminating; a missing uid reads as empty', () => {
  const view = podView(kubePod({ phase: 'Running' }, { deletionTimestamp: '2025-03-01T10:09:00Z', uid: undefined }));
  assert.equal(view!.terminating, true);
  assert.equal(view!.uid, '');
});

test('no spec-hash annotation: specHash is absent (such a pod is never seen as stale)', () => {
  const view = podView(kubePod({ phase: 'Running' }, { annotations: {} }));
  assert.equal('specHash' in view!, false);
});

test('a pod without a valid rank label is not a worker', () => {
  const withRank = (rank: string | undefined) =>
    podView(kubePod({ phase: 'Running' }, { labels: rank === undefined ? { 'finetune.dev/job-name': 'digits' } : { 'finetune.dev/job-name': 'digits', 'finetune.dev/rank': rank } }));
  assert.equal(withRank('0')!.rank, 0);
  assert.equal(withRank('12')!.rank, 12);
  for (const bad of [undefined, '', ' ', 'abc', '-1', '1.5', '1e1', '0x1', ' 1']) assert.equal(withRank(bad), undefined, `rank label ${JSON.stringify(bad)}`);
  assert.equal(podView(kubePod({ phase: 'Running' }, { labels: undefined })), undefined);
});

test('a log tail as termination message (FallbackToLogsOnError) is condensed to its last lines, on one line', () => {
  const tail = ['step 1/90 loss 0.8', ...Array.from({ length: 40 }, (_, i) => `    at frame${i} (file.js:${i}:1)`), 'TypeError: x is undefined', ''].join('\n');
  const failed = podView(kubePod({ phase: 'Failed', containerStatuses: [{ name: 'worker', state: { terminated: { exitCode: 1, reason: 'Error', message: tail } } }] }));
  assert.equal(failed!.terminationMessage, 'Error: at frame36 (file.js:36:1) | at frame37 (file.js:37:1) | at frame38 (file.js:38:1) | at frame39 (file.js:39:1) | TypeError: x is undefined');
  const long = podView(kubePod({ phase: 'Failed', containerStatuses: [{ name: 'worker', state: { terminated: { exitCode: 2, reason: 'Error', message: 'x'.repeat(3000) } } }] }));
  assert.equal(long!.terminationMessage, `Error: …${'x'.repeat(1000)}`);
});
