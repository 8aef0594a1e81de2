import { test } from 'node:test';
import assert from 'node:assert/strict';
import { validateFineTuneJob, type Condition, type FineTuneJobStatus, type TrainingProgress } from '@finetune/api';
import { decide, PROGRESS_POLL_MS, type Decision, type Observed } from './decide.js';
import { podView, type KubePod, type PodView } from './pod-view.js';

// ---- a fixed clock: times are seconds after the job's creation ----

const T0 = Date.parse('2025-03-01T10:00:00.000Z');
const at = (s: number) => new Date(T0 + s * 1000);
const iso = (s: number) => at(s).toISOString();

const HASH = 'spec-hash-now';
const GENERATION = 2;

interface JobOptions {
  replicas?: number;
  runPolicy?: Record<string, unknown>;
  suspend?: boolean;
  outputPath?: string;
  status?: FineTuneJobStatus;
  generation?: number | null;
}

type Job = Observed['job'];

/** A FineTuneJob as the API server would hold it, defaults filled in by the real validator. */
function makeJob(o: JobOptions = {}): Job {
  const generation = o.generation === undefined ? GENERATION : o.generation;
  const job = validateFineTuneJob({
    apiVersion: 'finetune.dev/v1alpha1',
    kind: 'FineTuneJob',
    metadata: {
      name: 'digits',
      namespace: 'ml',
      uid: '7d1c7a52-6c8e-4f0e-9b43-2f0a8c2b7d11',
      creationTimestamp: iso(0),
      ...(generation === null ? {} : { generation }),
    },
    spec: {
      model: { source: 'https://models.example/m.onnx' },
      dataset: { builtin: 'mnist', digits: [5, 6, 7, 8, 9] },
      training: { batchSize: 60 },
      workers: { replicas: o.replicas ?? 2 },
      runPolicy: o.runPolicy ?? {},
      suspend: o.suspend ?? false,
      ...(o.outputPath ? { output: { path: o.outputPath } } : {}),
    },
    ...(o.status ? { status: structuredClone(o.status) } : {}),
  });
  return job as Job;
}

const withStatus = (job: Job, status: FineTuneJobStatus): Job => ({ ...structuredClone(job), status: structuredClone(status) });

/** A worker pod as podView() reports it. */
function pod(rank: number, phase: PodView['phase'], extra: Partial<PodView> = {}): PodView {
  return { name: `digits-worker-${rank}`, uid: `pod-uid-${rank}`, rank, phase, ready: phase === 'Running', terminating: false, createdAt: at(1), specHash: HASH, ...extra };
}
const ref = (rank: number) => ({ name: `digits-worker-${rank}`, uid: `pod-uid-${rank}` });

function observe(job: Job, pods: PodView[], now: Date, progress?: TrainingProgress): Decision {
  return decide({ job, pods, specHash: HASH, now, ...(progress ? { progress } : {}) });
}

/** The expected form of a condition the controller set at second `s`. */
function cond(type: string, status: 'True' | 'False', reason: string, message: string, s: number, generation = GENERATION): Condition {
  return { type, status, reason, message, lastTransitionTime: iso(s), observedGeneration: generation };
}
const byType = (status: FineTuneJobStatus) => Object.fromEntries((status.conditions ?? []).map((c) => [c.type, c]));

/**
 * Level-triggered: feeding decide() its own status with the same pods must neither record new
 * events nor change the status (else every pass would write the status and spam events).
 */
function assertSettled(job: Job, d: Decision, pods: PodView[], now: Date, progress?: TrainingProgress): Decision {
  const again = observe(withStatus(job, d.status), pods, now, progress);
  assert.deepEqual(again.events, [], 'a second pass over the same world records no events');
  assert.deepEqual(again.status, d.status, 'a second pass over the same world keeps the status');
  assert.equal(again.restarted, undefined, 'a second pass does not count another restart');
  assert.equal(again.becameRunningAfterS, undefined);
  return again;
}

// A job that was created at 0 s and whose pods were created at 1 s.
const created = observe(makeJob(), [], at(1)).status;
const bothRunning = [pod(0, 'Running'), pod(1, 'Running')];
const running = observe(withStatus(makeJob(), created), bothRunning, at(5)).status;

// ---- creation and Pending ----

test('a new job: Created condition and event, support objects, every rank created, startTime set', () => {
  const job = makeJob();
  const d = observe(job, [], at(1));
  assert.deepEqual(d.status, {
    observedGeneration: 2,
    replicas: 2,
    phase: 'Pending',
    conditions: [cond('Created', 'True', 'WorkersPlanned', '2 worker pod(s), a headless Service, the job spec and its token', 1)],
    startTime: iso(1),
    readyReplicas: 0,
    workersReady: '0/2',
  });
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'createPods', ranks: [0, 1] }]);
  assert.deepEqual(d.events, [{ type: 'Normal', reason: 'Created', message: 'creating 2 worker pod(s)' }]);
  assert.equal(d.requeueAfterMs, undefined, 'pod events, not a timer, wake it next');
  assert.equal(d.becameRunningAfterS, undefined);
  assert.equal(d.restarted, undefined);
  const again = assertSettled(job, d, [], at(1));
  assert.deepEqual(again.actions, d.actions, 'pods the cache does not show yet are asked for again (creation ignores AlreadyExists)');
});

test('decide() leaves its input alone', () => {
  const job = withStatus(makeJob(), running);
  const pods = [pod(0, 'Failed', { exitCode: 1 }), pod(1, 'Running')];
  const before = structuredClone({ job, pods });
  observe(job, pods, at(9));
  assert.deepEqual({ job, pods }, before);
});

test('observedGeneration follows metadata.generation, in the status and in the conditions it sets', () => {
  const d = observe(withStatus(makeJob({ generation: 7 }), running), [pod(0, 'Running'), pod(1, 'Failed', { exitCode: 1 })], at(9));
  assert.equal(d.status.observedGeneration, 7);
  assert.equal(byType(d.status).Restarting!.observedGeneration, 7);
  assert.equal(byType(d.status).Created!.observedGeneration, 2, 'a condition not set again keeps the generation it was set for');
  const none = observe(makeJob({ generation: null }), [], at(1));
  assert.equal('observedGeneration' in none.status, false);
  assert.equal('observedGeneration' in none.status.conditions![0]!, false);
});

