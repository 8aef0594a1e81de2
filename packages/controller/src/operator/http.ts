/**
 * The controller's two small HTTP servers: Prometheus metrics, and the probes the Deployment
 * uses (/healthz: the process answers; /readyz: the caches are synced, on every replica, so
 * standbys are ready to take over).
 */
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export function serveMetrics(registry: Registry, port: number, host = '0.0.0.0'): Promise<Server> {
  return listen(
    createServer((req, res) => {
      if (req.url?.split('?')[0] !== '/metrics') return void res.writeHead(404).end('not found\n');
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        (err: Error) => res.writeHead(500).end(`${err.message}\n`),
      );
    }),
    port,
    host,
  );
}

export function serveHealth(isReady: () => boolean, port: number, host = '0.0.0.0'): Promise<Server> {
  return listen(
    createServer((req, res) => {
      const path = req.url?.split('?')[0];
      if (path === '/healthz') return void res.writeHead(200).end('ok\n');
      if (path === '/readyz') return void (isReady() ? res.writeHead(200).end('ok\n') : res.writeHead(503).end('caches not synced\n'));
      res.writeHead(404).end('not found\n');
    }),
    port,
    host,
  );
}

function listen(server: Server, port: number, host: string): Promise<Server> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve(server));
  });
}
