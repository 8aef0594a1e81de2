// A real Prometheus (Debian's `prometheus` package) for tests: a generated config, TSDB in a temp
// dir, loopback only, 1 s scrapes unless asked for faster; and a thin client for its HTTP API.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const PROMETHEUS = process.env.FT_TEST_PROMETHEUS ?? '/usr/bin/prometheus';
export const SCRAPE_INTERVAL_S = 1;

/** A free loopback TCP port (and, with `span`, the `span - 1` ports after it too). */
export async function freePort(span = 1) {
  for (let attempt = 0; attempt < 50; attempt++) {
    const servers = [];
    try {
      const first = await listen(0);
      servers.push(first.server);
      for (let i = 1; i < span; i++) servers.push((await listen(first.port + i)).server);
      return first.port;
    } catch {
      // a later port of the span is taken: try another base
    } finally {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
    }
  }
  throw new Error(`no ${span} consecutive free ports found`);
}

function listen(port) {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve({ server, port: server.address().port }));
  });
}

/**
 * Starts Prometheus scraping `scrapeJobs`: [{ name, targets: ['host:port', ...], labels? }], each
 * with honor_labels (the worker's own `job` label must win over the scrape job's name, as the
 * chart's PodMonitor and ServiceMonitor set honorLabels).
 */
export async function startPrometheus(scrapeJobs, { scrapeIntervalS = SCRAPE_INTERVAL_S } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'ft-prometheus-'));
  const port = await freePort();
  const interval = `${Math.round(scrapeIntervalS * 1000)}ms`;
  const config = {
    global: { scrape_interval: interval, scrape_timeout: interval, evaluation_interval: interval },
    // A job is static targets, or (`discovery`) any other Prometheus service discovery config.
    scrape_configs: scrapeJobs.map((j) => ({
      job_name: j.name,
      honor_labels: true,
      ...(j.discovery ?? { static_configs: [{ targets: j.targets, ...(j.labels ? { labels: j.labels } : {}) }] }),
    })),
  };
  // JSON is valid YAML.
  writeFileSync(join(dir, 'prometheus.yml'), JSON.stringify(config, null, 2));
  const child = spawn(
    PROMETHEUS,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let log = '';
  child.stderr.on('data', (d) => (log = (log + d).slice(-20_000)));
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exited;
      clearTimeout(timer);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`prometheus exited with ${child.exitCode}:\n${log}`);
    try {
      if ((await fetch(`${url}/-/ready`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus did not become ready in 60 s:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, stop, log: () => log, api: (path, params) => api(url, path, params) };
}

/** GET /api/v1/<path> with query parameters (arrays repeat the key); returns `data` or throws with Prometheus's error. */
async function api(url, path, params = {}) {
  const qs = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) for (const one of [v].flat()) qs.append(k, String(one));
  const res = await fetch(`${url}/api/v1/${path}?${qs}`);
  const body = await res.json();
  if (body.status !== 'success') throw new Error(`${path} ${qs}: ${body.errorType}: ${body.error}`);
  return body.data;
}

export const prometheusInstalled = () => existsSync(PROMETHEUS);
