// The controller's Kubernetes runtime (KubeRest, Reflector, LeaderElector from
// @finetune/controller) against a real etcd + kube-apiserver, with real network faults
// injected by a TCP proxy between the client and the API server (./fault-proxy.mjs):
//   npx tsc -b packages/controller && node --test test/controller-runtime/
// One control plane serves every test (starting one takes 5–20 s); each test works in
// its own namespace or Lease.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { isAlreadyExists, isConflict, isNotFound, LeaderElector, Reflector, RESOURCES } from '@finetune/controller';
import { startControlPlane } from '../control-plane/harness.mjs';
import { kubeconfigThrough, startFaultProxy } from './fault-proxy.mjs';
import { apiServerMetrics, clientsFor, createNamespace, installWidgets, kubectl, sleep, waitConverged, waitFor, widget, WIDGETS } from './support.mjs';

// The first run builds kube-apiserver from source: allow for it in the startup hook.
const START_TIMEOUT_MS = (Number(process.env.FT_BUILD_TIMEOUT_S ?? 5400) + 300) * 1000;
const WIDGET_RESOURCE = 'widgets.runtime.finetune.test';

let cp;
let proxy;
/** Clients that talk to the API server directly, and through the fault proxy. */
let direct;
let viaProxy;
let proxyKubeconfig;
const cleanups = [];
const logs = [];

before(async () => {
  cp = await startControlPlane({ scheduler: false });
  proxy = await startFaultProxy(cp.server);
  direct = clientsFor(cp.kubeconfigPath);
  proxyKubeconfig = kubeconfigThrough(cp.kubeconfigPath, cp.server, proxy.url, join(cp.dir, 'through-proxy.kubeconfig'));
  viaProxy = clientsFor(proxyKubeconfig);
  await installWidgets(cp, direct.rest);
}, { timeout: START_TIMEOUT_MS });

afterEach(() => proxy?.forward());

after(async () => {
  try {
    for (const cleanup of cleanups.reverse()) await Promise.resolve().then(cleanup).catch(() => {});
  } finally {
    await proxy?.close(); // also ends requests still hanging in a stalled connection
    await cp?.stop();
  }
}, { timeout: 90_000 });

/** A reflector whose change events are recorded as { type, name, rv, data }. */
function reflect(clients, type, namespace, options = {}) {
  const events = [];
  const reflector = new Reflector(clients.rest, {
    type,
    namespace,
    onChange: (t, o) => events.push({ type: t, name: o.metadata.name, rv: o.metadata.resourceVersion, data: o.data ?? o.spec }),
    log: (line) => logs.push(`${new Date().toISOString()} ${line}`),
    ...options,
  });
  cleanups.push(() => reflector.stop());
  return { reflector, events };
}
const summary = (events) => events.map((e) => `${e.type} ${e.name}`);
const configMap = (namespace, name, data = {}, labels = {}) => ({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, namespace, labels }, data });

