#!/usr/bin/env node
// Renders a cluster example (examples/cluster/*.yaml) for the development cluster, whose "nodes"
// are this machine (test/node-agent): there is no image and no storage class, so
//   - the model path inside the worker image (/workspace/examples/...) becomes this checkout's file,
//     mounted from a hostPath volume at the same path;
//   - each persistentVolumeClaim volume becomes a hostPath folder under RESULTS_DIR/<claim>, mounted
//     at that same folder, and spec.output.path moves with its mount (the worker reads it from the
//     job file, which a hostPath mount cannot rewrite).
//
//   node tools/local-example.mjs examples/cluster/digits-5to9.yaml RESULTS_DIR > job.yaml
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse, stringify } from 'yaml';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const IMAGE_WORKSPACE = '/workspace/';

export function renderForDevCluster(text, resultsDir) {
  const job = parse(text);
  if (job?.kind !== 'FineTuneJob') return text; // e.g. the PVC: not needed on the dev cluster
  const spec = job.spec;
  const workers = (spec.workers ??= {});
  const volumes = (workers.volumes ??= []);
  const mounts = (workers.volumeMounts ??= []);
  if (spec.model.source.startsWith(IMAGE_WORKSPACE)) {
    spec.model.source = join(ROOT, spec.model.source.slice(IMAGE_WORKSPACE.length));
    const models = dirname(spec.model.source);
    volumes.push({ name: 'local-models', hostPath: { path: models, type: 'Directory' } });
    mounts.push({ name: 'local-models', mountPath: models, readOnly: true });
  }
  for (const volume of volumes) {
    const claim = volume.persistentVolumeClaim?.claimName;
    if (!claim) continue;
    const folder = join(resultsDir, claim);
    delete volume.persistentVolumeClaim;
    volume.hostPath = { path: folder, type: 'DirectoryOrCreate' };
    for (const mount of mounts.filter((m) => m.name === volume.name)) {
      const output = spec.output?.path;
      if (output === mount.mountPath || output?.startsWith(`${mount.mountPath}/`)) spec.output.path = folder + output.slice(mount.mountPath.length);
      mount.mountPath = folder;
    }
  }
  return stringify(job);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [file, resultsDir] = process.argv.slice(2);
  if (!file || !resultsDir) {
    process.stderr.write('usage: local-example.mjs EXAMPLE.yaml RESULTS_DIR\n');
    process.exit(2);
  }
  process.stdout.write(renderForDevCluster(readFileSync(file, 'utf8'), resolve(resultsDir)));
}
