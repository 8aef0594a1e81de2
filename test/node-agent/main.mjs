#!/usr/bin/env node
// The node agent as a long-running process, for the development cluster (tools/dev-cluster.sh):
//   node test/node-agent/main.mjs --kubeconfig K --workdir D [--node NAME[:GPUS]]...
// Runs until SIGTERM/SIGINT, then stops its pods and marks its nodes NotReady.
import { parseArgs } from 'node:util';
import { startNodeAgent } from './agent.mjs';

const { values } = parseArgs({
  options: {
    kubeconfig: { type: 'string' },
    workdir: { type: 'string' },
    node: { type: 'string', multiple: true },
  },
});
if (!values.kubeconfig || !values.workdir) {
  process.stderr.write('usage: main.mjs --kubeconfig PATH --workdir DIR [--node NAME[:GPUS]]...\n');
  process.exit(2);
}
const nodes = (values.node ?? ['node-a:2', 'node-b:2']).map((spec) => {
  const [name, gpus = '0'] = spec.split(':');
  const n = Number(gpus);
  if (!name || !Number.isInteger(n) || n < 0) {
    process.stderr.write(`--node: expected NAME[:GPUS], got '${spec}'\n`);
    process.exit(2);
  }
  return { name, gpus: n };
});
const agent = await startNodeAgent({ kubeconfigPath: values.kubeconfig, workdir: values.workdir, nodes, log: (line) => process.stderr.write(`${line}\n`) });
process.stderr.write(`node agent: running pods of ${nodes.map((n) => `${n.name} (${n.gpus} GPU)`).join(', ')}\n`);
const stop = async () => {
  await agent.stop();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
