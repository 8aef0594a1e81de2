import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Condition } from '@finetune/api';
import { CONDITION, conditionIs, setCondition } from './conditions.js';

const t1 = new Date('2025-03-01T10:00:00.000Z');
const t2 = new Date('2025-03-01T10:05:00.000Z');

test('a new condition is added with now as its transition time and the generation it was set for', () => {
  const conditions = setCondition([], CONDITION.running, true, 'AllWorkersRunning', 'all 2 workers are running', t1, 4);
  assert.deepEqual(conditions, [
    { type: 'Running', status: 'True', reason: 'AllWorkersRunning', message: 'all 2 workers are running', lastTransitionTime: '2025-03-01T10:00:00.000Z', observedGeneration: 4 },
  ]);
  const noGeneration = setCondition([], CONDITION.failed, false, 'NotFailed', '', t1);
  assert.equal('observedGeneration' in noGeneration[0]!, false);
  assert.equal(noGeneration[0]!.status, 'False');
});

test('the same status again keeps lastTransitionTime and takes the new reason, message and generation', () => {
  const first = setCondition([], CONDITION.restarting, true, 'WorkerFailed', 'worker 1 exited with code 1', t1, 1);
  const second = setCondition(first, CONDITION.restarting, true, 'SpecChanged', 'the worker spec changed', t2, 2);
  assert.deepEqual(second, [
    { type: 'Restarting', status: 'True', reason: 'SpecChanged', message: 'the worker spec changed', lastTransitionTime: '2025-03-01T10:00:00.000Z', observedGeneration: 2 },
  ]);
});

test('a status change takes now as the transition time', () => {
  const first = setCondition([], CONDITION.suspended, true, 'JobSuspended', 'suspended', t1);
  const second = setCondition(first, CONDITION.suspended, false, 'JobResumed', 'resumed', t2);
  assert.deepEqual(second, [{ type: 'Suspended', status: 'False', reason: 'JobResumed', message: 'resumed', lastTransitionTime: '2025-03-01T10:05:00.000Z' }]);
  const unknown: Condition[] = [{ type: 'Running', status: 'Unknown', reason: 'Unknown', message: '', lastTransitionTime: t1.toISOString() }];
  assert.equal(setCondition(unknown, CONDITION.running, false, 'X', '', t2)[0]!.lastTransitionTime, t2.toISOString(), 'Unknown → False is a transition');
});

test('other conditions are kept, each type appears once, and the input list is not changed', () => {
  const created = setCondition([], CONDITION.created, true, 'WorkersPlanned', 'planned', t1);
  const both = setCondition(created, CONDITION.running, true, 'AllWorkersRunning', 'running', t1);
  const snapshot = structuredClone(both);
  const next = setCondition(both, CONDITION.running, false, 'JobSucceeded', 'training finished', t2);
  assert.deepEqual(both, snapshot);
  assert.deepEqual(next.map((c) => [c.type, c.status]).sort(), [['Created', 'True'], ['Running', 'False']]);
  assert.deepEqual(next.find((c) => c.type === 'Created'), created[0]);
});

test('setting a condition twice the same way gives the same list (so a status write is not needed)', () => {
  const list = setCondition(setCondition([], CONDITION.created, true, 'WorkersPlanned', 'planned', t1), CONDITION.running, true, 'AllWorkersRunning', 'running', t1);
  assert.deepEqual(setCondition(list, CONDITION.running, true, 'AllWorkersRunning', 'running', t2), list);
});

test('conditionIs: true only for a condition of that type with status True', () => {
  const list: Condition[] = [
    { type: 'Running', status: 'True', reason: 'A', message: '', lastTransitionTime: t1.toISOString() },
    { type: 'Failed', status: 'False', reason: 'B', message: '', lastTransitionTime: t1.toISOString() },
    { type: 'Suspended', status: 'Unknown', reason: 'C', message: '', lastTransitionTime: t1.toISOString() },
  ];
  assert.equal(conditionIs(list, CONDITION.running), true);
  assert.equal(conditionIs(list, CONDITION.failed), false);
  assert.equal(conditionIs(list, CONDITION.suspended), false);
  assert.equal(conditionIs(list, CONDITION.succeeded), false);
  assert.equal(conditionIs(undefined, CONDITION.running), false);
  assert.equal(conditionIs([], CONDITION.running), false);
});

test('the condition types are the ones the CRD documents', () => {
  assert.deepEqual(Object.values(CONDITION), ['Created', 'Running', 'Restarting', 'Suspended', 'Succeeded', 'Failed']);
});
