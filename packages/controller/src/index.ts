export { planWorkers, planRing, loopbackNetwork, ENV, WORKER_NODE_ARGS, type WorkerSpec, type NetworkPlan } from './plan/workers.js';
export {
  desiredObjects,
  objectNames,
  jobSelector,
  headlessServiceNetwork,
  jobFileText,
  DEFAULT_WORKER_PORT,
  DEFAULT_WORKER_METRICS_PORT,
  JOB_SPEC_PATH,
  TOKEN_KEY,
  LABELS,
  type ClusterFineTuneJob,
  type ObjectPlanOptions,
  type ObjectPlan,
  type Pod,
  type Service,
  type ConfigMap,
  type Secret,
  type Container,
  type EnvVar,
  type Volume,
  type VolumeMount,
  type Toleration,
  type ResourceRequirements,
  type OwnerReference,
  type ObjectMetadata,
} from './plan/objects.js';
export { runLocalWorkers, type LocalRunOptions, type LocalRunResult } from './local/runner.js';
export { freePorts } from './local/ports.js';
export { FineTuneJobController, JOBS, type ControllerOptions } from './operator/controller.js';
export { ControllerMetrics } from './operator/metrics.js';
export { serveMetrics, serveHealth } from './operator/http.js';
export { loadKubeConfig } from './kube/config.js';
export { decide, type Decision, type Observed, type Action } from './reconcile/decide.js';
export { Reflector, objectKey, type ReflectorOptions, type ChangeType } from './kube/reflector.js';
export { KubeRest, ApiError, RESOURCES, resourcePath, isNotFound, isConflict, isAlreadyExists, type KubeObject, type ResourceType } from './kube/rest.js';
export { LeaderElector, type LeaderElectionOptions } from './kube/leader.js';
export { WorkQueue } from './runtime/work-queue.js';
