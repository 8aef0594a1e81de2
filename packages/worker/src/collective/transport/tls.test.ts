import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CollectiveError } from '../link.js';
import { loadTls, type TlsMaterial } from './config.js';
import { connectRing } from './grpc.js';
import { HOST, newToken, startRing, startServers } from './fixtures/ring.js';

const openssl = spawnSync('openssl', ['version'], { encoding: 'utf8' });
const skip = openssl.status === 0 ? false : 'openssl is not installed: cannot make a test certificate';

describe('TLS', { timeout: 60_000, skip }, () => {
  let dir = '';
  let tls: TlsMaterial;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'ft-tls-test-'));
    // A self-signed certificate (its own CA) for a name that is not the address we dial.
    const made = spawnSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1',
        '-subj', '/CN=ft-workers.test', '-addext', 'subjectAltName=DNS:ft-workers.test',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(made.status, 0, made.stderr);
    tls = loadTls({ certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem'), caFile: join(dir, 'cert.pem'), serverName: 'ft-workers.test' });
  });

  after(() => rmSync(dir, { recursive: true, force: true }));

  it('carries the ring over TLS when peers present a certificate signed by the CA', { timeout: 20_000 }, async () => {
    const ring = await startRing(2, { tls, server: { tls } });
    try {
      const message = new Uint8Array(3 * 1024 * 1024).map((_, i) => i & 0xff);
      const [, got] = await Promise.all([ring.links[0]!.send(message), ring.links[1]!.recv()]);
      assert.equal(got.byteLength, message.byteLength);
      assert.equal(got[1_000_001], message[1_000_001]);
    } finally {
      await ring.close();
    }
  });

  it('refuses peers whose certificate does not match, and plaintext clients', { timeout: 20_000 }, async () => {
    const token = newToken();
    const servers = await startServers(2, 'job-tls', token, [], { tls });
    const peers = servers.map((s) => `${HOST}:${s.port}`);
    try {
      const { serverName: _omit, ...noOverride } = tls;
      void _omit;
      for (const clientTls of [noOverride, undefined]) {
        await assert.rejects(
          connectRing({ server: servers[0]!, rank: 0, worldSize: 2, peers, token, jobId: 'job-tls', timeoutMs: 5_000, connectDeadlineMs: 800, ...(clientTls ? { tls: clientTls } : {}) }),
          (err: unknown) => err instanceof CollectiveError && /rank 1 \(127\.0\.0\.1:\d+\) never answered within 0\.8 s/.test(err.message),
        );
      }
    } finally {
      await Promise.all(servers.map((s) => s.close()));
    }
  });
});