test('only missing ranks are created, and a terminating pod still holds its rank (its name is not free yet)', () => {
  const job = makeJob({ replicas: 3 });
  const first = observe(job, [], at(1));
  const pods = [pod(0, 'Pending'), pod(2, 'Running', { terminating: true })];
  const d = observe(withStatus(job, first.status), pods, at(5));
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'createPods', ranks: [1] }]);
  assert.equal(d.status.startTime, iso(1), 'startTime is when the workers were first started');
  assert.equal(d.status.phase, 'Pending');
  assert.deepEqual(d.events, []);
});

test('pods still Pending: wait, and look again just after the first could pass schedulingTimeoutSeconds', () => {
  const pods = [pod(0, 'Pending', { createdAt: at(1) }), pod(1, 'Pending', { createdAt: at(3) })];
  const d = observe(withStatus(makeJob(), created), pods, at(10));
  assert.equal(d.status.phase, 'Pending');
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }]);
  assert.deepEqual(d.events, []);
  assert.equal(d.requeueAfterMs, (1 + 300 - 10) * 1000 + 50);
  assertSettled(makeJob(), d, pods, at(10));

  const withDeadline = makeJob({ runPolicy: { activeDeadlineSeconds: 100 } });
  const d2 = observe(withStatus(withDeadline, created), pods, at(10));
  assert.equal(d2.requeueAfterMs, (1 + 100 - 10) * 1000 + 50, 'the active deadline comes first here');
});

test('some workers running, some not: still Pending, no Running event', () => {
  const pods = [pod(0, 'Running'), pod(1, 'Pending', { createdAt: at(2) })];
  const d = observe(withStatus(makeJob(), created), pods, at(4));
  assert.equal(d.status.phase, 'Pending');
  assert.equal(byType(d.status).Running, undefined);
  assert.deepEqual(d.events, []);
  assert.equal(d.status.workersReady, '1/2');
  assert.equal(d.status.readyReplicas, 1);
  assert.equal(d.requeueAfterMs, (2 + 300 - 4) * 1000 + 50);
});

// ---- Running ----

test('every worker running: Running phase, condition and event, time to running, progress polling', () => {
  const job = withStatus(makeJob(), created);
  const d = observe(job, bothRunning, at(42));
  assert.equal(d.status.phase, 'Running');
  assert.deepEqual(byType(d.status), {
    Created: cond('Created', 'True', 'WorkersPlanned', '2 worker pod(s), a headless Service, the job spec and its token', 1),
    Running: cond('Running', 'True', 'AllWorkersRunning', 'all 2 workers are running', 42),
  });
  assert.deepEqual(d.events, [{ type: 'Normal', reason: 'Running', message: 'all 2 workers are running' }]);
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }]);
  assert.equal(d.becameRunningAfterS, 42);
  assert.equal(d.requeueAfterMs, PROGRESS_POLL_MS);
  assert.equal(PROGRESS_POLL_MS, 2000);
  assert.equal(d.status.readyReplicas, 2);
  assert.equal(d.status.workersReady, '2/2');
  assert.equal(d.status.startTime, iso(1));
  assertSettled(job, d, bothRunning, at(42));

  // Much later: the condition keeps the time it became true.
  const later = observe(withStatus(job, d.status), bothRunning, at(900));
  assert.deepEqual(later.events, []);
  assert.equal(byType(later.status).Running!.lastTransitionTime, iso(42));
  assert.equal(later.requeueAfterMs, PROGRESS_POLL_MS);
});

test('a running worker that is not ready yet counts as running but not as ready', () => {
  const d = observe(withStatus(makeJob(), created), [pod(0, 'Running'), pod(1, 'Running', { ready: false })], at(6));
  assert.equal(d.status.phase, 'Running');
  assert.equal(d.status.readyReplicas, 1);
  assert.equal(d.status.workersReady, '1/2');
});

test('rank 0\'s progress goes into status.training and status.progress (floored, at most 100%)', () => {
  const job = withStatus(makeJob(), running);
  const progress: TrainingProgress = { step: 42, totalSteps: 100, epoch: 3, loss: 0.25, validationMetric: 0.91, validationMetricName: 'val_accuracy', updatedAt: iso(30) };
  const d = observe(job, bothRunning, at(30), progress);
  assert.deepEqual(d.status.training, progress);
  assert.equal(d.status.progress, '42%');
  assert.deepEqual(d.events, []);
  assertSettled(job, d, bothRunning, at(30), progress);
  assert.equal(observe(job, bothRunning, at(30), { step: 1, totalSteps: 3, epoch: 0 }).status.progress, '33%');
  assert.equal(observe(job, bothRunning, at(30), { step: 130, totalSteps: 100, epoch: 9 }).status.progress, '100%');
  const noTotal = observe(job, bothRunning, at(30), { step: 7, epoch: 0 });
  assert.deepEqual(noTotal.status.training, { step: 7, epoch: 0 });
  assert.equal(noTotal.status.progress, undefined);
  assert.deepEqual(observe(withStatus(job, d.status), bothRunning, at(35)).status.training, progress, 'no answer from rank 0 keeps the last progress');
});

// ---- Succeeded ----

test('every worker exited 0: Succeeded, completionTime, conditions, event; finished pods are kept by cleanPodPolicy Running', () => {
  const job = withStatus(makeJob(), { ...running, training: { step: 90, totalSteps: 100, epoch: 9 }, progress: '90%' });
  const done = [pod(0, 'Succeeded', { ready: false, exitCode: 0 }), pod(1, 'Succeeded', { ready: false, exitCode: 0 })];
  const d = observe(job, done, at(600));
  const message = 'all 2 workers finished; the fine-tuned model is in out/digits';
  assert.equal(d.status.phase, 'Succeeded');
  assert.equal(d.status.completionTime, iso(600));
  assert.equal(d.status.progress, '100%');
  assert.deepEqual(byType(d.status).Succeeded, cond('Succeeded', 'True', 'WorkersSucceeded', message, 600));
  assert.deepEqual(byType(d.status).Running, cond('Running', 'False', 'JobSucceeded', 'training finished', 600));
  assert.deepEqual(d.events, [{ type: 'Normal', reason: 'Succeeded', message }]);
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }]);
  assert.equal(d.requeueAfterMs, undefined);
  const again = assertSettled(job, d, done, at(700));
  assert.deepEqual(again.actions, [], 'a finished job creates nothing');

  const custom = observe(withStatus(makeJob({ outputPath: '/data/out/digits-v2' }), running), done, at(600));
  assert.equal(byType(custom.status).Succeeded!.message, 'all 2 workers finished; the fine-tuned model is in /data/out/digits-v2');
});

