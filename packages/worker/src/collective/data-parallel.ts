/**
 * Joins a worker to its ring (collective server + links to its neighbours) and exposes what the
 * training loop needs: averaging and summing tensors across ranks, plus a Status the controller
 * can read. The ring algorithm (ring.ts) runs over the gRPC link (transport/).
 */
import { Phase } from '@finetune/proto';
import { allReduceMany } from './ring.js';
import { connectRing, startCollectiveServer, type CollectiveServer, type GrpcRingLink } from './transport/grpc.js';
import { loadTls, type RingEnvConfig } from './transport/config.js';
import type { RingLink } from './link.js';
import type { DataParallel } from '../train/trainer.js';
import type { ProgressSink } from '../train/progress.js';

export interface Ring {
  parallel: DataParallel;
  server: CollectiveServer;
  link: GrpcRingLink;
  close(): Promise<void>;
}

export async function joinRing(config: RingEnvConfig, log: (line: string) => void = (l) => process.stderr.write(l + '\n')): Promise<Ring> {
  const tls = config.tlsFiles ? loadTls(config.tlsFiles) : undefined;
  const server = await startCollectiveServer({
    port: config.port,
    host: config.host,
    token: config.token,
    jobId: config.jobId,
    rank: config.rank,
    worldSize: config.worldSize,
    log,
    ...(tls ? { tls } : {}),
  });
  server.setStatus({ phase: Phase.PHASE_STARTING, message: 'waiting for peers' });
  let link: GrpcRingLink;
  try {
    link = await connectRing({
      server,
      rank: config.rank,
      worldSize: config.worldSize,
      peers: config.peers,
      token: config.token,
      jobId: config.jobId,
      timeoutMs: config.timeoutMs,
      connectDeadlineMs: config.connectDeadlineMs,
      ...(tls ? { tls } : {}),
    });
  } catch (err) {
    await server.close();
    throw err;
  }
  return {
    parallel: dataParallelOver(link),
    server,
    link,
    close: async () => {
      await link.close();
      await server.close();
    },
  };
}

/** What the training loop needs from a ring (any RingLink: gRPC here, in memory in tests). */
export function dataParallelOver(link: RingLink): DataParallel {
  return {
    rank: link.rank,
    worldSize: link.worldSize,
    allReduceMean: (tensors, wire = 'f32') => allReduceMany(tensors, link, { op: 'avg', wire }),
    allReduceSum: (tensors) => allReduceMany(tensors, link, { op: 'sum' }),
  };
}

/** A progress sink that mirrors training progress into the worker's Status RPC. */
export function statusSink(server: CollectiveServer, inner: ProgressSink): ProgressSink {
  return {
    start(info) {
      server.setStatus({ phase: Phase.PHASE_TRAINING, step: info.startStep, totalSteps: info.totalSteps, message: `training ${info.totalSteps} steps` });
      inner.start(info);
    },
    step(point) {
      server.setStatus({ phase: Phase.PHASE_TRAINING, step: point.step, epoch: point.epoch, lastLoss: point.loss });
      inner.step(point);
    },
    evaluation(point, improved) {
      server.setStatus({
        validationMetric: point.accuracy ?? point.loss,
        validationMetricName: point.accuracy !== undefined ? 'val_accuracy' : 'val_loss',
      });
      inner.evaluation(point, improved);
    },
    message: (text) => inner.message(text),
    finish: () => inner.finish(),
  };
}
