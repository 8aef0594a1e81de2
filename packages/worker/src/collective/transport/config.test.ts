import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { UserError } from '../../errors.js';
import { loadTls, parseHostPort, ringConfigFromEnv, DEFAULT_COLLECTIVE_TIMEOUT_MS, DEFAULT_CONNECT_DEADLINE_MS } from './config.js';

const base = {
  FT_RANK: '1',
  FT_WORLD_SIZE: '3',
  FT_PEERS: 'w-0.ft:7070, w-1.ft:7071,[fd00::3]:7072',
  FT_JOB_ID: 'job-42',
  FT_TOKEN: '0123456789abcdef0123',
};

function userError(pattern: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof UserError, `expected a UserError, got ${String(err)}`);
    assert.match(err.message, pattern);
    return true;
  };
}

describe('ringConfigFromEnv', { timeout: 10_000 }, () => {
  it('reads a complete environment, with defaults', () => {
    assert.deepEqual(ringConfigFromEnv(base), {
      rank: 1,
      worldSize: 3,
      peers: ['w-0.ft:7070', 'w-1.ft:7071', '[fd00::3]:7072'],
      jobId: 'job-42',
      token: '0123456789abcdef0123',
      port: 7071,
      host: '0.0.0.0',
      timeoutMs: DEFAULT_COLLECTIVE_TIMEOUT_MS,
      connectDeadlineMs: DEFAULT_CONNECT_DEADLINE_MS,
    });
    const config = ringConfigFromEnv({
      ...base,
      FT_PORT: '9000',
      FT_BIND_HOST: '127.0.0.1',
      FT_COLLECTIVE_TIMEOUT_MS: '5000',
      FT_CONNECT_DEADLINE_MS: '20000',
      FT_TLS_CERT: '/tls/tls.crt',
      FT_TLS_KEY: '/tls/tls.key',
      FT_TLS_CA: '/tls/ca.crt',
      FT_TLS_SERVER_NAME: 'workers.ft',
    });
    assert.equal(config.port, 9000);
    assert.equal(config.host, '127.0.0.1');
    assert.equal(config.timeoutMs, 5000);
    assert.equal(config.connectDeadlineMs, 20000);
    assert.deepEqual(config.tlsFiles, { certFile: '/tls/tls.crt', keyFile: '/tls/tls.key', caFile: '/tls/ca.crt', serverName: 'workers.ft' });
  });

  it('explains what is missing or invalid', () => {
    const without = (name: keyof typeof base) => {
      const env: Record<string, string> = { ...base };
      delete env[name];
      return env;
    };
    assert.throws(() => ringConfigFromEnv(without('FT_RANK')), userError(/^FT_RANK is not set/));
    assert.throws(() => ringConfigFromEnv(without('FT_WORLD_SIZE')), userError(/^FT_WORLD_SIZE is not set/));
    assert.throws(() => ringConfigFromEnv(without('FT_PEERS')), userError(/^FT_PEERS is not set \(host:port of every worker/));
    assert.throws(() => ringConfigFromEnv(without('FT_JOB_ID')), userError(/^FT_JOB_ID is not set/));
    assert.throws(() => ringConfigFromEnv(without('FT_TOKEN')), userError(/^FT_TOKEN is not set/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_RANK: '3' }), userError(/FT_RANK must be an integer in \[0, 2\] .*FT_WORLD_SIZE is 3.*got "3"/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_RANK: '-1' }), userError(/FT_RANK must be an integer/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_RANK: '1.5' }), userError(/FT_RANK must be an integer/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_WORLD_SIZE: '0' }), userError(/FT_WORLD_SIZE must be an integer in \[1, 65536\]/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_WORLD_SIZE: 'two' }), userError(/FT_WORLD_SIZE must be .* got "two"/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_PEERS: 'a:1,b:2' }), userError(/FT_PEERS lists 2 addresses but FT_WORLD_SIZE is 3/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_PEERS: 'a:1,,c:3' }), userError(/FT_PEERS entry 1 \(rank 1\) is empty/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_PEERS: 'a:1,b,c:3' }), userError(/FT_PEERS entry 1 \(rank 1\): "b" is not host:port/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_PEERS: 'a:1,b:70000,c:3' }), userError(/port of "b:70000" must be in \[1, 65535\]/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_PORT: '0' }), userError(/FT_PORT must be an integer in \[1, 65535\]/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_TOKEN: 'short' }), userError(/FT_TOKEN is too short \(5 characters\)/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_TOKEN: 'has a space in it, long enough' }), userError(/printable ASCII/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_COLLECTIVE_TIMEOUT_MS: '0' }), userError(/FT_COLLECTIVE_TIMEOUT_MS must be an integer ≥ 1/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_CONNECT_DEADLINE_MS: '10s' }), userError(/FT_CONNECT_DEADLINE_MS must be an integer ≥ 1 .* got "10s"/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_TLS_CERT: '/c', FT_TLS_KEY: '/k' }), userError(/TLS needs FT_TLS_CERT, FT_TLS_KEY and FT_TLS_CA together; FT_TLS_CA is not set/));
    assert.throws(() => ringConfigFromEnv({ ...base, FT_TLS_SERVER_NAME: 'x' }), userError(/TLS is off/));
    // The token never appears in messages.
    try {
      ringConfigFromEnv({ ...base, FT_RANK: 'x' });
    } catch (err) {
      assert.ok(!(err as Error).message.includes(base.FT_TOKEN));
    }
  });

  it('parses host:port forms', () => {
    assert.deepEqual(parseHostPort('10.0.0.1:80', 'x'), { host: '10.0.0.1', port: 80 });
    assert.deepEqual(parseHostPort('[::1]:443', 'x'), { host: '[::1]', port: 443 });
    assert.throws(() => parseHostPort('::1:443', 'x'), userError(/use \[addr\]:port for IPv6/));
  });

  it('loadTls reads the files and names the one it cannot read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'ft-tls-'));
    try {
      for (const name of ['cert.pem', 'key.pem', 'ca.pem']) writeFileSync(join(dir, name), name);
      const material = loadTls({ certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), caFile: join(dir, 'ca.pem'), serverName: 'w' });
      assert.equal(material.cert.toString(), 'cert.pem');
      assert.equal(material.ca.toString(), 'ca.pem');
      assert.equal(material.serverName, 'w');
      assert.throws(
        () => loadTls({ certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'nope.pem'), caFile: join(dir, 'ca.pem') }),
        userError(/cannot read FT_TLS_KEY file .*nope\.pem: ENOENT/),
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
