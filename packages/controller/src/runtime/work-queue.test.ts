import { test } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { DEFAULT_BACKOFF, WorkQueue } from './work-queue.js';

// Real timers, short ones. The queue's own timers are unref'd, so these helpers' timers are what
// keep the test process alive while a delayed key is due.

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function waitFor(done: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(2);
  }
}

function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

/** Timers may fire up to a millisecond early against performance.now() (the loop's clock is coarse). */
const SLACK_MS = 2;

/** A handler that records every call, how many run at once (per key and in all), and can hold keys. */
function recorder(hold: (key: string) => Promise<void> | undefined = () => undefined) {
  const calls: { key: string; at: number }[] = [];
  const inFlight = new Map<string, number>();
  let maxPerKey = 0;
  let active = 0;
  let maxActive = 0;
  const handler = async (key: string) => {
    calls.push({ key, at: performance.now() });
    inFlight.set(key, (inFlight.get(key) ?? 0) + 1);
    maxPerKey = Math.max(maxPerKey, inFlight.get(key)!);
    maxActive = Math.max(maxActive, ++active);
    try {
      await hold(key);
      await sleep(1); // every pass yields, as a real reconcile does
    } finally {
      inFlight.set(key, inFlight.get(key)! - 1);
      active--;
    }
  };
  return {
    handler,
    calls,
    keys: () => calls.map((c) => c.key),
    count: (key: string) => calls.filter((c) => c.key === key).length,
    get active() {
      return active;
    },
    get maxPerKey() {
      return maxPerKey;
    },
    get maxActive() {
      return maxActive;
    },
  };
}

test('events for one key collapse: a key waits in the queue at most once', async () => {
  const q = new WorkQueue();
  q.add('ml/a');
  q.add('ml/a');
  q.add('ml/b');
  q.add('ml/a');
  assert.equal(q.length, 2);
  const r = recorder();
  const running = q.run(2, r.handler);
  await waitFor(() => r.calls.length === 2, 'both keys');
  await sleep(30);
  assert.deepEqual(r.keys().sort(), ['ml/a', 'ml/b']);
  assert.equal(q.length, 0);
  q.stop();
  await running;
});

test('one key is never processed by two workers at once; adds while it runs collapse into one more pass', async () => {
  const q = new WorkQueue();
  const first = gate();
  const r = recorder((key) => (key === 'ml/a' && r.count('ml/a') === 1 ? first.opened : undefined));
  const running = q.run(3, r.handler);
  q.add('ml/a');
  await waitFor(() => r.count('ml/a') === 1, 'the first pass');
  q.add('ml/a');
  q.add('ml/a');
  q.add('ml/a');
  assert.equal(q.length, 0, 'the key is marked dirty, not queued where an idle worker would take it');
  await sleep(30);
  assert.equal(r.count('ml/a'), 1, 'two idle workers did not take it');
  first.open();
  await waitFor(() => r.count('ml/a') === 2, 'the pass for the adds made while it ran');
  await sleep(30);
  assert.equal(r.count('ml/a'), 2, 'three adds, one more pass');
  assert.equal(r.maxPerKey, 1);
  q.stop();
  await running;
});

test('different keys are processed in parallel, up to the concurrency', async () => {
  const q = new WorkQueue();
  const release = gate();
  const r = recorder(() => release.opened);
  const running = q.run(2, r.handler);
  for (const key of ['ml/a', 'ml/b', 'ml/c']) q.add(key);
  await waitFor(() => r.active === 2, 'two keys in flight');
  await sleep(30);
  assert.equal(r.active, 2);
  assert.equal(r.maxActive, 2, 'never more than the concurrency');
  assert.equal(q.length, 1, 'the third key waits');
  release.open();
  await waitFor(() => r.calls.length === 3 && r.active === 0, 'every key');
  assert.deepEqual(r.keys(), ['ml/a', 'ml/b', 'ml/c'], 'first in, first out');
  q.stop();
  await running;
});

test('addAfter queues a key later, keeping only the earliest time per key', async () => {
  const q = new WorkQueue();
  const r = recorder();
  const running = q.run(2, r.handler);
  const start = performance.now();
  q.addAfter('ml/a', 80);
  q.addAfter('ml/a', 400); // later than pending: ignored
  q.addAfter('ml/b', 400);
  q.addAfter('ml/b', 40); // sooner: replaces the pending timer
  assert.equal(q.length, 0);
  await waitFor(() => r.calls.length === 2, 'both delayed keys');
  const atOf = (key: string) => r.calls.find((c) => c.key === key)!.at - start;
  assert.deepEqual(r.keys(), ['ml/b', 'ml/a']);
  assert.ok(atOf('ml/b') >= 40 - SLACK_MS && atOf('ml/b') < 350, `b after ${atOf('ml/b')} ms`);
  assert.ok(atOf('ml/a') >= 80 - SLACK_MS && atOf('ml/a') < 350, `a after ${atOf('ml/a')} ms`);
  await sleep(450 - (performance.now() - start));
  assert.deepEqual(r.keys(), ['ml/b', 'ml/a'], 'the replaced and ignored timers never fire');
  q.stop();
  await running;
});