test('the last progress report is kept on success', () => {
  const done = [pod(0, 'Succeeded', { exitCode: 0 }), pod(1, 'Succeeded', { exitCode: 0 })];
  const progress: TrainingProgress = { step: 100, totalSteps: 100, epoch: 10, loss: 0.01 };
  const d = observe(withStatus(makeJob(), running), done, at(600), progress);
  assert.deepEqual(d.status.training, progress);
  assert.equal(d.status.progress, '100%');
});

test('a finished job is not started again: missing pods are not created and spec.suspend is ignored', () => {
  const finished = observe(withStatus(makeJob(), running), [pod(0, 'Succeeded', { exitCode: 0 }), pod(1, 'Succeeded', { exitCode: 0 })], at(600)).status;
  const d = observe(withStatus(makeJob({ suspend: true }), finished), [], at(700));
  assert.equal(d.status.phase, 'Succeeded');
  assert.deepEqual(d.actions, []);
  assert.deepEqual(d.events, []);
  assert.equal(byType(d.status).Suspended, undefined);
});

// ---- cleanPodPolicy ----

test('cleanPodPolicy on a finished job: All deletes every pod, Running those Running or Pending, None nothing; never a terminating one', () => {
  const pods = [
    pod(0, 'Running'),
    pod(1, 'Pending'),
    pod(2, 'Succeeded', { exitCode: 0 }),
    pod(3, 'Failed', { exitCode: 1 }),
    pod(4, 'Running', { terminating: true }),
  ];
  const failed: FineTuneJobStatus = { ...running, phase: 'Failed', completionTime: iso(50) };
  const decideWith = (cleanPodPolicy: string) => observe(makeJob({ replicas: 5, runPolicy: { cleanPodPolicy }, status: failed }), pods, at(60));
  assert.deepEqual(decideWith('All').actions, [{ kind: 'deletePods', pods: [ref(0), ref(1), ref(2), ref(3)] }]);
  assert.deepEqual(decideWith('Running').actions, [{ kind: 'deletePods', pods: [ref(0), ref(1)] }]);
  assert.deepEqual(decideWith('None').actions, []);
  assert.equal(makeJob().spec.runPolicy.cleanPodPolicy, 'Running', 'the default');
  for (const policy of ['All', 'Running', 'None']) {
    const d = decideWith(policy);
    assert.deepEqual(d.events, []);
    assert.equal(d.status.phase, 'Failed');
  }
});

test('cleanPodPolicy All applies in the pass that finishes the job', () => {
  const done = [pod(0, 'Succeeded', { exitCode: 0 }), pod(1, 'Succeeded', { exitCode: 0 })];
  const d = observe(makeJob({ runPolicy: { cleanPodPolicy: 'All' }, status: running }), done, at(600));
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'deletePods', pods: [ref(0), ref(1)] }]);
});

// ---- gang restart after a retryable failure ----

test('a retryable worker failure restarts the whole gang, counted, with the worker and exit code in the message', () => {
  const job = withStatus(makeJob(), running);
  const pods = [pod(0, 'Running'), pod(1, 'Failed', { ready: false, exitCode: 137, terminationMessage: 'OOMKilled' })];
  const d = observe(job, pods, at(100));
  const message = 'worker 1 (digits-worker-1) exited with code 137 (OOMKilled); restarting all 2 workers from the latest checkpoint (restart 1 of 3)';
  assert.equal(d.status.phase, 'Restarting');
  assert.equal(d.status.restarts, 1);
  assert.equal(d.restarted, true);
  assert.deepEqual(byType(d.status).Restarting, cond('Restarting', 'True', 'WorkerFailed', message, 100));
  assert.deepEqual(byType(d.status).Running, cond('Running', 'False', 'WorkerFailed', message, 100));
  assert.deepEqual(d.events, [{ type: 'Warning', reason: 'Restarting', message }]);
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'deletePods', pods: [ref(0), ref(1)] }]);
  assert.equal(d.requeueAfterMs, undefined, 'pod deletions wake it');
  assert.equal(d.status.completionTime, undefined);
  const again = assertSettled(job, d, pods, at(101));
  assert.deepEqual(again.actions, d.actions, 'pods the cache still shows alive are deleted again (by uid)');
});

test('the root cause is named: a peer-failure exit 3 is not chosen when another worker failed otherwise', () => {
  const job = withStatus(makeJob({ replicas: 3 }), { ...running, replicas: 3 });
  const cause = (pods: PodView[]) => byType(observe(job, pods, at(100)).status).Restarting!.message;
  assert.match(cause([pod(0, 'Failed', { exitCode: 3 }), pod(1, 'Running'), pod(2, 'Failed', { exitCode: 1, terminationMessage: 'Error: CUDA error' })]), /^worker 2 \(digits-worker-2\) exited with code 1 \(Error: CUDA error\); restarting all 3 workers/);
  assert.match(cause([pod(0, 'Failed', { exitCode: 3 }), pod(1, 'Failed', { exitCode: 139 }), pod(2, 'Failed', { exitCode: 3 })]), /^worker 1 \(digits-worker-1\) exited with code 139;/);
  assert.match(cause([pod(0, 'Running'), pod(1, 'Failed', { exitCode: 3 }), pod(2, 'Failed', { exitCode: 3 })]), /^worker 1 \(digits-worker-1\) exited with code 3;/, 'only peer failures: the lowest rank');
  assert.match(cause([pod(0, 'Failed', { exitCode: 3 }), pod(1, 'Running'), pod(2, 'Failed')]), /^worker 2 \(digits-worker-2\) exited with code unknown; restarting/, 'an unknown exit (e.g. eviction) is a cause, and retryable');
  assert.match(cause([pod(0, 'Failed', { exitCode: 143 }), pod(1, 'Failed', { exitCode: 137 }), pod(2, 'Running')]), /^worker 0 \(digits-worker-0\) exited with code 143;/, 'several causes: the lowest rank');
});

