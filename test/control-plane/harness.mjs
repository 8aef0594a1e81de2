// Programmatic control plane for tests: a real etcd + kube-apiserver (+ kube-scheduler
// when built), each call in its own temp dir with its own free ports.
//
//   import { startControlPlane } from '../../test/control-plane/harness.mjs';
//   const cp = await startControlPlane();
//   try { ... use cp.kubeconfigPath / cp.server ... } finally { await cp.stop(); }
//
// The heavy lifting is done by up.sh / down.sh next to this file, so `npm run
// cluster:up` and tests start exactly the same thing. Cleanup happens in stop(), in a
// process 'exit' hook, and, if the test process dies hard (SIGKILL), in a watchdog that
// up.sh leaves behind to watch this process's pid.
import { execFile, spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const BUILD = join(HERE, 'build.sh');
const BUILD_HELM = join(HERE, 'build-helm.sh');
const UP = join(HERE, 'up.sh');
const DOWN = join(HERE, 'down.sh');

/** Runs a command; resolves with stdout, rejects with stderr tail on failure/timeout. */
function run(cmd, args, { env, timeoutMs, inheritStderr = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', inheritStderr ? 'inherit' : 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr?.on('data', (d) => (err += d));
    const timer = setTimeout(() => {
      child.kill('SIGTERM');
      setTimeout(() => child.kill('SIGKILL'), 5000).unref();
    }, timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(out);
      else {
        const why = signal ? `killed by ${signal} (timeout ${timeoutMs / 1000}s?)` : `exit code ${code}`;
        reject(new Error(`${cmd} ${args.join(' ')}: ${why}\n${err.slice(-6000)}`));
      }
    });
  });
}

function parseEnv(text) {
  const env = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Za-z0-9_-]+)=(.*)$/.exec(line.trim());
    if (m) env[m[1]] = m[2];
  }
  return env;
}

/**
 * Builds the control-plane binaries if they are not in the cache yet. Prints that it is
 * building (the first build of kube-apiserver takes tens of minutes on 2 cores).
 */
export async function ensureBinaries({ scheduler = false, controllers = false, timeoutMs } = {}) {
  const components = ['etcd', 'kube-apiserver'];
  if (scheduler) components.push('kube-scheduler');
  if (controllers) components.push('kube-controller-manager');
  const paths = parseEnv(await run('bash', [BUILD, '--path', ...components], { timeoutMs: 30_000 }));
  const missing = components.filter((c) => !existsSync(paths[c]));
  if (missing.length > 0) {
    process.stderr.write(
      `[control-plane] building ${missing.join(', ')} into the binary cache ` +
        `(${dirname(dirname(paths[missing[0]]))}); the first build can take 30+ minutes...\n`,
    );
    await run(BUILD, missing, {
      timeoutMs: timeoutMs ?? Number(process.env.FT_BUILD_TIMEOUT_S ?? 5400) * 1000,
      inheritStderr: true,
    });
  }
  return paths;
}

/**
 * Path of the helm binary (helm.sh/helm/v3, see build-helm.sh), built into the binary cache
 * first when missing (a cold build takes several minutes on 2 cores).
 */
export async function helmBinary({ timeoutMs } = {}) {
  const { helm } = parseEnv(await run('bash', [BUILD_HELM, '--path'], { timeoutMs: 30_000 }));
  if (existsSync(helm)) return helm;
  process.stderr.write(`[control-plane] building helm into the binary cache (${dirname(dirname(helm))}); this takes several minutes...\n`);
  await run('bash', [BUILD_HELM], {
    timeoutMs: timeoutMs ?? Number(process.env.FT_BUILD_TIMEOUT_S ?? 5400) * 1000,
    inheritStderr: true,
  });
  return helm;
}

/**
 * Starts etcd + kube-apiserver in `dir` (default: a fresh temp dir) on free ports.
 * @param {object} [opts]
 * @param {string} [opts.dir]        state dir (must be empty or absent); default mkdtemp
 * @param {boolean|'auto'} [opts.scheduler=true]  start kube-scheduler (true: build it if missing;
 *                                'auto': only if already built; false: no scheduler)
 * @param {boolean} [opts.controllers=false] also start kube-controller-manager with a few
 *   generic controllers (garbage collector, namespace deletion, default ServiceAccounts,
 *   kube-root-ca.crt, ClusterRole aggregation); `controllersList` overrides the list
 * @param {boolean} [opts.keep=false] keep the dir (logs, certs) after stop()
 * @param {number} [opts.timeoutMs=240000] startup timeout (after the binaries exist)
 * @param {number} [opts.attempts=2] startup attempts before giving up
 * @returns {Promise<{dir: string, kubeconfigPath: string, server: string, caFile: string,
 *   adminToken: string, env: Record<string,string>, stop: () => Promise<void>}>}
 */