describe('KubeRest', () => {
  test('404, AlreadyExists, a stale resourceVersion and a uid precondition map to isNotFound / isAlreadyExists / isConflict, and each reaches the error observer', async () => {
    const seen = [];
    const { rest } = clientsFor(cp.kubeconfigPath, { onError: (verb, resource, err) => seen.push(`${verb} ${resource} ${err.code} ${err.reason}`) });
    const ns = await createNamespace(rest, 'rest-errors');
    const CM = RESOURCES.configMaps;

    const missing = await rest.get(CM, ns, 'nope').catch((err) => err);
    assert.equal(missing.name, 'ApiError');
    assert.ok(isNotFound(missing) && !isConflict(missing) && !isAlreadyExists(missing));
    assert.match(missing.message, /^get \/api\/v1\/namespaces\/rest-errors\/configmaps\/nope: 404 configmaps "nope" not found$/);

    const v1 = await rest.create(CM, ns, configMap(ns, 'c1', { k: '1' }));
    const again = await rest.create(CM, ns, configMap(ns, 'c1')).catch((err) => err);
    assert.ok(isAlreadyExists(again) && !isConflict(again), again.message);

    // Optimistic concurrency: a replace carrying the version read earlier loses to a newer write.
    const v2 = await rest.replace(CM, ns, 'c1', { ...v1, data: { k: '2' } });
    assert.notEqual(v2.metadata.resourceVersion, v1.metadata.resourceVersion);
    const stale = await rest.replace(CM, ns, 'c1', { ...v1, data: { k: 'stale' } }).catch((err) => err);
    assert.ok(isConflict(stale) && !isAlreadyExists(stale), stale.message);
    assert.deepEqual((await rest.get(CM, ns, 'c1')).data, { k: '2' });

    // A uid precondition never deletes a namesake.
    const wrongUid = await rest.delete(CM, ns, 'c1', { uid: '00000000-0000-0000-0000-000000000000' }).catch((err) => err);
    assert.ok(isConflict(wrongUid), wrongUid.message);
    await rest.delete(CM, ns, 'c1', { uid: v1.metadata.uid });
    assert.ok(isNotFound(await rest.get(CM, ns, 'c1').catch((err) => err)));

    assert.deepEqual(seen, [
      'get configmaps 404 NotFound',
      'create configmaps 409 AlreadyExists',
      'update configmaps 409 Conflict',
      'delete configmaps 409 Conflict',
      'get configmaps 404 NotFound',
    ]);
  });

  test('list follows continue tokens page by page (counted by the API server) and returns every object', async () => {
    const { rest } = direct;
    const ns = await createNamespace(rest, 'rest-paging');
    const names = Array.from({ length: 10 }, (_, i) => `page-${String(i).padStart(2, '0')}`);
    await Promise.all(names.map((name) => rest.create(RESOURCES.configMaps, ns, configMap(ns, name, {}, { paged: 'yes' }))));
    await rest.create(RESOURCES.configMaps, ns, configMap(ns, 'not-selected'));

    const lists = await namespacedListCount('configmaps');
    const list = await rest.list(RESOURCES.configMaps, ns, { labelSelector: 'paged=yes', limit: '3' });
    assert.deepEqual(list.items.map((o) => o.metadata.name).sort(), names);
    assert.match(list.metadata.resourceVersion, /^\d+$/);
    assert.equal((await namespacedListCount('configmaps')) - lists, 4, 'ten objects in pages of three: four LIST requests');
  });

  test('server-side apply owns the fields it sends; a merge patch of the status subresource changes only the status', async () => {
    const { rest } = direct;
    const ns = await createNamespace(rest, 'rest-apply');
    const applied = await rest.patch(WIDGETS, ns, 'w', widget(ns, 'w', { size: 1 }), 'apply', { fieldManager: 'runtime-test' });
    assert.deepEqual(applied.spec, { size: 1 });
    assert.ok(applied.metadata.managedFields.some((f) => f.manager === 'runtime-test' && f.operation === 'Apply'));

    const reapplied = await rest.patch(WIDGETS, ns, 'w', widget(ns, 'w', { size: 2 }), 'apply', { fieldManager: 'runtime-test' });
    assert.deepEqual(reapplied.spec, { size: 2 });

    const withStatus = await rest.patch(WIDGETS, ns, 'w', { spec: { size: 99 }, status: { phase: 'Running' } }, 'merge', { subresource: 'status' });
    assert.deepEqual(withStatus.status, { phase: 'Running' });
    assert.deepEqual(withStatus.spec, { size: 2 }, 'the status subresource ignores spec changes');
  });

  test('a request to a black-holed API server fails after its timeout with a NetworkError', async () => {
    const { rest } = clientsFor(proxyKubeconfig, { timeoutMs: 1000 });
    proxy.stall();
    const started = Date.now();
    const err = await rest.get(RESOURCES.configMaps, 'default', 'anything').catch((e) => e);
    const took = Date.now() - started;
    assert.equal(err.code, 0, err.message);
    assert.equal(err.reason, 'NetworkError');
    assert.ok(took >= 900 && took < 5000, `failed after ${took} ms`);
  });
});

