/**
 * The cluster plan: a FineTuneJob → the Kubernetes objects that run it. A pure function (no I/O,
 * no clock, no randomness: the token is an input), so a reconciler can server-side apply its
 * result on every pass and tests can compare it exactly.
 *
 * - a headless Service `<job>-workers` (clusterIP None, publishNotReadyAddresses) that gives
 *   every worker pod a stable DNS name `<job>-worker-<rank>.<job>-workers.<ns>.svc`;
 * - a ConfigMap `<job>-spec` with the job as `job.yaml` (JSON, which is YAML), mounted read-only
 *   at /etc/finetune; the container runs `ftjob worker /etc/finetune/job.yaml`;
 * - a Secret `<job>-token` with the ring's shared token, only when the caller passes a token
 *   (i.e. wants it created); every pod reads FT_TOKEN from it with a secretKeyRef;
 * - one Pod per rank, `<job>-worker-<rank>`, restartPolicy Never, with the same rendezvous
 *   environment as the local runner (planRing).
 *
 * Every object is owned by the FineTuneJob (controller, blockOwnerDeletion), so deleting the job
 * deletes them. Image, pull policy, scheduling and extra volumes are options for now; they will
 * move into the FineTuneJob spec.
 */
import { API_GROUP, API_VERSION, KIND, type FineTuneJob } from '@finetune/api';
import { planRing, ENV, type NetworkPlan } from './workers.js';

/** The collective port when the caller names none (the conventional torch.distributed port). */
export const DEFAULT_WORKER_PORT = 29500;
/** Where the ConfigMap is mounted, and the job file the worker reads. */
export const JOB_SPEC_DIR = '/etc/finetune';
export const JOB_SPEC_KEY = 'job.yaml';
export const JOB_SPEC_PATH = `${JOB_SPEC_DIR}/${JOB_SPEC_KEY}`;
/** The Secret key holding the token. */
export const TOKEN_KEY = 'token';
/** The worker refuses shorter tokens (MIN_TOKEN_LENGTH in @finetune/worker's transport config). */
export const MIN_TOKEN_LENGTH = 16;

export const LABELS = {
  name: 'app.kubernetes.io/name',
  managedBy: 'app.kubernetes.io/managed-by',
  jobName: `${API_GROUP}/job-name`,
  rank: `${API_GROUP}/rank`,
} as const;
export const WORKER_APP_NAME = 'finetune-worker';
export const MANAGER_NAME = 'finetune-operator';
const CONTAINER_NAME = 'worker';
const PORT_NAME = 'collective';
const METRICS_PORT_NAME = 'metrics';
/** Where workers serve Prometheus metrics in a cluster (the PodMonitor scrapes port `metrics`). */
export const DEFAULT_WORKER_METRICS_PORT = 9464;
const SPEC_VOLUME = 'job-spec';

// ---- small local shapes of the Kubernetes objects we produce (a subset of the core/v1 API) ----

export interface OwnerReference {
  apiVersion: string;
  kind: string;
  name: string;
  uid: string;
  controller: boolean;
  blockOwnerDeletion: boolean;
}

export interface ObjectMetadata {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences: OwnerReference[];
}

export type Quantity = string | number;
export interface ResourceRequirements {
  requests?: Record<string, Quantity>;
  limits?: Record<string, Quantity>;
}

export interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } };
}

export interface VolumeMount {
  name: string;
  mountPath: string;
  readOnly?: boolean;
  subPath?: string;
}

/** A pod volume: `name` plus one source (configMap, persistentVolumeClaim, emptyDir, …). */
export interface Volume {
  name: string;
  configMap?: { name: string; items?: { key: string; path: string }[] };
  [source: string]: unknown;
}

export interface Toleration {
  key?: string;
  operator?: 'Exists' | 'Equal';
  value?: string;
  effect?: 'NoSchedule' | 'PreferNoSchedule' | 'NoExecute';
  tolerationSeconds?: number;
}