test('an evicted worker (DisruptionTarget) restarts the gang without counting it, even though its peer exited 3', () => {
  const evicted = pod(1, 'Running', { terminating: true, disruption: 'EvictionByEvictionAPI: Eviction API: evicting' });
  const d = observe(withStatus(makeJob(), running), [pod(0, 'Failed', { exitCode: 3 }), evicted], at(50));
  const message = 'worker 1 (digits-worker-1) was disrupted (EvictionByEvictionAPI: Eviction API: evicting); restarting all 2 workers from the latest checkpoint (not counted against runPolicy.backoffLimit)';
  assert.equal(d.status.phase, 'Restarting');
  assert.deepEqual(byType(d.status).Restarting, cond('Restarting', 'True', 'WorkerDisrupted', message, 50));
  assert.equal(d.status.restarts, undefined);
  assert.equal(d.restarted, undefined, 'the restart metric does not count it either');
  assert.deepEqual(d.events, [{ type: 'Warning', reason: 'Restarting', message }]);
  assert.deepEqual(d.actions.filter((a) => a.kind !== 'ensureSupportObjects'), [{ kind: 'deletePods', pods: [ref(0)] }], 'the live pod is deleted; the evicted one is on its way');
});

test('a running worker deleted by hand, or gone, restarts the gang uncounted; while Pending a missing rank is just created', () => {
  const deleted = observe(withStatus(makeJob(), running), [pod(0, 'Running'), pod(1, 'Running', { terminating: true })], at(50));
  assert.match(byType(deleted.status).Restarting!.message, /^worker 1 \(digits-worker-1\) was deleted; restarting all 2 workers/);
  assert.equal(deleted.status.restarts, undefined);
  const gone = observe(withStatus(makeJob(), running), [pod(0, 'Running')], at(50));
  assert.match(byType(gone.status).Restarting!.message, /^worker 1 \(digits-worker-1\) is gone; restarting all 2 workers/);
  assert.ok(!gone.actions.some((a) => a.kind === 'createPods'), 'no lone replacement joins a gang that is about to fail');
  const starting = observe(withStatus(makeJob(), created), [pod(0, 'Running')], at(3));
  assert.equal(starting.status.phase, 'Pending');
  assert.deepEqual(starting.actions.filter((a) => a.kind !== 'ensureSupportObjects'), [{ kind: 'createPods', ranks: [1] }]);
});

test('a worker the kubelet evicted (Failed, DisruptionTarget) is a disruption, not a failure', () => {
  const evicted = pod(1, 'Failed', { exitCode: 137, disruption: 'TerminationByKubelet: The node was low on resource: memory' });
  const d = observe(withStatus(makeJob(), running), [pod(0, 'Running'), evicted], at(50));
  assert.equal(byType(d.status).Restarting!.reason, 'WorkerDisrupted');
  assert.equal(d.status.restarts, undefined);
});

test('a failed pod that is already terminating is not a new failure', () => {
  const d = observe(withStatus(makeJob(), running), [pod(0, 'Running'), pod(1, 'Failed', { exitCode: 1, terminating: true })], at(50));
  assert.equal(d.status.phase, 'Running');
  assert.deepEqual(d.events, []);
  assert.equal(d.status.restarts, undefined);
});

test('the gang restart cycle: wait until every old pod is gone (even terminating ones), recreate all ranks, run again; restarts add up', () => {
  const job = makeJob();
  let status = running;
  // 1. rank 1 fails
  let d = observe(withStatus(job, status), [pod(0, 'Running'), pod(1, 'Failed', { exitCode: 1 })], at(20));
  const cause = 'worker 1 (digits-worker-1) exited with code 1; restarting all 2 workers from the latest checkpoint (restart 1 of 3)';
  assert.equal(d.status.phase, 'Restarting');
  status = d.status;

  // 2. both pods terminating: nothing to delete twice, nothing to create, no timer
  const terminating = [pod(0, 'Running', { terminating: true }), pod(1, 'Failed', { exitCode: 1, terminating: true })];
  d = observe(withStatus(job, status), terminating, at(21));
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }]);
  assert.deepEqual(d.events, []);
  assert.deepEqual(d.status, { ...status, readyReplicas: 0, workersReady: '0/2' });
  assert.equal(d.requeueAfterMs, undefined);
  status = d.status;

  // 3. one old pod left, terminating: still waiting (the new pods reuse the names)
  d = observe(withStatus(job, status), [terminating[0]!], at(22));
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }]);
  assert.equal(d.status.phase, 'Restarting');

  // 4. all gone: Pending again, Restarting condition False, every rank created; startTime kept
  d = observe(withStatus(job, status), [], at(23));
  assert.equal(d.status.phase, 'Pending');
  assert.deepEqual(byType(d.status).Restarting, cond('Restarting', 'False', 'WorkersRecreated', `workers recreated after: ${cause}`, 23));
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'createPods', ranks: [0, 1] }]);
  assert.equal(d.status.restarts, 1);
  assert.equal(d.status.startTime, iso(1), 'activeDeadlineSeconds counts from the first start, restarts included');
  assert.equal(d.restarted, undefined, 'the restart was counted when it began');
  assertSettled(job, d, [], at(23));
  status = d.status;

  // 5. the new gang runs: Running again, with its event; time-to-running is only for the first start
  const fresh = [pod(0, 'Running', { createdAt: at(23) }), pod(1, 'Running', { createdAt: at(23) })];
  d = observe(withStatus(job, status), fresh, at(30));
  assert.equal(d.status.phase, 'Running');
  assert.deepEqual(byType(d.status).Running, cond('Running', 'True', 'AllWorkersRunning', 'all 2 workers are running', 30));
  assert.deepEqual(d.events, [{ type: 'Normal', reason: 'Running', message: 'all 2 workers are running' }]);
  assert.equal(d.becameRunningAfterS, undefined);
  status = d.status;

  // 6. a second failure: restart 2 of 3
  d = observe(withStatus(job, status), [pod(0, 'Failed', { exitCode: 143, createdAt: at(23) }), fresh[1]!], at(40));
  assert.equal(d.status.restarts, 2);
  assert.equal(d.restarted, true);
  assert.equal(byType(d.status).Restarting!.message, 'worker 0 (digits-worker-0) exited with code 143; restarting all 2 workers from the latest checkpoint (restart 2 of 3)');
  assert.equal(byType(d.status).Restarting!.lastTransitionTime, iso(40));
});