describe('Reflector', () => {
  test('objects created, modified, relabelled and deleted with kubectl show up in the store and as change events', async () => {
    const ns = await createNamespace(direct.rest, 'reflect-basics');
    await kubectl(cp, ['create', 'configmap', 'early', '-n', ns, '--from-literal=k=0']);
    await kubectl(cp, ['label', 'configmap', 'early', '-n', ns, 'app=demo']);
    const { reflector, events } = reflect(direct, RESOURCES.configMaps, ns, { labelSelector: 'app=demo' });
    await reflector.start();
    assert.deepEqual(summary(events), ['ADDED early'], 'the first list fills the store');
    const converged = () => waitConverged(cp, reflector, 'configmaps', ns, { selector: 'app=demo' });

    await kubectl(cp, ['apply', '-f', '-'], JSON.stringify(configMap(ns, 'a', { k: '1' }, { app: 'demo' })));
    await kubectl(cp, ['create', 'configmap', 'unselected', '-n', ns, '--from-literal=k=1']);
    await converged();
    await kubectl(cp, ['patch', 'configmap', 'a', '-n', ns, '--type=merge', '-p', '{"data":{"k":"2"}}']);
    await converged();
    assert.deepEqual(reflector.get(`${ns}/a`).data, { k: '2' });
    await kubectl(cp, ['label', 'configmap', 'early', '-n', ns, 'app-']); // no longer selected
    await kubectl(cp, ['delete', 'configmap', 'a', '-n', ns]);
    await converged();

    assert.deepEqual(summary(events), ['ADDED early', 'ADDED a', 'MODIFIED a', 'DELETED early', 'DELETED a']);
    assert.deepEqual(events[2].data, { k: '2' });
    assert.equal(reflector.list().length, 0);
    const { watches: _, ...recoveries } = reflector.stats;
    assert.deepEqual(recoveries, { lists: 1, gone: 0, stalls: 0, errors: 0 }, 'nothing to recover from');
  });

  test('410 Gone: resuming from a version the server no longer keeps relists and emits what changed meanwhile, deletions included', async () => {
    const ns = await createNamespace(direct.rest, 'reflect-gone');
    for (const name of ['w1', 'w2', 'w3']) await direct.rest.create(WIDGETS, ns, widget(ns, name, { size: 1 }));
    const { reflector, events } = reflect(viaProxy, WIDGETS, ns);
    await reflector.start();
    await waitConverged(cp, reflector, WIDGET_RESOURCE, ns);
    const before = { ...reflector.stats };
    events.length = 0;

    // Cut the reflector off (its watch breaks, every retry is refused) and change things meanwhile.
    proxy.refuse();
    await waitFor('the watch to fail', () => reflector.stats.errors > before.errors);
    await direct.rest.create(WIDGETS, ns, widget(ns, 'w4', { size: 4 }));
    await direct.rest.patch(WIDGETS, ns, 'w2', { spec: { size: 2 } }, 'merge');
    await direct.rest.delete(WIDGETS, ns, 'w1');
    // The widgets' watch cache began long after version 1: the server answers 410 Gone.
    reflector.restartWatchFrom('1');
    proxy.forward();

    await waitFor('the reflector to see 410 Gone', () => reflector.stats.gone > before.gone);
    await waitConverged(cp, reflector, WIDGET_RESOURCE, ns);
    assert.equal(reflector.stats.gone, before.gone + 1);
    assert.equal(reflector.stats.lists, before.lists + 1);
    assert.deepEqual(summary(events).sort(), ['ADDED w4', 'DELETED w1', 'MODIFIED w2'], 'one event per difference, nothing for the unchanged w3');
    assert.ok(logs.some((l) => /resource version 1 is gone, listing again/.test(l)));

    // The watch resumed after the relist: later changes arrive as ordinary events.
    await direct.rest.delete(WIDGETS, ns, 'w3');
    await waitConverged(cp, reflector, WIDGET_RESOURCE, ns);
    assert.equal(summary(events).at(-1), 'DELETED w3');
  });

  test('dropped connections: the watch resumes from its last version and catches up with what changed meanwhile', async () => {
    const ns = await createNamespace(direct.rest, 'reflect-drops');
    const CM = RESOURCES.configMaps;
    await direct.rest.create(CM, ns, configMap(ns, 'round-0', { round: '0' }));
    const { reflector, events } = reflect(viaProxy, CM, ns);
    await reflector.start();
    await waitConverged(cp, reflector, 'configmaps', ns);
    const before = { ...reflector.stats };

    for (let round = 1; round <= 3; round++) {
      // Converged (after the first round: on events the new watch delivered) means a watch is
      // streaming through the proxy: drop it mid-stream.
      await waitFor('the watch to be connected through the proxy', () => proxy.open > 0);
      proxy.dropAll();
      await direct.rest.create(CM, ns, configMap(ns, `round-${round}`, { round: String(round) }));
      await direct.rest.patch(CM, ns, `round-${round - 1}`, { data: { round: `${round - 1} changed` } }, 'merge');
      if (round > 1) await direct.rest.delete(CM, ns, `round-${round - 2}`);
      await waitConverged(cp, reflector, 'configmaps', ns);
    }

    assert.deepEqual(summary(events), [
      'ADDED round-0',
      'ADDED round-1', 'MODIFIED round-0',
      'ADDED round-2', 'MODIFIED round-1', 'DELETED round-0',
      'ADDED round-3', 'MODIFIED round-2', 'DELETED round-1',
    ]);
    assert.ok(reflector.stats.errors >= before.errors + 3, `errors ${JSON.stringify(reflector.stats)}`);
    assert.ok(reflector.stats.watches >= before.watches + 3, `watches ${JSON.stringify(reflector.stats)}`);
    assert.equal(reflector.stats.lists, 1, 'resumed from the last version, no relist needed');
    assert.ok(logs.some((l) => /watch configmaps ended: /.test(l)));
  });

  test('a silent stall (connection open, nothing arrives) is abandoned after stallMs; once the network heals, the changes made during it arrive', async () => {
    const STALL_MS = 1500;
    const ns = await createNamespace(direct.rest, 'reflect-stall');
    const CM = RESOURCES.configMaps;
    await direct.rest.create(CM, ns, configMap(ns, 'kept', { v: '0' }));
    await direct.rest.create(CM, ns, configMap(ns, 'doomed'));
    const { reflector, events } = reflect(viaProxy, CM, ns, { stallMs: STALL_MS });
    await reflector.start();
    await waitConverged(cp, reflector, 'configmaps', ns);
    const cached = JSON.stringify(reflector.list());
    events.length = 0;

    proxy.stall();
    const stallsBefore = reflector.stats.stalls;
    await direct.rest.create(CM, ns, configMap(ns, 'new'));
    await direct.rest.patch(CM, ns, 'kept', { data: { v: '1' } }, 'merge');
    await direct.rest.delete(CM, ns, 'doomed');
    await sleep(2 * STALL_MS + 500);
    assert.equal(JSON.stringify(reflector.list()), cached, 'nothing got through the stalled network');
    assert.deepEqual(events, []);
    assert.ok(reflector.stats.stalls >= stallsBefore + 2, `stalls ${JSON.stringify(reflector.stats)}`);

    proxy.forward();
    const catchUpMs = await waitConverged(cp, reflector, 'configmaps', ns, { timeoutMs: 4 * STALL_MS + 5000 });
    assert.deepEqual(summary(events).sort(), ['ADDED new', 'DELETED doomed', 'MODIFIED kept']);
    process.stderr.write(`[controller-runtime] stall: caught up ${catchUpMs} ms after the network healed (stallMs ${STALL_MS}); ${proxy.open} proxied connections still open\n`);
  });
});

