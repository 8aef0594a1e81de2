/**
 * Rendezvous: before the ring forms, every worker pings every peer (itself included, which checks
 * that FT_PEERS[rank] really is this worker) until each answers with the expected job id, world
 * size and rank, retrying with capped exponential backoff until the connect deadline.
 *
 * A refused token fails at once (retrying cannot help). A peer that answers as another job or
 * rank is retried (a pod of a previous job may still hold the address) and reported as such if it
 * never changes. Peers that never answer are named in one CollectiveError.
 */
import { Metadata, status as Status, type ServiceError } from '@grpc/grpc-js';
import type { CollectivePeerClient, PingResponse } from '@finetune/proto';
import { CollectiveError } from '../link.js';

export interface RendezvousOptions {
  rank: number;
  worldSize: number;
  jobId: string;
  /** host:port per rank. */
  peers: readonly string[];
  /** One client per rank (same order as peers). */
  clients: readonly CollectivePeerClient[];
  metadata: Metadata;
  /** Absolute deadline (Date.now() based). */
  deadline: number;
  /** The whole connect deadline, for messages. */
  deadlineMs: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** Longest a single Ping may take before it is retried. */
  attemptTimeoutMs?: number;
  signal?: AbortSignal;
}

export const DEFAULT_INITIAL_BACKOFF_MS = 50;
export const DEFAULT_MAX_BACKOFF_MS = 2_000;
export const DEFAULT_PING_ATTEMPT_TIMEOUT_MS = 3_000;

/** `rank 2 (10.0.0.3:7070)`. */
export function describePeer(rank: number, address: string | undefined): string {
  return `rank ${rank} (${address ?? 'unknown address'})`;
}

export function formatSeconds(ms: number): string {
  return String(Math.round(ms) / 1000);
}

export function statusName(code: number): string {
  return (Status as unknown as Record<number, string>)[code] ?? `code ${code}`;
}

export function isServiceError(err: unknown): err is ServiceError {
  return err instanceof Error && typeof (err as Partial<ServiceError>).code === 'number';
}

/** The CollectiveError for a peer that refused our token. */
export function tokenRefusedError(rank: number, address: string, details: string): CollectiveError {
  return new CollectiveError(
    `${describePeer(rank, address)} refused our job token (UNAUTHENTICATED: ${details}); every worker of the job must get the same FT_TOKEN`,
    rank,
  );
}

class Aborted extends Error {}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Aborted());
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(new Aborted());
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function ping(
  client: CollectivePeerClient,
  fromRank: number,
  metadata: Metadata,
  timeoutMs: number,
  signal: AbortSignal,
): Promise<PingResponse> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new Aborted());
    const call = client.ping({ fromRank }, metadata, { deadline: Date.now() + timeoutMs }, (err, response) => {
      signal.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else if (!response) reject(new Error('empty Ping response'));
      else resolve(response);
    });
    const onAbort = (): void => call.cancel();
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

type PeerOutcome = { ok: true } | { ok: false; problem: string; answered: boolean };

/** Resolves when every peer answered as expected; rejects with a CollectiveError otherwise. */
export async function rendezvous(options: RendezvousOptions): Promise<void> {
  const { rank, worldSize, jobId, peers, clients, metadata, deadline, deadlineMs } = options;
  const initialBackoffMs = options.initialBackoffMs ?? DEFAULT_INITIAL_BACKOFF_MS;
  const maxBackoffMs = options.maxBackoffMs ?? DEFAULT_MAX_BACKOFF_MS;
  const attemptTimeoutMs = options.attemptTimeoutMs ?? DEFAULT_PING_ATTEMPT_TIMEOUT_MS;
  const stop = new AbortController();
  const onOuterAbort = (): void => stop.abort();
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });
  let fatal: CollectiveError | undefined;

  const waitFor = async (peer: number): Promise<PeerOutcome> => {
    const address = peers[peer]!;
    let backoff = initialBackoffMs;
    let problem = 'no answer';
    let answered = false;
    for (;;) {
      const remaining = deadline - Date.now();
      if (remaining <= 0) return { ok: false, problem, answered };
      try {
        const answer = await ping(clients[peer]!, rank, metadata, Math.min(remaining, attemptTimeoutMs), stop.signal);
        if (answer.jobId === jobId && answer.worldSize === worldSize && answer.rank === peer) return { ok: true };
        answered = true;
        problem = `it answers as rank ${answer.rank} of job ${JSON.stringify(answer.jobId)} with world size ${answer.worldSize}, expected rank ${peer} of job ${JSON.stringify(jobId)} with world size ${worldSize}`;
      } catch (err) {
        if (err instanceof Aborted || stop.signal.aborted) return { ok: false, problem: 'aborted', answered };
        if (isServiceError(err) && err.code === Status.UNAUTHENTICATED) {
          fatal ??= tokenRefusedError(peer, address, err.details);
          stop.abort();
          return { ok: false, problem: 'token refused', answered: true };
        }
        // A peer that answered as someone else stays reported as such (not as the error of a
        // last attempt cut short by the deadline).
        if (!answered) problem = isServiceError(err) ? `last error: ${statusName(err.code)} ${err.details}` : `last error: ${(err as Error).message}`;
      }
      try {
        await sleep(Math.min(backoff, Math.max(0, deadline - Date.now())), stop.signal);
      } catch {
        return { ok: false, problem: 'aborted', answered };
      }
      backoff = Math.min(backoff * 2, maxBackoffMs);
    }
  };

  try {
    const outcomes = await Promise.all(peers.map((_, peer) => waitFor(peer)));
    if (fatal) throw fatal;
    if (options.signal?.aborted) throw new CollectiveError(`rank ${rank}: rendezvous aborted`);
    const failed = outcomes.flatMap((outcome, peer) => (outcome.ok ? [] : [{ peer, outcome }]));
    if (failed.length === 0) return;
    const lines = failed.map(({ peer, outcome }) => {
      if (outcome.ok) return '';
      const who = describePeer(peer, peers[peer]);
      return outcome.answered
        ? `${who} answered but not as expected within ${formatSeconds(deadlineMs)} s: ${outcome.problem}`
        : `${who} never answered within ${formatSeconds(deadlineMs)} s (${outcome.problem})`;
    });
    throw new CollectiveError(`rendezvous of job ${JSON.stringify(jobId)} failed at rank ${rank}: ${lines.join('; ')}`, failed[0]!.peer);
  } finally {
    options.signal?.removeEventListener('abort', onOuterAbort);
    stop.abort();
  }
}
