export { planWorkers, loopbackNetwork, ENV, type WorkerSpec, type NetworkPlan } from './plan/workers.js';
