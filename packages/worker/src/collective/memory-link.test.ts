import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CollectiveError } from './link.js';
import { createMemoryRing } from './memory-link.js';

test('messages go to the next rank, in order, as copies that alias neither side', async () => {
  const ring = createMemoryRing(3);
  const buf = Uint8Array.of(1, 2, 3);
  await ring[0]!.send(buf);
  buf[0] = 9; // the sender reuses its buffer once send resolved
  await ring[0]!.send(buf);
  await ring[2]!.send(Uint8Array.of(7));
  const a = await ring[1]!.recv();
  const b = await ring[1]!.recv();
  assert.deepEqual([...a], [1, 2, 3]);
  assert.deepEqual([...b], [9, 2, 3]);
  assert.notEqual(a.buffer, buf.buffer);
  a[1] = 42; // the receiver owns what it got
  assert.deepEqual([...b], [9, 2, 3]);
  assert.deepEqual([...(await ring[0]!.recv())], [7]);
  assert.equal(ring[0]!.sentCount, 2);
  assert.equal(ring[1]!.receivedCount, 2);
});

test('a pending recv resolves when the message arrives', async () => {
  const ring = createMemoryRing(2);
  const pending = ring[0]!.recv();
  await ring[1]!.send(Uint8Array.of(5));
  assert.deepEqual([...(await pending)], [5]);
});

test('a receive timeout rejects with a CollectiveError naming the silent peer', { timeout: 5_000 }, async () => {
  const ring = createMemoryRing(4, { recvTimeoutMs: 50 });
  const started = Date.now();
  await assert.rejects(ring[2]!.recv(), (e: unknown) => e instanceof CollectiveError && e.peer === 1 && /peer 1 sent nothing for 50 ms/.test(e.message));
  assert.ok(Date.now() - started >= 45);
  // The link still works afterwards.
  await ring[1]!.send(Uint8Array.of(1));
  assert.deepEqual([...(await ring[2]!.recv())], [1]);
});

test('kill(rank) fails the next rank\'s recv and the previous rank\'s send, naming the dead rank', { timeout: 5_000 }, async () => {
  const ring = createMemoryRing(3);
  const waiting = ring[2]!.recv(); // rank 2 receives from rank 1
  await ring[1]!.send(Uint8Array.of(1)); // delivered to the waiting recv
  assert.deepEqual([...(await waiting)], [1]);
  await ring[1]!.send(Uint8Array.of(2)); // queued, lost when rank 1 dies
  ring.kill(1, 'oom');
  const isPeer1 = (e: unknown) => e instanceof CollectiveError && e.peer === 1 && /^peer 1 killed \(oom\)/.test(e.message);
  await assert.rejects(ring[2]!.recv(), isPeer1);
  await assert.rejects(ring[0]!.send(Uint8Array.of(3)), isPeer1);
  await assert.rejects(ring[1]!.recv(), /rank 1 was killed/);
  await assert.rejects(ring[1]!.send(Uint8Array.of(3)), /rank 1 was killed/);
  // Unrelated edges keep working.
  await ring[2]!.send(Uint8Array.of(4));
  assert.deepEqual([...(await ring[0]!.recv())], [4]);
});

test('kill rejects a recv that is already waiting', { timeout: 5_000 }, async () => {
  const ring = createMemoryRing(2);
  const waiting = ring[0]!.recv();
  ring.kill(1);
  await assert.rejects(waiting, (e: unknown) => e instanceof CollectiveError && e.peer === 1);
});

test('maxQueued applies back-pressure in order; kill releases blocked senders with an error', { timeout: 5_000 }, async () => {
  const ring = createMemoryRing(2, { maxQueued: 1 });
  const order: number[] = [];
  const s1 = ring[0]!.send(Uint8Array.of(1)).then(() => order.push(1));
  const s2 = ring[0]!.send(Uint8Array.of(2)).then(() => order.push(2));
  const s3 = ring[0]!.send(Uint8Array.of(3)).then(() => order.push(3));
  await s1;
  await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(order, [1], 'the second send waits for room');
  assert.deepEqual([...(await ring[1]!.recv())], [1]);
  await s2;
  assert.deepEqual(order, [1, 2]);
  assert.deepEqual([...(await ring[1]!.recv())], [2]);
  assert.deepEqual([...(await ring[1]!.recv())], [3]);
  await s3;
  const a = ring[0]!.send(Uint8Array.of(4));
  const blocked = ring[0]!.send(Uint8Array.of(5));
  await a;
  ring.kill(1);
  await assert.rejects(blocked, (e: unknown) => e instanceof CollectiveError && e.peer === 1);
});

test('close() lets the next rank drain what was sent, then rejects; sends to a closed rank reject', { timeout: 5_000 }, async () => {
  const ring = createMemoryRing(3);
  await ring[0]!.send(Uint8Array.of(1));
  await ring[0]!.close();
  assert.deepEqual([...(await ring[1]!.recv())], [1]);
  await assert.rejects(ring[1]!.recv(), (e: unknown) => e instanceof CollectiveError && e.peer === 0 && /peer 0 closed/.test(e.message));
  await assert.rejects(ring[2]!.send(Uint8Array.of(1)), (e: unknown) => e instanceof CollectiveError && e.peer === 0);
  await assert.rejects(ring[0]!.send(Uint8Array.of(1)), /link closed/);
});

test('bad arguments', () => {
  assert.throws(() => createMemoryRing(0), RangeError);
  assert.throws(() => createMemoryRing(2, { maxQueued: 0 }), RangeError);
  assert.throws(() => createMemoryRing(2).kill(2), RangeError);
});
