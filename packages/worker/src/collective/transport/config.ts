/**
 * The ring's configuration from a worker's environment (set by the controller on each pod).
 *
 *   FT_RANK                   this worker's rank, 0 ≤ rank < FT_WORLD_SIZE            (required)
 *   FT_WORLD_SIZE             number of workers                                      (required)
 *   FT_PEERS                  host:port of every worker, comma-separated, rank order (required)
 *   FT_JOB_ID                 job identity; peers answering with another one are ignored (required)
 *   FT_TOKEN                  the job's shared secret (≥ 16 printable ASCII chars)   (required)
 *   FT_PORT                   port this worker's server listens on (default: its FT_PEERS entry's)
 *   FT_BIND_HOST              address the server binds (default 0.0.0.0)
 *   FT_COLLECTIVE_TIMEOUT_MS  a peer silent this long during a collective has failed (default 60000)
 *   FT_CONNECT_DEADLINE_MS    how long to wait for every peer at start-up (default 300000)
 *   FT_TLS_CERT, FT_TLS_KEY, FT_TLS_CA   PEM files: this worker's certificate and key, and the CA
 *                             that signed every worker's certificate (all three or none)
 *   FT_TLS_SERVER_NAME        name to verify in peers' certificates instead of their host
 */
import { readFileSync } from 'node:fs';
import { UserError } from '../../errors.js';

export interface TlsFiles {
  certFile: string;
  keyFile: string;
  caFile: string;
  serverName?: string;
}

/** PEM material for TLS: this worker's certificate chain and key, and the CA that signed the peers'. */
export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
  ca: Buffer;
  /** Verify this name in peers' certificates instead of the host part of their address. */
  serverName?: string;
}

export interface RingEnvConfig {
  rank: number;
  worldSize: number;
  /** host:port per rank. */
  peers: string[];
  jobId: string;
  token: string;
  /** Port to listen on. */
  port: number;
  /** Address to bind. */
  host: string;
  timeoutMs: number;
  connectDeadlineMs: number;
  /** TLS files (read them with loadTls). */
  tlsFiles?: TlsFiles;
}

export const DEFAULT_COLLECTIVE_TIMEOUT_MS = 60_000;
export const DEFAULT_CONNECT_DEADLINE_MS = 300_000;
export const MIN_TOKEN_LENGTH = 16;

type Env = Record<string, string | undefined>;

function read(env: Env, name: string): string | undefined {
  const value = env[name]?.trim();
  return value === undefined || value === '' ? undefined : value;
}

function required(env: Env, name: string, what: string): string {
  const value = read(env, name);
  if (value === undefined) throw new UserError(`${name} is not set (${what})`);
  return value;
}

function integer(name: string, text: string, min: number, max: number, what: string): number {
  const value = /^[+]?\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `an integer ≥ ${min}` : `an integer in [${min}, ${max}]`;
    throw new UserError(`${name} must be ${range} (${what}), got ${JSON.stringify(text)}`);
  }
  return value;
}

/** Splits `host:port` or `[ipv6]:port`; throws UserError naming `source` when malformed. */
export function parseHostPort(text: string, source: string): { host: string; port: number } {
  const match = /^(\[[0-9a-fA-F:.]+\]|[^\s:[\]]+):(\d+)$/.exec(text.trim());
  if (!match) throw new UserError(`${source}: ${JSON.stringify(text)} is not host:port (use [addr]:port for IPv6)`);
  const port = Number(match[2]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new UserError(`${source}: port of ${JSON.stringify(text)} must be in [1, 65535]`);
  }
  return { host: match[1]!, port };
}