export interface Container {
  name: string;
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  command: string[];
  ports: { name: string; containerPort: number; protocol: 'TCP' }[];
  env: EnvVar[];
  resources: ResourceRequirements;
  volumeMounts: VolumeMount[];
  readinessProbe?: { tcpSocket: { port: string | number }; periodSeconds: number; failureThreshold: number };
  terminationMessagePath: string;
  terminationMessagePolicy: 'File' | 'FallbackToLogsOnError';
}

export interface Pod {
  apiVersion: 'v1';
  kind: 'Pod';
  metadata: ObjectMetadata;
  spec: {
    hostname: string;
    subdomain: string;
    restartPolicy: 'Never';
    enableServiceLinks: false;
    containers: Container[];
    volumes: Volume[];
    serviceAccountName?: string;
    nodeSelector?: Record<string, string>;
    tolerations?: Toleration[];
    runtimeClassName?: string;
  };
}

export interface Service {
  apiVersion: 'v1';
  kind: 'Service';
  metadata: ObjectMetadata;
  spec: {
    clusterIP: 'None';
    publishNotReadyAddresses: true;
    selector: Record<string, string>;
    ports: { name: string; port: number; targetPort: number; protocol: 'TCP' }[];
  };
}

export interface ConfigMap {
  apiVersion: 'v1';
  kind: 'ConfigMap';
  metadata: ObjectMetadata;
  data: Record<string, string>;
}

export interface Secret {
  apiVersion: 'v1';
  kind: 'Secret';
  metadata: ObjectMetadata;
  type: 'Opaque';
  stringData: Record<string, string>;
}

/** A FineTuneJob as read from the API server: namespaced, with a uid to own objects by. */
export type ClusterFineTuneJob = FineTuneJob & { metadata: { name: string; namespace: string; uid: string } };

export interface ObjectPlanOptions {
  /** The worker image (it must have `ftjob` on its PATH). Will move into the spec. */
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  /** The collective port every worker listens on (default 29500). */
  workerPort?: number;
  /**
   * The ring's token. When given, the plan includes the Secret holding it: pass it only when the
   * Secret must be created (first reconcile), so a later apply never replaces a live token.
   */
  token?: string;
  /** The Secret FT_TOKEN is read from (default `<job>-token`); key `token`. */
  tokenSecretName?: string;
  serviceAccountName?: string;
  nodeSelector?: Record<string, string>;
  tolerations?: Toleration[];
  runtimeClassName?: string;
  /** Extra pod volumes and their mounts in the worker container (e.g. the output folder). */
  volumes?: Volume[];
  volumeMounts?: VolumeMount[];
  /** Add a tcpSocket readiness probe on the collective port (default true). */
  readinessProbe?: boolean;
  /** Serve worker metrics on this port (FT_METRICS_PORT, container port `metrics`). */
  metricsPort?: number;
  /** Workers continue from the latest checkpoint when there is one (a restarted or resumed gang). */
  resume?: boolean;
  /** Extra pod annotations (e.g. the spec hash the reconciler compares). */
  podAnnotations?: Record<string, string>;
}

export interface ObjectPlan {
  service: Service;
  /** Present only when `options.token` was given. */
  secret?: Secret;
  configMap: ConfigMap;
  /** One per rank, in rank order. */
  pods: Pod[];
}

/** The names the plan uses; a reconciler looks objects up with the same function. */
export function objectNames(jobName: string, replicas: number) {
  const service = `${jobName}-workers`;
  return {
    service,
    configMap: `${jobName}-spec`,
    tokenSecret: `${jobName}-token`,
    pods: Array.from({ length: replicas }, (_, rank) => `${jobName}-worker-${rank}`),
  };
}

/** The labels every object of the job carries; the Service selects pods by them. */
export function jobSelector(jobName: string): Record<string, string> {
  return { [LABELS.name]: WORKER_APP_NAME, [LABELS.jobName]: jobName };
}

/** Per-rank DNS names behind the headless Service: `<pod>.<service>.<ns>.svc:<port>`. */
export function headlessServiceNetwork(jobName: string, namespace: string, port: number): NetworkPlan {
  const service = objectNames(jobName, 0).service;
  return {
    addressOf: (rank) => `${jobName}-worker-${rank}.${service}.${namespace}.svc:${port}`,
    portOf: () => port,
  };
}

