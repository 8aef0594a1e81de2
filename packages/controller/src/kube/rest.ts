/**
 * A small typed REST client over the API server's paths. @kubernetes/client-node supplies the
 * KubeConfig (kubeconfig files, in-cluster service-account credentials, exec plugins) and the
 * TLS and auth options of each request; requests are plain JSON by path over node:http(s) so every
 * verb the controller uses (server-side apply, merge patches of the status subresource,
 * preconditioned deletes, watches) is one explicit call.
 */
import http, { type IncomingMessage } from 'node:http';
import https from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

export interface KubeList<T> {
  metadata: { resourceVersion: string; continue?: string };
  items: T[];
}

/** A resource type: where its objects live. */
export interface ResourceType {
  /** '' for the core group. */
  group: string;
  version: string;
  plural: string;
  kind: string;
}

export const RESOURCES = {
  pods: { group: '', version: 'v1', plural: 'pods', kind: 'Pod' },
  services: { group: '', version: 'v1', plural: 'services', kind: 'Service' },
  configMaps: { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap' },
  secrets: { group: '', version: 'v1', plural: 'secrets', kind: 'Secret' },
  events: { group: '', version: 'v1', plural: 'events', kind: 'Event' },
  leases: { group: 'coordination.k8s.io', version: 'v1', plural: 'leases', kind: 'Lease' },
} as const satisfies Record<string, ResourceType>;

/** An error answer from the API server, with its HTTP code and Status reason. */
export class ApiError extends Error {
  override readonly name = 'ApiError';
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly verb: string,
    readonly resource: string,
  ) {
    super(message);
  }
}

export const isNotFound = (err: unknown): boolean => err instanceof ApiError && err.code === 404;
export const isConflict = (err: unknown): boolean => err instanceof ApiError && err.code === 409 && err.reason === 'Conflict';
export const isAlreadyExists = (err: unknown): boolean => err instanceof ApiError && err.code === 409 && err.reason === 'AlreadyExists';

/** Builds `/api/v1/namespaces/ns/pods/name/status`-style paths. */
export function resourcePath(type: ResourceType, namespace?: string, name?: string, subresource?: string): string {
  const base = type.group ? `/apis/${type.group}/${type.version}` : `/api/${type.version}`;
  let path = base;
  if (namespace) path += `/namespaces/${encodeURIComponent(namespace)}`;
  path += `/${type.plural}`;
  if (name) path += `/${encodeURIComponent(name)}`;
  if (subresource) path += `/${subresource}`;
  return path;
}

export type PatchType = 'merge' | 'apply' | 'json';
const PATCH_CONTENT_TYPE: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  apply: 'application/apply-patch+yaml',
  json: 'application/json-patch+json',
};

/** Called after every failed request (the controller counts them in a metric). */
export type ErrorObserver = (verb: string, resource: string, err: ApiError) => void;

export class KubeRest {
  private readonly server: string;

  constructor(
    readonly config: KubeConfig,
    private readonly onError: ErrorObserver = () => {},
    private readonly timeoutMs = 30_000,
  ) {
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.server = cluster.server.replace(/\/$/, '');
  }

  async get<T>(type: ResourceType, namespace: string | undefined, name: string): Promise<T> {
    return this.request<T>('get', type, resourcePath(type, namespace, name));
  }

  /** Lists every page (500 objects a page unless `query.limit` says otherwise). */
  async list<T>(type: ResourceType, namespace?: string, query: Record<string, string> = {}): Promise<KubeList<T>> {
    const items: T[] = [];
    let continueToken: string | undefined;
    let resourceVersion = '';
    do {
      const q = new URLSearchParams({ limit: '500', ...query, ...(continueToken ? { continue: continueToken } : {}) });
      const page = await this.request<KubeList<T>>('list', type, `${resourcePath(type, namespace)}?${q}`);
      items.push(...page.items);
      continueToken = page.metadata.continue || undefined;
      resourceVersion = page.metadata.resourceVersion;
    } while (continueToken);
    return { metadata: { resourceVersion }, items };
  }

  async create<T>(type: ResourceType, namespace: string, body: unknown): Promise<T> {
    return this.request<T>('create', type, resourcePath(type, namespace), { method: 'POST', body });
  }

  async replace<T>(type: ResourceType, namespace: string, name: string, body: unknown, subresource?: string): Promise<T> {
    return this.request<T>(subresource ? `update/${subresource}` : 'update', type, resourcePath(type, namespace, name, subresource), { method: 'PUT', body });
  }

  /** Server-side apply (`fieldManager` owns the fields it sends) or a merge/JSON patch. */
  async patch<T>(type: ResourceType, namespace: string, name: string, body: unknown, patchType: PatchType, options: { fieldManager?: string; subresource?: string } = {}): Promise<T> {
    const q = new URLSearchParams();
    if (options.fieldManager) q.set('fieldManager', options.fieldManager);
    if (patchType === 'apply') q.set('force', 'true');
    const path = `${resourcePath(type, namespace, name, options.subresource)}${q.size ? `?${q}` : ''}`;
    return this.request<T>(options.subresource ? `patch/${options.subresource}` : 'patch', type, path, { method: 'PATCH', body, contentType: PATCH_CONTENT_TYPE[patchType] });
  }

