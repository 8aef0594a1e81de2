/** The worker's metrics endpoint: GET /metrics on its own port, nothing else. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { UserError } from '../errors.js';

export const METRICS_PATH = '/metrics';

export interface MetricsServer {
  /** The port actually bound (useful when 0 was asked for). */
  readonly port: number;
  close(): Promise<void>;
}

/** `setting` names where the port came from, for the error when it is taken (default FT_METRICS_PORT). */
export async function serveMetrics(registry: Registry, options: { port: number; host: string; setting?: string }): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== METRICS_PATH || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end(`not found; metrics are at ${METRICS_PATH}\n`);
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
      (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`collecting metrics failed: ${err.message}\n`),
    );
  });
  // Scrapes are short requests: do not let an idle keep-alive connection hold the process open at exit.
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(new UserError(`${options.setting ?? 'FT_METRICS_PORT'}: cannot serve metrics on ${options.host}:${options.port} (${err.code ?? err.message}); choose a free port`)),
    );
    server.listen(options.port, options.host, () => resolve());
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