describe('LeaderElector', () => {
  const TIMING = { leaseDurationS: 3, renewDeadlineS: 2, retryPeriodS: 0.5 };

  /** An elector whose transitions are appended to `timeline` as { at, who, what }. */
  function elector(clients, lease, identity, timeline) {
    const e = new LeaderElector(clients.rest, {
      namespace: 'default',
      name: lease,
      identity,
      ...TIMING,
      onStarted: () => timeline.push({ at: Date.now(), who: identity, what: 'started' }),
      onLost: () => timeline.push({ at: Date.now(), who: identity, what: 'lost' }),
      log: (line) => logs.push(line),
    });
    cleanups.push(() => e.stop());
    return e;
  }

  /** Samples who leads every 10 ms; `most` is the largest number of simultaneous leaders seen. */
  function sampleLeaders(electors) {
    const sampler = { samples: 0, most: 0, withLeader: 0 };
    const timer = setInterval(() => {
      const leaders = electors.filter((e) => e.isLeader).length;
      sampler.samples++;
      sampler.most = Math.max(sampler.most, leaders);
      if (leaders > 0) sampler.withLeader++;
    }, 10);
    sampler.stop = () => clearInterval(timer);
    return sampler;
  }

  const getLease = (name) => direct.rest.get(RESOURCES.leases, 'default', name);

  test('two candidates: exactly one leads, the Lease names it, and stop() hands the lease over at once', async () => {
    const timeline = [];
    const a = elector(direct, 'handover', 'replica-a', timeline);
    const b = elector(direct, 'handover', 'replica-b', timeline);
    const sampler = sampleLeaders([a, b]);
    a.start();
    b.start();
    const leader = await waitFor('a leader', () => [a, b].find((e) => e.isLeader), { timeoutMs: 10_000, intervalMs: 10 });
    const follower = leader === a ? b : a;
    const steady = sampleLeaders([a, b]);
    await sleep(2500); // several renewals
    steady.stop();
    assert.ok(leader.isLeader && !follower.isLeader);
    assert.equal(steady.withLeader, steady.samples, `one leader all along: in ${steady.withLeader}/${steady.samples} samples`);
    let lease = await getLease('handover');
    assert.equal(lease.spec.holderIdentity, leader.identity);
    assert.equal(lease.spec.leaseTransitions, 0);
    assert.equal(lease.spec.leaseDurationSeconds, TIMING.leaseDurationS);
    assert.ok(Date.now() - Date.parse(lease.spec.renewTime) < 2000, `renewed at ${lease.spec.renewTime}`);

    const stopped = Date.now();
    await leader.stop();
    assert.equal(leader.isLeader, false);
    await waitFor('the follower to take over', () => follower.isLeader, { timeoutMs: 10_000, intervalMs: 10 });
    const handoverMs = Date.now() - stopped;
    sampler.stop();
    assert.ok(handoverMs < 2000, `handed over after ${handoverMs} ms; the lease lasts ${TIMING.leaseDurationS} s`);
    lease = await getLease('handover');
    assert.equal(lease.spec.holderIdentity, follower.identity);
    assert.equal(lease.spec.leaseTransitions, 1);
    assert.equal(sampler.most, 1, 'never two leaders');
    assert.deepEqual(timeline.map((t) => `${t.who} ${t.what}`), [`${leader.identity} started`, `${follower.identity} started`]);
    process.stderr.write(`[controller-runtime] leader election: stop() handed over in ${handoverMs} ms\n`);
  });

  test('a leader cut off from the API server steps down within its renew deadline, and the other takes over only once the lease expired', async () => {
    const timeline = [];
    const cutOff = elector(viaProxy, 'partition', 'replica-cut-off', timeline);
    const other = elector(direct, 'partition', 'replica-other', timeline);
    cutOff.start();
    await waitFor('the first candidate to lead', () => cutOff.isLeader, { timeoutMs: 10_000, intervalMs: 10 });
    other.start();
    const sampler = sampleLeaders([cutOff, other]);
    const renewals = watchRenewals('partition', cutOff.identity);
    await sleep(1500);
    assert.ok(cutOff.isLeader && !other.isLeader);

    const cut = Date.now();
    proxy.stall();
    await waitFor('the other candidate to take over', () => other.isLeader, { timeoutMs: 15_000, intervalMs: 10 });
    sampler.stop();
    await renewals.stop();
    const lost = timeline.find((t) => t.who === cutOff.identity && t.what === 'lost');
    const taken = timeline.find((t) => t.who === other.identity && t.what === 'started');
    assert.ok(lost, `the cut-off leader called onLost; timeline ${JSON.stringify(timeline)}`);
    // Measured from the cut-off leader's last renewTime in the Lease (same clock: one machine).
    const last = renewals.last;
    assert.ok(last > cut - 5000 && last <= cut, `last renewal at ${new Date(last).toISOString()}, cut at ${new Date(cut).toISOString()}`);
    const stepDownMs = lost.at - last;
    const takeoverMs = taken.at - last;
    assert.ok(stepDownMs <= TIMING.renewDeadlineS * 1000 + 500, `stepped down ${stepDownMs} ms after its last renewal (renew deadline ${TIMING.renewDeadlineS} s)`);
    assert.ok(takeoverMs >= TIMING.leaseDurationS * 1000, `took over ${takeoverMs} ms after the last renewal, before the ${TIMING.leaseDurationS} s lease expired`);
    assert.ok(lost.at < taken.at, 'stepped down before the other took over');
    assert.equal(sampler.most, 1, 'never two leaders');
    assert.equal(cutOff.isLeader, false);

    const lease = await getLease('partition');
    assert.equal(lease.spec.holderIdentity, other.identity);
    assert.equal(lease.spec.leaseTransitions, 1);
    process.stderr.write(`[controller-runtime] leader election: after its last renewal, the cut-off leader stepped down at +${stepDownMs} ms and the other took over at +${takeoverMs} ms\n`);
  });

  /** Polls a Lease (directly, not through the proxy) for the latest renewTime written by `holder`. */
  function watchRenewals(lease, holder) {
    const renewals = { last: 0 };
    let polling = true;
    const done = (async () => {
      while (polling) {
        const spec = (await getLease(lease).catch(() => ({}))).spec;
        if (spec?.holderIdentity === holder) renewals.last = Math.max(renewals.last, Date.parse(spec.renewTime));
        await sleep(100);
      }
    })();
    renewals.stop = () => {
      polling = false;
      return done;
    };
    return renewals;
  }
});

/** The API server's own count of namespaced LIST requests for a resource (apiserver_request_total). */
async function namespacedListCount(resource) {
  let total = 0;
  for (const line of (await apiServerMetrics(cp)).split('\n')) {
    if (!line.startsWith('apiserver_request_total{')) continue;
    if (line.includes(`resource="${resource}"`) && line.includes('verb="LIST"') && line.includes('scope="namespace"')) total += Number(line.split(' ').at(-1));
  }
  return total;
}