test('backoffLimit spent: the next retryable failure fails the job (BackoffLimitExceeded)', () => {
  const after3 = { ...running, restarts: 3, conditions: [...running.conditions!, cond('Restarting', 'False', 'WorkersRecreated', 'workers recreated after: …', 30)] };
  const job = withStatus(makeJob(), after3);
  const pods = [pod(0, 'Failed', { exitCode: 1 }), pod(1, 'Running')];
  const d = observe(job, pods, at(70));
  const message = 'worker 0 (digits-worker-0) exited with code 1; the job was already restarted 3 time(s) (runPolicy.backoffLimit 3)';
  assert.equal(d.status.phase, 'Failed');
  assert.equal(d.status.restarts, 3);
  assert.equal(d.restarted, undefined);
  assert.equal(d.status.completionTime, iso(70));
  assert.deepEqual(byType(d.status).Failed, cond('Failed', 'True', 'BackoffLimitExceeded', message, 70));
  assert.deepEqual(byType(d.status).Running, cond('Running', 'False', 'BackoffLimitExceeded', message, 70));
  assert.deepEqual(byType(d.status).Restarting, after3.conditions.at(-1), 'a Restarting condition already False is left alone');
  assert.deepEqual(d.events, [{ type: 'Warning', reason: 'BackoffLimitExceeded', message }]);
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'deletePods', pods: [ref(1)] }]);
  assertSettled(job, d, pods, at(70));

  const zero = observe(withStatus(makeJob({ runPolicy: { backoffLimit: 0 } }), running), pods, at(70));
  assert.equal(zero.status.phase, 'Failed');
  assert.equal(byType(zero.status).Failed!.message, 'worker 0 (digits-worker-0) exited with code 1; the job was already restarted 0 time(s) (runPolicy.backoffLimit 0)');
});

test('exit 2 (bad input) fails the job at once, not counted as a restart, even when another worker failed retryably first', () => {
  const job = withStatus(makeJob({ replicas: 3 }), { ...running, replicas: 3 });
  const pods = [
    pod(0, 'Failed', { exitCode: 1 }),
    pod(1, 'Failed', { exitCode: 2, terminationMessage: 'Error: spec.dataset.train.path: no such file' }),
    pod(2, 'Running'),
  ];
  const d = observe(job, pods, at(50));
  const message = 'worker 1 (digits-worker-1) exited with code 2 (Error: spec.dataset.train.path: no such file), which restarting cannot fix (bad spec, model or data); see its logs';
  assert.equal(d.status.phase, 'Failed');
  assert.equal(d.status.completionTime, iso(50));
  assert.equal(d.status.restarts, undefined);
  assert.equal(d.restarted, undefined);
  assert.deepEqual(byType(d.status).Failed, cond('Failed', 'True', 'WorkerFailed', message, 50));
  assert.deepEqual(byType(d.status).Running, cond('Running', 'False', 'WorkerFailed', message, 50));
  assert.equal(byType(d.status).Restarting, undefined);
  assert.deepEqual(d.events, [{ type: 'Warning', reason: 'WorkerFailed', message }]);
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'deletePods', pods: [ref(2)] }]);
  assertSettled(job, d, pods, at(50));

  const behindPeerFailure = observe(job, [pod(0, 'Failed', { exitCode: 3 }), pod(1, 'Running'), pod(2, 'Failed', { exitCode: 2 })], at(50));
  assert.equal(behindPeerFailure.status.phase, 'Failed');
  assert.match(byType(behindPeerFailure.status).Failed!.message, /^worker 2 \(digits-worker-2\) exited with code 2, which restarting cannot fix/);

  const noRestartsLeft = observe(withStatus(makeJob(), { ...running, restarts: 3 }), [pod(0, 'Failed', { exitCode: 2 }), pod(1, 'Running')], at(50));
  assert.equal(byType(noRestartsLeft.status).Failed!.reason, 'WorkerFailed', 'bad input is the reason, not the backoff limit');
});

// ---- spec change ----

test('pods from an older spec restart the gang (SpecChanged) without counting a failure', () => {
  const job = withStatus(makeJob(), { ...running, restarts: 1 });
  const stale = [pod(0, 'Running', { specHash: 'older' }), pod(1, 'Running', { specHash: 'older' })];
  const d = observe(job, stale, at(80));
  const message = 'the worker spec changed: restarting all 2 workers from the latest checkpoint';
  assert.equal(d.status.phase, 'Restarting');
  assert.equal(d.status.restarts, 1, 'restarts count failures only');
  assert.equal(d.restarted, undefined);
  assert.deepEqual(byType(d.status).Restarting, cond('Restarting', 'True', 'SpecChanged', message, 80));
  assert.deepEqual(byType(d.status).Running, cond('Running', 'False', 'SpecChanged', message, 80));
  assert.deepEqual(d.events, [{ type: 'Warning', reason: 'Restarting', message }]);
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'deletePods', pods: [ref(0), ref(1)] }]);
  assertSettled(job, d, stale, at(80));

  const fromScratch = observe(withStatus(makeJob(), running), stale, at(80));
  assert.equal(fromScratch.status.restarts, undefined);

  const oneStale = observe(job, [pod(0, 'Running'), pod(1, 'Pending', { specHash: 'older' })], at(80));
  assert.equal(oneStale.status.phase, 'Restarting', 'one stale pod is enough: the gang shares one spec');
});

test('a pod without the spec-hash annotation, or one that already succeeded, is not stale', () => {
  const job = withStatus(makeJob(), running);
  const unannotated = [pod(0, 'Running', { specHash: undefined }), pod(1, 'Running')];
  assert.equal(observe(job, unannotated, at(80)).status.phase, 'Running');
  const finishedOld = [pod(0, 'Succeeded', { exitCode: 0, specHash: 'older' }), pod(1, 'Running')];
  const d = observe(job, finishedOld, at(80));
  assert.equal(d.status.phase, 'Running');
  assert.deepEqual(d.events, []);
});

