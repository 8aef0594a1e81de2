// A STAND-IN for NVIDIA's dcgm-exporter. This machine has no GPU, so the real exporter cannot run
// here; this serves the three DCGM series the training dashboard reads, with the label set
// dcgm-exporter uses when it attributes GPUs to pods (namespace, pod, container, gpu, UUID, ...),
// one GPU per given pod. It only lets the test check that the GPU panels' queries select the
// job's pods; it says nothing about real GPU figures.
import { createServer } from 'node:http';

const SERIES = [
  ['DCGM_FI_DEV_GPU_UTIL', 'gauge', 'GPU utilization (in %).', (i, t) => 60 + ((i * 17 + t) % 35)],
  ['DCGM_FI_DEV_FB_USED', 'gauge', 'Framebuffer memory used (in MiB).', (i) => 20_000 + 512 * i],
  ['DCGM_FI_DEV_POWER_USAGE', 'gauge', 'Power draw (in W).', (i, t) => 250 + ((i * 29 + 3 * t) % 120)],
];

/** Serves /metrics for `pods` (names) in `namespace`; resolves { address, close }. */
export async function startDcgmStandIn({ namespace, pods, host = '127.0.0.1' }) {
  const server = createServer((req, res) => {
    if (req.url !== '/metrics') return void res.writeHead(404).end();
    const t = Math.floor(Date.now() / 1000);
    const lines = [];
    for (const [name, type, help, value] of SERIES) {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
      pods.forEach((pod, i) => {
        const labels = `gpu="${i}",UUID="GPU-00000000-0000-0000-0000-00000000000${i}",device="nvidia${i}",modelName="NVIDIA H100 80GB HBM3",Hostname="gpu-node-1",container="worker",namespace="${namespace}",pod="${pod}"`;
        lines.push(`${name}{${labels}} ${value(i, t)}`);
      });
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(lines.join('\n') + '\n');
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  return {
    address: `${host}:${server.address().port}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}
