// Shared pieces of the controller-runtime tests: polling, a tiny custom resource, and
// clients of the controller's own Kubernetes runtime (@finetune/controller).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { get } from 'node:https';
import { KubeRest, loadKubeConfig } from '@finetune/controller';
import { runKubectl } from '../control-plane/harness.mjs';

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

import { waitFor } from '../control-plane/harness.mjs';

export { waitFor };

/** kubectl against the control plane; throws with its stderr when it fails. */
export async function kubectl(cp, args, input) {
  const r = await runKubectl(cp, args, { input });
  if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
  return r.stdout;
}

/** name → resourceVersion of what kubectl sees: the truth a cache must converge to. */
export async function kubectlVersions(cp, resource, namespace, selector) {
  const args = ['get', resource, '-n', namespace, '-o', 'json', ...(selector ? ['-l', selector] : [])];
  const list = JSON.parse(await kubectl(cp, args));
  return Object.fromEntries(list.items.map((o) => [o.metadata.name, o.metadata.resourceVersion]));
}

/** name → resourceVersion of a reflector's store. */
export const storeVersions = (reflector) => Object.fromEntries(reflector.list().map((o) => [o.metadata.name, o.metadata.resourceVersion]));

/** Waits until the reflector's store equals kubectl's view; returns how long that took. */
export async function waitConverged(cp, reflector, resource, namespace, { selector, timeoutMs = 20_000 } = {}) {
  const started = Date.now();
  let want;
  await waitFor(
    `the ${resource} cache to equal kubectl get`,
    async () => {
      want = await kubectlVersions(cp, resource, namespace, selector);
      return JSON.stringify(sortKeys(storeVersions(reflector))) === JSON.stringify(sortKeys(want));
    },
    { timeoutMs, intervalMs: 200 },
  ).catch((err) => {
    assert.deepEqual(storeVersions(reflector), want, err.message);
  });
  return Date.now() - started;
}
const sortKeys = (o) => Object.fromEntries(Object.entries(o).sort(([a], [b]) => a.localeCompare(b)));

/**
 * A custom resource with a status subresource. Watches of a custom resource are served by a
 * watch cache that starts when its CRD does, so versions from before that are answered with
 * `410 Gone` (core types' caches start with the API server and still hold its whole history).
 */
export const WIDGETS = { group: 'runtime.finetune.test', version: 'v1', plural: 'widgets', kind: 'Widget' };
const WIDGET_CRD = `
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: { name: widgets.runtime.finetune.test }
spec:
  group: runtime.finetune.test
  names: { kind: Widget, plural: widgets, singular: widget, listKind: WidgetList }
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    subresources: { status: {} }
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: { type: object, x-kubernetes-preserve-unknown-fields: true }
          status: { type: object, x-kubernetes-preserve-unknown-fields: true }
`;

/** Installs the Widget CRD and waits until its objects can be listed (a new CRD answers 429 for a moment). */
export async function installWidgets(cp, rest) {
  await kubectl(cp, ['apply', '-f', '-'], WIDGET_CRD);
  await kubectl(cp, ['wait', '--for=condition=Established', '--timeout=60s', 'crd/widgets.runtime.finetune.test']);
  await waitFor('widgets to be listable', () => rest.list(WIDGETS, 'default').then(() => true));
}

export const widget = (namespace, name, spec = {}) => ({ apiVersion: 'runtime.finetune.test/v1', kind: 'Widget', metadata: { name, namespace }, spec });

export async function createNamespace(rest, name) {
  await rest.create({ group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace' }, undefined, { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  return name;
}

/** A KubeRest + KubeConfig on a kubeconfig file (e.g. one redirected through a fault proxy). */
export function clientsFor(kubeconfigPath, { onError, timeoutMs } = {}) {
  const config = loadKubeConfig(kubeconfigPath);
  return { config, rest: new KubeRest(config, onError, timeoutMs) };
}

/** The API server's Prometheus metrics text (over 1 MB: too much for kubectl's output buffer here). */
export function apiServerMetrics(cp) {
  return new Promise((resolve, reject) => {
    const request = get(`${cp.server}/metrics`, { ca: readFileSync(cp.caFile), headers: { authorization: `Bearer ${cp.adminToken}` } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => (text += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`GET /metrics: ${res.statusCode} ${text.slice(0, 200)}`))));
    });
    request.on('error', reject);
  });
}
