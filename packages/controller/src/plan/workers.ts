/**
 * The plan: a FineTuneJob → one worker spec per rank. A pure function, shared by the local
 * runner (processes on loopback) and, later, the controller (pods behind a headless Service), so
 * both start workers with the same rendezvous environment.
 */
import type { FineTuneJob } from '@finetune/api';

/** Environment variables every worker reads (see the worker's ringConfigFromEnv). */
export const ENV = {
  rank: 'FT_RANK',
  worldSize: 'FT_WORLD_SIZE',
  peers: 'FT_PEERS',
  port: 'FT_PORT',
  jobId: 'FT_JOB_ID',
  token: 'FT_TOKEN',
} as const;

export interface WorkerSpec {
  rank: number;
  worldSize: number;
  /** host:port this worker's collective server listens on (what its peers dial). */
  address: string;
  env: Record<string, string>;
}

export interface NetworkPlan {
  /** The address peers use to reach rank `rank`. */
  addressOf(rank: number): string;
  /** The port rank `rank` listens on. */
  portOf(rank: number): number;
}

/** Loopback addresses on consecutive ports from `basePort`: the local runner's network. */
export function loopbackNetwork(basePort: number): NetworkPlan {
  return { addressOf: (r) => `127.0.0.1:${basePort + r}`, portOf: (r) => basePort + r };
}

export function planWorkers(job: FineTuneJob, network: NetworkPlan, token: string, replicasOverride?: number): WorkerSpec[] {
  const jobId = `${job.metadata.namespace ?? 'local'}/${job.metadata.name}`;
  return planRing(jobId, replicasOverride ?? job.spec.workers.replicas, network, token);
}

/**
 * Node.js options for the worker processes this project starts itself (the local runner and
 * `ftjob bench allreduce`). A worker's own JavaScript heap is small (~10 MB) while the collective
 * makes Node allocate an ArrayBuffer per socket read (64 KiB, ~16 000 per GB received); V8 then
 * keeps the old generation's limit so close to its size that a major GC (concurrent marking on
 * every helper thread) starts again as soon as one ends: measured 64 mark-compacts in 44
 * all-reduces of 64 MiB, helper threads at ~50 % of the main thread's CPU, and the all-reduce at
 * 0.39-0.42 GB/s instead of 0.64-0.89 GB/s (packages/worker/src/collective/transport/README.md).
 * Raising the initial old-generation size lifts that floor. It is a V8 option Node refuses in
 * NODE_OPTIONS, so it goes on the command line: the local runner and the benchmarks pass it to
 * node, and worker pods run `ftjob-worker`, whose shebang line carries the same options (a test
 * keeps the two equal).
 */
export const WORKER_NODE_ARGS: readonly string[] = ['--initial-old-space-size=64'];

/** The rendezvous environment of a ring of `worldSize` workers (jobs and benchmarks alike). */
export function planRing(jobId: string, worldSize: number, network: NetworkPlan, token: string): WorkerSpec[] {
  const peers = Array.from({ length: worldSize }, (_, r) => network.addressOf(r)).join(',');
  return Array.from({ length: worldSize }, (_, rank) => ({
    rank,
    worldSize,
    address: network.addressOf(rank),
    env: {
      [ENV.rank]: String(rank),
      [ENV.worldSize]: String(worldSize),
      [ENV.peers]: peers,
      [ENV.port]: String(network.portOf(rank)),
      [ENV.jobId]: jobId,
      [ENV.token]: token,
    },
  }));
}