test('addAfter with no delay queues at once', () => {
  const q = new WorkQueue();
  q.addAfter('ml/a', 0);
  q.addAfter('ml/b', -5);
  assert.equal(q.length, 2);
  q.stop();
});

test('a delayed key that comes due while it is being processed gets one more pass afterwards', async () => {
  const q = new WorkQueue();
  const first = gate();
  const r = recorder((key) => (r.count(key) === 1 ? first.opened : undefined));
  const running = q.run(2, r.handler);
  q.add('ml/a');
  await waitFor(() => r.count('ml/a') === 1, 'the first pass');
  q.addAfter('ml/a', 20);
  await sleep(60);
  assert.equal(r.count('ml/a'), 1);
  first.open();
  await waitFor(() => r.count('ml/a') === 2, 'the delayed pass');
  assert.equal(r.maxPerKey, 1);
  q.stop();
  await running;
});

test('addRateLimited: exponential backoff per key, capped at maxMs, reset by forget', () => {
  const q = new WorkQueue({ baseMs: 10, maxMs: 50 });
  assert.deepEqual([1, 2, 3, 4, 5].map(() => q.addRateLimited('ml/a')), [10, 20, 40, 50, 50]);
  assert.equal(q.retries('ml/a'), 5);
  assert.equal(q.retries('ml/b'), 0);
  assert.equal(q.addRateLimited('ml/b'), 10, 'each key has its own backoff');
  q.forget('ml/a');
  assert.equal(q.retries('ml/a'), 0);
  assert.equal(q.addRateLimited('ml/a'), 10);
  assert.equal(q.retries('ml/b'), 1, 'forgetting one key leaves the others');
  q.stop();
  assert.deepEqual(DEFAULT_BACKOFF, { baseMs: 100, maxMs: 60_000 });
  const big = new WorkQueue({ baseMs: 100, maxMs: 60_000 });
  for (let i = 0; i < 2000; i++) big.addRateLimited('ml/x');
  assert.equal(big.addRateLimited('ml/x'), 60_000, 'no overflow after many failures');
  big.stop();
});

test('a failing key is retried after its backoff delays, and forget after a success resets them', async () => {
  const q = new WorkQueue({ baseMs: 25, maxMs: 1000 });
  const delays: number[] = [];
  const r = recorder();
  const running = q.run(2, async (key) => {
    await r.handler(key);
    if (r.count(key) <= 2) delays.push(q.addRateLimited(key)); // the reconcile failed
    else q.forget(key);
  });
  q.add('ml/a');
  await waitFor(() => r.count('ml/a') === 3, 'two retries');
  const [t1, t2, t3] = r.calls.map((c) => c.at) as [number, number, number];
  assert.deepEqual(delays, [25, 50]);
  assert.ok(t2 - t1 >= 25 - SLACK_MS, `first retry after ${t2 - t1} ms`);
  assert.ok(t3 - t2 >= 50 - SLACK_MS, `second retry after ${t3 - t2} ms`);
  await waitFor(() => r.active === 0, 'the last pass');
  assert.equal(q.retries('ml/a'), 0);
  q.stop();
  await running;
});

test('stop: run() resolves once in-flight passes finish; queued keys, later adds, dirty keys and timers are dropped', async () => {
  const q = new WorkQueue();
  const release = gate();
  const r = recorder((key) => (key === 'ml/a' ? release.opened : undefined));
  const running = q.run(1, r.handler);
  let resolved = false;
  void running.then(() => (resolved = true));
  q.add('ml/a');
  await waitFor(() => r.count('ml/a') === 1, 'the pass in flight');
  q.add('ml/queued');
  q.add('ml/a'); // dirty
  q.addAfter('ml/timer', 20);
  q.stop();
  q.add('ml/late');
  q.addAfter('ml/late-timer', 1);
  await sleep(40);
  assert.equal(resolved, false, 'waits for the pass in flight');
  release.open();
  await running;
  await sleep(40);
  assert.deepEqual(r.keys(), ['ml/a']);
});

test('stop with idle workers ends run() at once, and run() on a stopped queue returns', async () => {
  const q = new WorkQueue();
  const r = recorder();
  const running = q.run(4, r.handler);
  await sleep(10);
  q.stop();
  await running;
  await q.run(2, r.handler);
  assert.deepEqual(r.calls, []);
});