  /** Deletes with background propagation; a uid precondition never deletes a newer namesake. */
  async delete(type: ResourceType, namespace: string, name: string, options: { uid?: string; gracePeriodSeconds?: number } = {}): Promise<void> {
    const body = {
      apiVersion: 'v1',
      kind: 'DeleteOptions',
      propagationPolicy: 'Background',
      ...(options.uid ? { preconditions: { uid: options.uid } } : {}),
      ...(options.gracePeriodSeconds !== undefined ? { gracePeriodSeconds: options.gracePeriodSeconds } : {}),
    };
    await this.request('delete', type, resourcePath(type, namespace, name), { method: 'DELETE', body });
  }

  /**
   * Opens a watch (`?watch=true`) and returns the response, a stream of JSON lines. Aborting
   * `signal` destroys the request at any point (also while the server has not answered yet).
   */
  async openWatch(type: ResourceType, namespace: string | undefined, query: Record<string, string | number | boolean>, signal: AbortSignal): Promise<IncomingMessage> {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries({ ...query, watch: true })) q.set(k, String(v));
    const path = `${resourcePath(type, namespace)}?${q}`;
    const fail = (code: number, reason: string, message: string) => new ApiError(code, reason, `watch ${path}: ${message}`, 'watch', type.plural);
    let res: IncomingMessage;
    try {
      res = await this.send(path, { method: 'GET', signal });
    } catch (err) {
      throw fail(0, signal.aborted ? 'Aborted' : 'NetworkError', (err as Error).message);
    }
    if (res.statusCode === 200) return res;
    const status = parseStatus(await readText(res).catch(() => ''));
    throw fail(res.statusCode ?? 0, status.reason ?? res.statusMessage ?? 'Error', `${res.statusCode} ${status.message ?? res.statusMessage}`);
  }

  private async request<T>(verb: string, type: ResourceType, path: string, init: { method?: string; body?: unknown; contentType?: string } = {}): Promise<T> {
    const failed = (code: number, reason: string, message: string): ApiError => {
      const error = new ApiError(code, reason, `${verb} ${path}: ${message}`, verb, type.plural);
      this.onError(verb, type.plural, error);
      return error;
    };
    let res: IncomingMessage;
    let text: string;
    try {
      res = await this.send(path, {
        method: init.method ?? 'GET',
        timeoutMs: this.timeoutMs,
        ...(init.body !== undefined ? { body: JSON.stringify(init.body), contentType: init.contentType ?? 'application/json' } : {}),
      });
      text = await readText(res);
    } catch (err) {
      throw failed(0, 'NetworkError', (err as Error).message);
    }
    const code = res.statusCode ?? 0;
    if (code < 200 || code > 299) {
      const status = parseStatus(text);
      throw failed(code, status.reason ?? res.statusMessage ?? 'Error', `${code} ${status.message ?? res.statusMessage}`);
    }
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /**
   * One request to the API server with the KubeConfig's credentials; resolves once the response
   * headers are in. Every error the request or response can raise has a listener.
   */
  private async send(path: string, init: { method: string; body?: string; contentType?: string; timeoutMs?: number; signal?: AbortSignal }): Promise<IncomingMessage> {
    const url = new URL(`${this.server}${path}`);
    const headers: Record<string, string | number> = { accept: 'application/json' };
    if (init.body !== undefined) {
      headers['content-type'] = init.contentType ?? 'application/json';
      headers['content-length'] = Buffer.byteLength(init.body);
    }
    const options: https.RequestOptions = { method: init.method, headers };
    await this.config.applyToHTTPSOptions(options);
    return new Promise((resolve, reject) => {
      const req = (url.protocol === 'https:' ? https : http).request(url, options, (res) => {
        res.on('error', () => {}); // the reader adds its own; a late error must never go unhandled
        resolve(res);
      });
      req.on('error', reject);
      const { timeoutMs, signal } = init;
      // An idle socket for this long (no answer, or a body that stopped) ends the request.
      if (timeoutMs) req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer for ${timeoutMs} ms`)));
      if (signal?.aborted) req.destroy(new Error('aborted'));
      else signal?.addEventListener('abort', () => req.destroy(new Error('aborted')), { once: true });
      req.end(init.body);
    });
  }
}

/** The whole body of a response as text. */
function readText(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    res.setEncoding('utf8');
    res.on('data', (d: string) => (text += d));
    res.on('end', () => resolve(text));
    res.on('error', reject);
    res.on('aborted', () => reject(new Error('the response was cut off')));
  });
}

/** The reason and message of an error answer: a metav1.Status, or the start of whatever else came. */
function parseStatus(text: string): { reason?: string; message?: string } {
  try {
    return JSON.parse(text) as { reason?: string; message?: string };
  } catch {
    return { message: text.slice(0, 500) };
  }
}