test('a failure is reported as a failure even when the spec changed too', () => {
  const d = observe(withStatus(makeJob(), running), [pod(0, 'Failed', { exitCode: 1, specHash: 'older' }), pod(1, 'Running', { specHash: 'older' })], at(80));
  assert.equal(byType(d.status).Restarting!.reason, 'WorkerFailed');
  assert.equal(d.status.restarts, 1);
});

// ---- activeDeadlineSeconds ----

test('activeDeadlineSeconds: requeued for the deadline, then Failed (DeadlineExceeded) once the workers ran that long', () => {
  const job = withStatus(makeJob({ runPolicy: { activeDeadlineSeconds: 60 } }), running);
  const before = observe(job, bothRunning, at(60.5));
  assert.equal(before.status.phase, 'Running');
  assert.equal(before.requeueAfterMs, (1 + 60 - 60.5) * 1000 + 50, 'sooner than the progress poll');
  const farBefore = observe(job, bothRunning, at(10));
  assert.equal(farBefore.requeueAfterMs, PROGRESS_POLL_MS, 'the progress poll when it comes first');

  const d = observe(job, bothRunning, at(61));
  const message = 'the job ran for 60 s, longer than runPolicy.activeDeadlineSeconds (60)';
  assert.equal(d.status.phase, 'Failed');
  assert.equal(d.status.completionTime, iso(61));
  assert.deepEqual(byType(d.status).Failed, cond('Failed', 'True', 'DeadlineExceeded', message, 61));
  assert.deepEqual(byType(d.status).Running, cond('Running', 'False', 'DeadlineExceeded', message, 61));
  assert.deepEqual(d.events, [{ type: 'Warning', reason: 'DeadlineExceeded', message }]);
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'deletePods', pods: [ref(0), ref(1)] }]);
  assertSettled(job, d, bothRunning, at(61));
});

test('activeDeadlineSeconds does not run before the workers were started, nor while suspended', () => {
  const job = makeJob({ runPolicy: { activeDeadlineSeconds: 10 }, suspend: true, status: running });
  const suspended = observe(job, bothRunning, at(100)).status;
  assert.equal(suspended.phase, 'Suspended');
  assert.equal(suspended.startTime, undefined);
  const later = observe(withStatus(job, suspended), [], at(1000));
  assert.equal(later.status.phase, 'Suspended');
});

test('workers that all succeeded make the job Succeeded even when this pass comes after the deadline', () => {
  const job = withStatus(makeJob({ runPolicy: { activeDeadlineSeconds: 60 } }), running);
  const done = [pod(0, 'Succeeded', { exitCode: 0 }), pod(1, 'Succeeded', { exitCode: 0 })];
  const d = observe(job, done, at(65));
  assert.equal(d.status.phase, 'Succeeded');
  assert.deepEqual(d.events.map((e) => e.reason), ['Succeeded']);
});

// ---- stuck Pending ----

const unschedulable = 'Unschedulable: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu. preemption: 0/2 nodes are available: 2 No preemption victims found for incoming pod.';

test('a pod Pending past schedulingTimeoutSeconds fails the job with the scheduler\'s reason', () => {
  const job = withStatus(makeJob({ runPolicy: { schedulingTimeoutSeconds: 30 } }), created);
  const pods = [pod(0, 'Running'), pod(1, 'Pending', { createdAt: at(1), pendingReason: unschedulable })];
  const before = observe(job, pods, at(30.999));
  assert.equal(before.status.phase, 'Pending');
  assert.equal(before.requeueAfterMs, 51);

  const d = observe(job, pods, at(31));
  const message = `worker 1 (digits-worker-1) has been Pending for more than 30 s (runPolicy.schedulingTimeoutSeconds): ${unschedulable}`;
  assert.equal(d.status.phase, 'Failed');
  assert.equal(d.status.completionTime, iso(31));
  assert.deepEqual(byType(d.status).Failed, cond('Failed', 'True', 'Unschedulable', message, 31));
  assert.deepEqual(byType(d.status).Running, cond('Running', 'False', 'Unschedulable', message, 31));
  assert.deepEqual(d.events, [{ type: 'Warning', reason: 'Unschedulable', message }]);
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'deletePods', pods: [ref(0), ref(1)] }]);
  assertSettled(job, d, pods, at(31));
});

test('a pod stuck Pending for another reason fails with WorkerNotStarted; the lowest stuck rank is named', () => {
  const job = withStatus(makeJob({ replicas: 3, runPolicy: { schedulingTimeoutSeconds: 30 } }), { ...created, replicas: 3 });
  const failure = (pods: PodView[]) => byType(observe(job, pods, at(100)).status).Failed;
  const image = failure([pod(0, 'Running'), pod(1, 'Pending', { pendingReason: 'ImagePullBackOff: Back-off pulling image "ghcr.io/x/worker:nope"' }), pod(2, 'Pending', { pendingReason: unschedulable })]);
  assert.equal(image!.reason, 'WorkerNotStarted');
  assert.equal(image!.message, 'worker 1 (digits-worker-1) has been Pending for more than 30 s (runPolicy.schedulingTimeoutSeconds): ImagePullBackOff: Back-off pulling image "ghcr.io/x/worker:nope"');
  const silent = failure([pod(0, 'Running'), pod(1, 'Running'), pod(2, 'Pending')]);
  assert.equal(silent!.reason, 'WorkerNotStarted');
  assert.match(silent!.message, /^worker 2 \(digits-worker-2\) has been Pending .*: not started$/);
  assert.equal(failure([pod(0, 'Running'), pod(1, 'Running'), pod(2, 'Pending', { createdAt: at(80) })]), undefined, 'a young pod may wait');
});

test('the scheduler\'s message, read from a real-shaped Pod by podView, becomes the Failed condition', () => {
  const kubePod: KubePod = {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name: 'digits-worker-0', namespace: 'ml', uid: 'pod-uid-0', creationTimestamp: iso(1), labels: { 'finetune.dev/rank': '0' }, annotations: { 'finetune.dev/spec-hash': HASH } },
    spec: {},
    status: {
      phase: 'Pending',
      conditions: [{ type: 'PodScheduled', status: 'False', reason: 'Unschedulable', message: unschedulable.replace(/^Unschedulable: /, '') }],
    },
  };
  const view = podView(kubePod)!;
  const d = observe(makeJob({ replicas: 1, runPolicy: { schedulingTimeoutSeconds: 5 }, status: { ...created, replicas: 1 } }), [view], at(6));
  assert.deepEqual(byType(d.status).Failed, cond('Failed', 'True', 'Unschedulable', `worker 0 (digits-worker-0) has been Pending for more than 5 s (runPolicy.schedulingTimeoutSeconds): ${unschedulable}`, 6));
});