export async function startControlPlane(opts = {}) {
  const { scheduler = true, controllers = false, attempts = 2 } = opts;
  await ensureBinaries({ scheduler: scheduler === true, controllers });
  // A second attempt (fresh dir, fresh ports) covers the rare lost race for a free port.
  for (let attempt = 1; ; attempt++) {
    try {
      return await startOnce(opts);
    } catch (e) {
      if (attempt >= attempts) throw e;
      process.stderr.write(`[control-plane] start failed (attempt ${attempt}/${attempts}), retrying:\n${e.message}\n`);
    }
  }
}

async function startOnce(opts) {
  const { scheduler = true, controllers = false, controllersList, keep = process.env.FT_KEEP_CLUSTER_DIR === '1', timeoutMs = 240_000 } = opts;
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'ft-control-plane-'));
  const downEnv = { FT_CLUSTER_DIR: dir, FT_QUIET: '1', FT_KEEP_STATE: keep ? '1' : '0' };

  let stopped = false;
  const onExit = () => {
    if (!stopped) spawnSync('bash', [DOWN], { env: { ...process.env, ...downEnv }, stdio: 'ignore', timeout: 20_000 });
  };
  process.once('exit', onExit);

  let out;
  try {
    out = await run('bash', [UP], {
      env: {
        FT_CLUSTER_DIR: dir,
        FT_OWNER_PID: String(process.pid),
        FT_QUIET: '1',
        FT_SCHEDULER: scheduler === true ? '1' : scheduler === false ? '0' : 'auto',
        FT_CONTROLLERS: controllers ? '1' : '0',
        // Each harness run picks its own free ports, whatever the shell has exported.
        FT_ETCD_PORT: '',
        FT_ETCD_PEER_PORT: '',
        FT_APISERVER_PORT: '',
        ...(controllersList ? { FT_CONTROLLERS_LIST: [].concat(controllersList).join(',') } : {}),
        FT_READY_TIMEOUT: String(Math.max(30, Math.floor(timeoutMs / 1000) - 30)),
      },
      timeoutMs,
    });
  } catch (e) {
    // up.sh already tore the processes down; keep the dir only if asked to.
    process.removeListener('exit', onExit);
    if (existsSync(dir)) await run('bash', [DOWN], { env: downEnv, timeoutMs: 30_000 }).catch(() => {});
    if (!keep && opts.dir === undefined) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  const env = parseEnv(out);
  const kubeconfigPath = env.KUBECONFIG;
  return {
    dir,
    kubeconfigPath,
    server: env.FT_APISERVER_URL,
    caFile: env.FT_CA_FILE,
    adminToken: readFileSync(env.FT_ADMIN_TOKEN_FILE, 'utf8').trim(),
    scheduler: env.FT_SCHEDULER === '1',
    controllers: env.FT_CONTROLLERS === '1',
    env,
    async stop() {
      if (stopped) return;
      stopped = true;
      process.removeListener('exit', onExit);
      await run('bash', [DOWN], { env: downEnv, timeoutMs: 60_000 });
    },
  };
}

// CLI for quick manual checks: `node test/control-plane/harness.mjs` starts a control
// plane in a temp dir, prints its kubeconfig path and stops it on Ctrl-C.
if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const cp = await startControlPlane();
  console.log(`export KUBECONFIG=${cp.kubeconfigPath}   # ${cp.server}; Ctrl-C stops it`);
  const bye = async () => {
    await cp.stop();
    process.exit(0);
  };
  process.on('SIGINT', bye);
  process.on('SIGTERM', bye);
  setInterval(() => {}, 1 << 30);
}

/**
 * Runs kubectl against a started control plane (admin kubeconfig unless another is given).
 * Resolves { code, stdout, stderr }; rejects only when kubectl could not run at all.
 */
export function runKubectl(cp, args, { kubeconfig = cp.kubeconfigPath, input, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    const child = execFile(
      'kubectl',
      ['--kubeconfig', kubeconfig, '--cache-dir', join(cp.dir, 'kubectl-cache'), '--request-timeout=30s', ...args],
      { timeout: timeoutMs, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(new Error(`kubectl ${args.join(' ')}: ${err.message}`));
        resolve({ code: err ? err.code : 0, stdout, stderr });
      },
    );
    if (input !== undefined) child.stdin.end(input);
  });
}

/**
 * Polls fn() until it returns a truthy value (errors count as "not yet"); after timeoutMs fails
 * with the last value or error, plus whatever `context()` adds (e.g. a component's log).
 */
export async function waitFor(what, fn, { timeoutMs = 20_000, intervalMs = 100, context } = {}) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > end) {
      const shown = last instanceof Error ? last.message : JSON.stringify(last)?.slice(0, 2000);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${shown}${context ? `\n${context()}` : ''}`);
    }
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
