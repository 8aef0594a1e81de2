/**
 * Job-token authentication of the collective's RPCs.
 *
 * Every worker of a job gets the same secret token (later from a Kubernetes Secret). Every RPC
 * carries it as `authorization: Bearer <token>` metadata; servers compare it in constant time
 * (timingSafeEqual over SHA-256 digests, so neither the content nor the length leaks through
 * timing) and refuse anything else with UNAUTHENTICATED.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { Metadata } from '@grpc/grpc-js';

export const AUTHORIZATION_KEY = 'authorization';
const BEARER = /^bearer\s+(.+)$/i;

/** The SHA-256 of a token: what servers keep and compare against. */
export function tokenDigest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** Throws when a token cannot be used (empty or with characters a header cannot carry). */
export function checkTokenUsable(token: string, what = 'token'): void {
  if (typeof token !== 'string' || token.length === 0) {
    throw new Error(`the collective needs a job ${what}; got an empty one`);
  }
  if (!/^[\x21-\x7e]+$/.test(token)) {
    throw new Error(`the job ${what} must be printable ASCII without spaces (it travels in an HTTP/2 header)`);
  }
}

/** Metadata carrying the job token, for every outgoing call. */
export function bearerMetadata(token: string): Metadata {
  const metadata = new Metadata();
  metadata.set(AUTHORIZATION_KEY, `Bearer ${token}`);
  return metadata;
}

export type TokenCheck = { ok: true } | { ok: false; reason: 'missing token' | 'malformed authorization header' | 'wrong token' };

/** Checks the bearer token of incoming call metadata against the expected digest, in constant time. */
export function checkBearer(metadata: Metadata, expectedDigest: Buffer): TokenCheck {
  const values = metadata.get(AUTHORIZATION_KEY);
  if (values.length === 0) return { ok: false, reason: 'missing token' };
  const value = values[0];
  if (values.length !== 1 || typeof value !== 'string') return { ok: false, reason: 'malformed authorization header' };
  const match = BEARER.exec(value.trim());
  if (!match) return { ok: false, reason: 'malformed authorization header' };
  const presented = tokenDigest(match[1]!);
  return timingSafeEqual(presented, expectedDigest) ? { ok: true } : { ok: false, reason: 'wrong token' };
}