// ---- ttlSecondsAfterFinished ----

test('ttlSecondsAfterFinished: a finished job is looked at again when its TTL ends, then deleted', () => {
  const finished: FineTuneJobStatus = { ...running, phase: 'Succeeded', completionTime: iso(100) };
  const job = makeJob({ runPolicy: { ttlSecondsAfterFinished: 60 }, status: finished });
  const early = observe(job, [], at(110));
  assert.deepEqual(early.actions, []);
  assert.equal(early.requeueAfterMs, 50_000);
  assert.deepEqual(early.events, []);
  assert.equal(observe(job, [], at(159.9991)).requeueAfterMs, 1, 'rounded up, never early');
  assert.deepEqual(observe(job, [], at(160)).actions, [{ kind: 'deleteJob' }]);
  const late = observe(job, [], at(5000));
  assert.deepEqual(late.actions, [{ kind: 'deleteJob' }]);
  assert.equal(late.requeueAfterMs, undefined);

  const noTtl = observe(makeJob({ status: finished }), [], at(5000));
  assert.deepEqual(noTtl.actions, []);
  assert.equal(noTtl.requeueAfterMs, undefined);
});

test('ttlSecondsAfterFinished counts from the pass that finishes the job; 0 deletes it in that pass, after its pods', () => {
  const failing = [pod(0, 'Failed', { exitCode: 2 }), pod(1, 'Running')];
  const d = observe(makeJob({ runPolicy: { ttlSecondsAfterFinished: 30 }, status: running }), failing, at(40));
  assert.equal(d.status.phase, 'Failed');
  assert.equal(d.requeueAfterMs, 30_000);
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'deletePods', pods: [ref(1)] }]);

  const zero = observe(makeJob({ runPolicy: { ttlSecondsAfterFinished: 0, cleanPodPolicy: 'All' }, status: running }), failing, at(40));
  assert.deepEqual(zero.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'deletePods', pods: [ref(0), ref(1)] }, { kind: 'deleteJob' }]);
});

test('a finished status without completionTime (written by hand) starts the TTL once instead of never ending it', () => {
  const job = makeJob({ runPolicy: { ttlSecondsAfterFinished: 60 }, status: { ...running, phase: 'Failed' } });
  const d = observe(job, [], at(100));
  assert.equal(d.status.completionTime, iso(100));
  assert.equal(d.requeueAfterMs, 60_000);
  assert.deepEqual(observe(withStatus(job, d.status), [], at(160)).actions, [{ kind: 'deleteJob' }]);
});

// ---- suspend and resume ----

test('spec.suspend deletes the pods and keeps the status (restarts, progress), clears startTime', () => {
  const status: FineTuneJobStatus = { ...running, restarts: 1, training: { step: 40, totalSteps: 100, epoch: 4 }, progress: '40%' };
  const job = makeJob({ suspend: true, status });
  const d = observe(job, bothRunning, at(50));
  assert.equal(d.status.phase, 'Suspended');
  assert.equal(d.status.startTime, undefined);
  assert.equal(d.status.restarts, 1);
  assert.deepEqual(d.status.training, status.training);
  assert.equal(d.status.progress, '40%');
  assert.deepEqual(byType(d.status).Suspended, cond('Suspended', 'True', 'JobSuspended', 'spec.suspend is true: worker pods deleted', 50));
  assert.deepEqual(byType(d.status).Running, cond('Running', 'False', 'JobSuspended', 'the job is suspended', 50));
  assert.deepEqual(d.events, [{ type: 'Normal', reason: 'Suspended', message: 'job suspended: deleting 2 worker pod(s)' }]);
  assert.deepEqual(d.actions, [{ kind: 'deletePods', pods: [ref(0), ref(1)] }], 'no support objects, no pods');
  assert.equal(d.requeueAfterMs, undefined);

  const terminating = bothRunning.map((p) => ({ ...p, terminating: true }));
  const again = observe(withStatus(job, d.status), terminating, at(51));
  assert.deepEqual(again.actions, [], 'terminating pods are not deleted twice');
  assert.deepEqual(again.events, []);
  assert.equal(again.status.phase, 'Suspended');
  const lagging = observe(withStatus(job, d.status), [terminating[0]!, bothRunning[1]!], at(51));
  assert.deepEqual(lagging.actions, [{ kind: 'deletePods', pods: [ref(1)] }]);
  assert.deepEqual(lagging.events, []);
  assertSettled(job, d, bothRunning, at(52));
});

test('a job created suspended (as Kueue does) never creates pods', () => {
  const job = makeJob({ suspend: true });
  const d = observe(job, [], at(1));
  assert.equal(d.status.phase, 'Suspended');
  assert.deepEqual(d.actions, []);
  assert.deepEqual(d.events, [
    { type: 'Normal', reason: 'Created', message: 'creating 2 worker pod(s)' },
    { type: 'Normal', reason: 'Suspended', message: 'job suspended: deleting 0 worker pod(s)' },
  ]);
  assert.equal(d.status.startTime, undefined);
  assertSettled(job, d, [], at(1));
});

