// Runs the real helm binary (built from helm.sh/helm/v3 by test/control-plane/build-helm.sh)
// against the chart, with its config/cache/data homes in a temp dir so nothing of the user's
// helm setup (repositories, plugins) leaks in.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { helmBinary } from '../control-plane/harness.mjs';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CHART = join(ROOT, 'deploy/helm/finetune-operator');

let helmPath;
let helmHome;

/** Builds helm when missing (minutes, once per machine); later calls are instant. */
export async function ensureHelm() {
  helmPath ??= await helmBinary();
  if (!helmHome) {
    helmHome = mkdtempSync(join(tmpdir(), 'ft-helm-home-'));
    const home = helmHome;
    process.once('exit', () => rmSync(home, { recursive: true, force: true }));
  }
  return helmPath;
}

/** Runs helm; resolves { code, stdout, stderr } (a non-zero exit is a result, not a throw). */
export async function helm(args, { timeoutMs = 60_000 } = {}) {
  const bin = await ensureHelm();
  const env = {
    ...process.env,
    HELM_CONFIG_HOME: join(helmHome, 'config'),
    HELM_CACHE_HOME: join(helmHome, 'cache'),
    HELM_DATA_HOME: join(helmHome, 'data'),
  };
  return new Promise((resolve, reject) => {
    execFile(bin, args, { env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(new Error(`helm ${args.join(' ')}: ${err.message}`));
      resolve({ code: err ? err.code : 0, stdout, stderr });
    });
  });
}

/** `--set a=b` pairs from an object, for short calls: { 'serviceMonitor.enabled': true }. */
export function setArgs(sets = {}) {
  return Object.entries(sets).flatMap(([k, v]) => ['--set', `${k}=${v}`]);
}

/**
 * `helm template` of a chart (default: the repository's), parsed into objects. Throws with
 * helm's stderr when rendering fails.
 */
export async function renderChart({ chart = CHART, release = 'ft', namespace = 'finetune-system', sets, args = [] } = {}) {
  const r = await helm(['template', release, chart, '--namespace', namespace, '--include-crds', ...setArgs(sets), ...args]);
  if (r.code !== 0) throw new Error(`helm template failed (${r.code}):\n${r.stderr}`);
  return parseManifests(r.stdout);
}

/** Multi-document YAML → objects (empty documents dropped); a YAML error fails loudly. */
export function parseManifests(text) {
  const objects = [];
  for (const doc of parseAllDocuments(text)) {
    if (doc.errors.length > 0) throw new Error(`bad YAML from helm: ${doc.errors[0].message}`);
    const obj = doc.toJS();
    if (obj) objects.push(obj);
  }
  return objects;
}

/** The objects of one kind; `name` picks exactly one (and throws when it is not there). */
export function byKind(objects, kind, name) {
  const found = objects.filter((o) => o.kind === kind);
  if (name === undefined) return found;
  const one = found.find((o) => o.metadata.name === name);
  if (!one) throw new Error(`no ${kind} ${name}; have ${found.map((o) => o.metadata.name).join(', ') || 'none'}`);
  return one;
}
