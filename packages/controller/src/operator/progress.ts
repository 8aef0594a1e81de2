/**
 * Reads training progress from rank 0's Status RPC (the workers need no API permissions; the
 * controller asks them). One short call with a deadline; any failure just means "no news".
 */
import { credentials, Metadata } from '@grpc/grpc-js';
import { CollectivePeerClient, Phase, type StatusResponse } from '@finetune/proto';
import type { TrainingProgress } from '@finetune/api';

export type ProgressReader = (address: string, token: string) => Promise<TrainingProgress | undefined>;

export function grpcProgressReader(timeoutMs = 1_500): ProgressReader {
  return (address, token) =>
    new Promise((resolve) => {
      const client = new CollectivePeerClient(address, credentials.createInsecure());
      const metadata = new Metadata();
      metadata.set('authorization', `Bearer ${token}`);
      client.status({}, metadata, { deadline: Date.now() + timeoutMs }, (err: Error | null, response?: StatusResponse) => {
        client.close();
        resolve(err || !response ? undefined : toProgress(response));
      });
    });
}

export function toProgress(r: StatusResponse): TrainingProgress | undefined {
  if (r.phase === Phase.PHASE_STARTING || r.phase === Phase.PHASE_UNSPECIFIED) return undefined;
  const progress: TrainingProgress = { step: Number(r.step), epoch: r.epoch };
  if (Number(r.totalSteps) > 0) progress.totalSteps = Number(r.totalSteps);
  if (Number.isFinite(r.lastLoss)) progress.loss = round(r.lastLoss);
  if (r.validationMetric !== undefined && Number.isFinite(r.validationMetric)) {
    progress.validationMetric = round(r.validationMetric);
    progress.validationMetricName = r.validationMetricName;
  }
  if (Number(r.updatedAtUnixMs) > 0) progress.updatedAt = new Date(Number(r.updatedAtUnixMs)).toISOString().replace(/\.\d+Z$/, 'Z');
  return progress;
}

/** Six significant digits: the status is for people, and fewer digits mean fewer status writes. */
const round = (x: number) => Number(x.toPrecision(6));