test('resume: Pending again, Suspended condition False, Resumed event, every rank created, a new startTime', () => {
  const job = makeJob({ suspend: true, status: { ...running, restarts: 1 } });
  const suspended = observe(job, bothRunning, at(50)).status;
  const resumed = makeJob({ status: suspended });
  const d = observe(resumed, [], at(80));
  assert.equal(d.status.phase, 'Pending');
  assert.deepEqual(byType(d.status).Suspended, cond('Suspended', 'False', 'JobResumed', 'spec.suspend is false: workers resume from the latest checkpoint', 80));
  assert.deepEqual(d.events, [{ type: 'Normal', reason: 'Resumed', message: 'job resumed: recreating the workers, which continue from the latest checkpoint' }]);
  assert.deepEqual(d.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'createPods', ranks: [0, 1] }]);
  assert.equal(d.status.startTime, iso(80));
  assert.equal(d.status.restarts, 1);
  assertSettled(resumed, d, [], at(80));

  const oldPodLeft = observe(resumed, [pod(1, 'Running', { terminating: true })], at(80));
  assert.deepEqual(oldPodLeft.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'createPods', ranks: [0] }]);

  const runningAgain = observe(withStatus(resumed, d.status), bothRunning, at(90));
  assert.equal(runningAgain.status.phase, 'Running');
  assert.deepEqual(runningAgain.events, [{ type: 'Normal', reason: 'Running', message: 'all 2 workers are running' }]);
});

test('suspend while Restarting: the pods go, the restart is over (condition False); resume recreates the gang', () => {
  const restarting = observe(withStatus(makeJob(), running), [pod(0, 'Running'), pod(1, 'Failed', { exitCode: 1 })], at(20)).status;
  assert.equal(restarting.phase, 'Restarting');
  const leftovers = [pod(0, 'Running'), pod(1, 'Failed', { exitCode: 1, terminating: true })];
  const job = makeJob({ suspend: true, status: restarting });
  const d = observe(job, leftovers, at(21));
  assert.equal(d.status.phase, 'Suspended');
  assert.deepEqual(d.actions, [{ kind: 'deletePods', pods: [ref(0)] }]);
  assert.deepEqual(d.events, [{ type: 'Normal', reason: 'Suspended', message: 'job suspended: deleting 1 worker pod(s)' }]);
  assert.equal(d.status.restarts, 1);
  assert.equal(d.restarted, undefined);
  assert.deepEqual(
    byType(d.status).Restarting,
    cond('Restarting', 'False', 'JobSuspended', 'the job was suspended while its workers were restarting', 21),
    'no restart is under way while suspended',
  );
  assertSettled(job, d, leftovers, at(21));

  const resumed = makeJob({ status: d.status });
  const back = observe(resumed, [], at(30));
  assert.equal(back.status.phase, 'Pending');
  assert.deepEqual(back.actions, [{ kind: 'ensureSupportObjects' }, { kind: 'createPods', ranks: [0, 1] }]);
  const runningAgain = observe(withStatus(resumed, back.status), bothRunning, at(40)).status;
  assert.equal(runningAgain.phase, 'Running');
  assert.deepEqual(
    (runningAgain.conditions ?? []).filter((c) => c.status === 'True').map((c) => c.type).sort(),
    ['Created', 'Running'],
    'a running job has no condition left saying it restarts or is suspended',
  );
});

// ---- idempotence over the whole life ----

test('every state of a job\'s life is a fixed point: the same world twice gives no new events and the same status', () => {
  const worlds: { name: string; job: Job; pods: PodView[] }[] = [
    { name: 'new', job: makeJob(), pods: [] },
    { name: 'pending', job: withStatus(makeJob(), created), pods: [pod(0, 'Pending'), pod(1, 'Running')] },
    { name: 'running', job: withStatus(makeJob(), created), pods: bothRunning },
    { name: 'failed worker', job: withStatus(makeJob(), running), pods: [pod(0, 'Running'), pod(1, 'Failed', { exitCode: 1 })] },
    { name: 'bad input', job: withStatus(makeJob(), running), pods: [pod(0, 'Running'), pod(1, 'Failed', { exitCode: 2 })] },
    { name: 'spec changed', job: withStatus(makeJob(), running), pods: [pod(0, 'Running', { specHash: 'x' }), pod(1, 'Running', { specHash: 'x' })] },
    { name: 'succeeded', job: withStatus(makeJob(), running), pods: [pod(0, 'Succeeded', { exitCode: 0 }), pod(1, 'Succeeded', { exitCode: 0 })] },
    { name: 'stuck', job: withStatus(makeJob({ runPolicy: { schedulingTimeoutSeconds: 5 } }), created), pods: [pod(0, 'Pending', { pendingReason: unschedulable }), pod(1, 'Running')] },
    { name: 'deadline', job: withStatus(makeJob({ runPolicy: { activeDeadlineSeconds: 5 } }), running), pods: bothRunning },
    { name: 'suspended', job: makeJob({ suspend: true, status: running }), pods: bothRunning },
    { name: 'resumed', job: makeJob({ status: { ...running, phase: 'Suspended' } }), pods: [] },
  ];
  for (const { name, job, pods } of worlds) {
    const now = at(200);
    const first = observe(job, pods, now);
    assert.ok(first.events.length > 0 || name === 'pending', `${name}: the first pass records the transition`);
    const second = observe(withStatus(job, first.status), pods, now);
    assert.deepEqual(second.events, [], `${name}: no new events`);
    assert.deepEqual(second.status, first.status, `${name}: the same status`);
    const third = observe(withStatus(job, second.status), pods, now);
    assert.deepEqual(third, second, `${name}: a fixed point`);
  }
});

test('a peer that dies after rank 0 finished and wrote the model does not restart the job', () => {
  const job = withStatus(makeJob(), created);
  const pods = [pod(0, 'Succeeded', { exitCode: 0 }), pod(1, 'Failed', { exitCode: 137, terminationMessage: 'Error' })];
  const d = observe(job, pods, at(60));
  assert.equal(d.status.phase, 'Succeeded');
  assert.equal(d.status.restarts ?? 0, 0);
  assert.ok(!d.actions.some((a) => a.kind === 'createPods'));
  assert.deepEqual(d.events.map((e) => [e.type, e.reason]), [['Warning', 'WorkerFailedAfterTraining'], ['Normal', 'Succeeded']]);
  assert.match(d.events[0]!.message, /^worker 1 \(exit 137\) failed after rank 0 finished training/);

  // While the peer still runs, nothing is decided yet; rank 0 failing is a plain failure.
  assert.equal(observe(job, [pod(0, 'Succeeded', { exitCode: 0 }), pod(1, 'Running')], at(60)).status.phase, 'Running');
  assert.equal(observe(job, [pod(0, 'Failed', { exitCode: 137 }), pod(1, 'Succeeded', { exitCode: 0 })], at(60)).status.phase, 'Restarting');
});