/** Reads the ring configuration from environment variables; throws UserError explaining what is wrong. */
export function ringConfigFromEnv(env: Env = process.env): RingEnvConfig {
  const worldSize = integer(
    'FT_WORLD_SIZE',
    required(env, 'FT_WORLD_SIZE', 'number of workers in the job'),
    1,
    65536,
    'number of workers in the job',
  );
  const rank = integer('FT_RANK', required(env, 'FT_RANK', "this worker's rank"), 0, worldSize - 1, `this worker's rank; FT_WORLD_SIZE is ${worldSize}`);
  const peersText = required(env, 'FT_PEERS', 'host:port of every worker in rank order, comma-separated');
  const peers = peersText.split(',').map((p) => p.trim());
  if (peers.length !== worldSize) {
    throw new UserError(`FT_PEERS lists ${peers.length} address${peers.length === 1 ? '' : 'es'} but FT_WORLD_SIZE is ${worldSize}; give one host:port per rank, comma-separated`);
  }
  peers.forEach((peer, i) => {
    if (peer === '') throw new UserError(`FT_PEERS entry ${i} (rank ${i}) is empty`);
    parseHostPort(peer, `FT_PEERS entry ${i} (rank ${i})`);
  });
  const jobId = required(env, 'FT_JOB_ID', 'the job this worker belongs to');
  const token = env['FT_TOKEN'] ?? '';
  if (token === '') throw new UserError("FT_TOKEN is not set (the job's shared secret; every worker must get the same one)");
  if (!/^[\x21-\x7e]+$/.test(token)) throw new UserError('FT_TOKEN must be printable ASCII without spaces (it travels in an HTTP/2 header)');
  if (token.length < MIN_TOKEN_LENGTH) {
    throw new UserError(`FT_TOKEN is too short (${token.length} characters); use at least ${MIN_TOKEN_LENGTH} random characters`);
  }
  const portText = read(env, 'FT_PORT');
  const port = portText === undefined
    ? parseHostPort(peers[rank]!, `FT_PEERS entry ${rank} (rank ${rank})`).port
    : integer('FT_PORT', portText, 1, 65535, 'port this worker listens on');
  const host = read(env, 'FT_BIND_HOST') ?? '0.0.0.0';
  const timeoutText = read(env, 'FT_COLLECTIVE_TIMEOUT_MS');
  const timeoutMs = timeoutText === undefined
    ? DEFAULT_COLLECTIVE_TIMEOUT_MS
    : integer('FT_COLLECTIVE_TIMEOUT_MS', timeoutText, 1, Number.MAX_SAFE_INTEGER, 'milliseconds a peer may stay silent during a collective');
  const deadlineText = read(env, 'FT_CONNECT_DEADLINE_MS');
  const connectDeadlineMs = deadlineText === undefined
    ? DEFAULT_CONNECT_DEADLINE_MS
    : integer('FT_CONNECT_DEADLINE_MS', deadlineText, 1, Number.MAX_SAFE_INTEGER, 'milliseconds to wait for every peer at start-up');

  const config: RingEnvConfig = { rank, worldSize, peers, jobId, token, port, host, timeoutMs, connectDeadlineMs };
  const tlsNames = ['FT_TLS_CERT', 'FT_TLS_KEY', 'FT_TLS_CA'] as const;
  const tlsValues = tlsNames.map((name) => read(env, name));
  if (tlsValues.some((v) => v !== undefined)) {
    const missing = tlsNames.filter((_, i) => tlsValues[i] === undefined);
    if (missing.length > 0) {
      throw new UserError(`TLS needs FT_TLS_CERT, FT_TLS_KEY and FT_TLS_CA together; ${missing.join(' and ')} ${missing.length === 1 ? 'is' : 'are'} not set`);
    }
    config.tlsFiles = { certFile: tlsValues[0]!, keyFile: tlsValues[1]!, caFile: tlsValues[2]! };
    const serverName = read(env, 'FT_TLS_SERVER_NAME');
    if (serverName !== undefined) config.tlsFiles.serverName = serverName;
  } else if (read(env, 'FT_TLS_SERVER_NAME') !== undefined) {
    throw new UserError('FT_TLS_SERVER_NAME is set but TLS is off (set FT_TLS_CERT, FT_TLS_KEY and FT_TLS_CA)');
  }
  return config;
}

/** Reads the PEM files named by TlsFiles; throws UserError naming the file that cannot be read. */
export function loadTls(files: TlsFiles): TlsMaterial {
  const load = (path: string, name: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new UserError(`cannot read ${name} file ${path}: ${code}`);
    }
  };
  const material: TlsMaterial = {
    cert: load(files.certFile, 'FT_TLS_CERT'),
    key: load(files.keyFile, 'FT_TLS_KEY'),
    ca: load(files.caFile, 'FT_TLS_CA'),
  };
  if (files.serverName !== undefined) material.serverName = files.serverName;
  return material;
}
