// Prometheus HTTP service discovery for worker pods, answered from the real API server: the
// targets the chart's PodMonitor would select (pods labelled app.kubernetes.io/name=finetune-worker,
// their container port named `metrics`). Debian's Prometheus is built without Kubernetes service
// discovery, so this small endpoint does that part; everything else is Prometheus's own.
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

const SELECTOR = 'app.kubernetes.io/name=finetune-worker';

function listWorkerPods(cp) {
  const url = new URL(`/api/v1/pods?labelSelector=${encodeURIComponent(SELECTOR)}`, cp.server);
  return new Promise((resolve, reject) => {
    https
      .get(url, { ca: readFileSync(cp.caFile), headers: { authorization: `Bearer ${cp.adminToken}` } }, (res) => {
        let body = '';
        res.on('data', (d) => (body += d));
        res.on('end', () => (res.statusCode === 200 ? resolve(JSON.parse(body).items) : reject(new Error(`${res.statusCode}: ${body.slice(0, 300)}`))));
      })
      .on('error', reject);
  });
}

/** Starts the endpoint; returns its URL for `http_sd_configs` and a stop(). */
export async function startPodDiscovery(cp) {
  const server = http.createServer(async (_req, res) => {
    try {
      const groups = [];
      for (const pod of await listWorkerPods(cp)) {
        const port = pod.spec.containers[0]?.ports?.find((p) => p.name === 'metrics')?.containerPort;
        if (!port || !pod.status?.podIP || pod.status.phase !== 'Running') continue;
        groups.push({ targets: [`${pod.status.podIP}:${port}`], labels: { namespace: pod.metadata.namespace, pod: pod.metadata.name } });
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(groups));
    } catch (err) {
      res.writeHead(500).end(String(err.message));
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}/targets`, stop: () => new Promise((resolve) => server.close(resolve)) };
}
