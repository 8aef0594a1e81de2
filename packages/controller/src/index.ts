export { planWorkers, planRing, loopbackNetwork, ENV, type WorkerSpec, type NetworkPlan } from './plan/workers.js';
export { runLocalWorkers, type LocalRunOptions, type LocalRunResult } from './local/runner.js';
export { freePorts } from './local/ports.js';