/** The job file the workers read: the job's identity and spec, nothing the API server added. */
export function jobFileText(job: FineTuneJob): string {
  const doc = {
    apiVersion: job.apiVersion,
    kind: job.kind,
    metadata: { name: job.metadata.name, ...(job.metadata.namespace ? { namespace: job.metadata.namespace } : {}) },
    spec: job.spec,
  };
  return `${JSON.stringify(doc, null, 2)}\n`;
}

/** Kubernetes' default terminationMessagePath, named so the worker is told it. */
const TERMINATION_MESSAGE_PATH = '/dev/termination-log';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS_1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;

/** The Kubernetes objects that run `job`. Throws when the job's names cannot make valid objects. */
export function desiredObjects(job: ClusterFineTuneJob, options: ObjectPlanOptions): ObjectPlan {
  const { name, namespace, uid } = job.metadata;
  const replicas = job.spec.workers.replicas;
  const port = options.workerPort ?? DEFAULT_WORKER_PORT;
  check(Number.isInteger(port) && port >= 1 && port <= 65535, `workerPort must be an integer in 1..65535, got ${port}`);
  check(typeof uid === 'string' && uid.length > 0, `FineTuneJob ${namespace}/${name} has no metadata.uid to own its objects by`);
  check(options.image.length > 0, 'options.image must not be empty');
  check(Number.isInteger(replicas) && replicas >= 1, `spec.workers.replicas must be a positive integer, got ${replicas}`);
  const names = objectNames(name, replicas);
  check(DNS_1035_LABEL.test(names.service) && names.service.length <= 63, `job name '${name}' cannot name its Service '${names.service}' (a DNS-1035 label: starts with a letter, at most 63 characters)`);
  const lastPod = names.pods[replicas - 1]!;
  check(DNS_LABEL.test(lastPod) && lastPod.length <= 63, `job name '${name}' is too long for the pod hostname '${lastPod}' (at most 63 characters)`);
  if (options.token !== undefined) {
    check(options.token.length >= MIN_TOKEN_LENGTH, `the token must have at least ${MIN_TOKEN_LENGTH} characters`);
  }
  const secretName = options.tokenSecretName ?? names.tokenSecret;
  const extraVolumes = options.volumes ?? [];
  for (const v of extraVolumes) check(v.name !== SPEC_VOLUME, `volume name '${SPEC_VOLUME}' is reserved for the job spec`);
  for (const m of options.volumeMounts ?? []) check(m.mountPath !== JOB_SPEC_DIR, `mount path ${JOB_SPEC_DIR} is reserved for the job spec`);

  const selector = jobSelector(name);
  const meta = (objectName: string, extraLabels: Record<string, string> = {}): ObjectMetadata => ({
    name: objectName,
    namespace,
    labels: { ...selector, [LABELS.managedBy]: MANAGER_NAME, ...extraLabels },
    ownerReferences: [{ apiVersion: `${API_GROUP}/${API_VERSION}`, kind: KIND, name, uid, controller: true, blockOwnerDeletion: true }],
  });

  const service: Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: meta(names.service),
    spec: {
      clusterIP: 'None',
      publishNotReadyAddresses: true,
      selector: { ...selector },
      ports: [{ name: PORT_NAME, port, targetPort: port, protocol: 'TCP' }],
    },
  };

  const configMap: ConfigMap = {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: meta(names.configMap),
    data: { [JOB_SPEC_KEY]: jobFileText(job) },
  };

  const secret: Secret | undefined =
    options.token === undefined
      ? undefined
      : { apiVersion: 'v1', kind: 'Secret', metadata: meta(secretName), type: 'Opaque', stringData: { [TOKEN_KEY]: options.token } };

  const resources = workerResources(job.spec.workers.resources, job.spec.workers.gpusPerWorker);
  const ring = planRing(`${namespace}/${name}`, replicas, headlessServiceNetwork(name, namespace, port), '');
  const pods = ring.map((worker): Pod => {
    const podName = names.pods[worker.rank]!;
    const env: EnvVar[] = Object.entries(worker.env)
      .filter(([key]) => key !== ENV.token)
      .map(([key, value]) => ({ name: key, value }));
    env.push({ name: ENV.token, valueFrom: { secretKeyRef: { name: secretName, key: TOKEN_KEY } } });
    // Listen on the pod's own address (where its peers' DNS names point), not on every interface.
    env.push({ name: 'FT_BIND_HOST', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } });
    if (options.metricsPort !== undefined) env.push({ name: 'FT_METRICS_PORT', value: String(options.metricsPort) });
    // The worker writes why it failed there; the controller reads it back from the pod status.
    env.push({ name: 'FT_TERMINATION_LOG', value: TERMINATION_MESSAGE_PATH });
    const container: Container = {
      name: CONTAINER_NAME,
      image: options.image,
      ...(options.imagePullPolicy ? { imagePullPolicy: options.imagePullPolicy } : {}),
      // `ftjob worker` with the V8 options of WORKER_NODE_ARGS (see packages/cli/bin/ftjob-worker.js).
      command: ['ftjob-worker', JOB_SPEC_PATH, ...(options.resume ? ['--resume-if-present'] : [])],
      ports: [
        { name: PORT_NAME, containerPort: port, protocol: 'TCP' },
        ...(options.metricsPort !== undefined ? [{ name: METRICS_PORT_NAME, containerPort: options.metricsPort, protocol: 'TCP' as const }] : []),
      ],
      env,
      resources: structuredClone(resources),
      volumeMounts: [{ name: SPEC_VOLUME, mountPath: JOB_SPEC_DIR, readOnly: true }, ...structuredClone(options.volumeMounts ?? [])],
      ...(options.readinessProbe === false ? {} : { readinessProbe: { tcpSocket: { port: PORT_NAME }, periodSeconds: 5, failureThreshold: 3 } }),
      terminationMessagePath: TERMINATION_MESSAGE_PATH,
      // A crash that wrote nothing still leaves its last log lines in the pod status.
      terminationMessagePolicy: 'FallbackToLogsOnError',
    };
    return {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { ...meta(podName, { [LABELS.rank]: String(worker.rank) }), ...(options.podAnnotations ? { annotations: { ...options.podAnnotations } } : {}) },
      spec: {
        hostname: podName,
        subdomain: names.service,
        restartPolicy: 'Never',
        enableServiceLinks: false,
        containers: [container],
        volumes: [
          { name: SPEC_VOLUME, configMap: { name: names.configMap, items: [{ key: JOB_SPEC_KEY, path: JOB_SPEC_KEY }] } },
          ...structuredClone(extraVolumes),
        ],
        ...(options.serviceAccountName ? { serviceAccountName: options.serviceAccountName } : {}),
        ...(options.nodeSelector ? { nodeSelector: { ...options.nodeSelector } } : {}),
        ...(options.tolerations ? { tolerations: structuredClone(options.tolerations) } : {}),
        ...(options.runtimeClassName ? { runtimeClassName: options.runtimeClassName } : {}),
      },
    };
  });

  return { service, ...(secret ? { secret } : {}), configMap, pods };
}

/** spec.workers.resources, plus `nvidia.com/gpu` limits (and requests, if set) when GPUs are asked for. */
function workerResources(resources: ResourceRequirements | undefined, gpus: number): ResourceRequirements {
  const out: ResourceRequirements = {};
  if (resources?.requests) out.requests = { ...resources.requests };
  if (resources?.limits) out.limits = { ...resources.limits };
  if (gpus > 0) {
    out.limits = { ...out.limits, 'nvidia.com/gpu': String(gpus) };
    // An extended resource's request must equal its limit: keep a stated request consistent.
    if (out.requests && 'nvidia.com/gpu' in out.requests) out.requests['nvidia.com/gpu'] = String(gpus);
  }
  return out;
}

function check(ok: boolean, message: string): asserts ok {
  if (!ok) throw new Error(`cannot plan the worker objects: ${message}`);
}
