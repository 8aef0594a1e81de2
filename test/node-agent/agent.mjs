// A local node agent that plays the kubelet for tests: registers Node objects, keeps them
// Ready, runs the first container of each Pod bound to its nodes as a local process and
// writes the Pod's status. See README.md next to this file.
//
//   import { startNodeAgent } from '../node-agent/agent.mjs';
//   const agent = await startNodeAgent({ kubeconfigPath: cp.kubeconfigPath, workdir,
//     nodes: [{ name: 'n1' }, { name: 'gpu-1', gpus: 2, taints: [...] }] });
//   try { ... } finally { await agent.stop(); }
import { spawn, execFile } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http from 'node:http';
import net from 'node:net';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolvePath(HERE, '..', '..');
const FTJOB = join(REPO, 'packages', 'cli', 'bin', 'ftjob.js');
const FTJOB_WORKER = join(REPO, 'packages', 'cli', 'bin', 'ftjob-worker.js');
const HOOK = join(HERE, 'resolve-hook.mjs');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const now = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

// ---------------------------------------------------------------------------------------
// API client (node:https, admin credentials; no dependencies)

function execFileP(cmd, args) {
  return new Promise((resolve, reject) =>
    execFile(cmd, args, { timeout: 30_000 }, (err, stdout, stderr) => (err ? reject(new Error(`${cmd}: ${stderr || err.message}`)) : resolve(stdout))),
  );
}

async function credentialsFrom(opts) {
  if (opts.server) {
    return {
      server: opts.server,
      ca: opts.caFile ? readFileSync(opts.caFile) : opts.ca,
      token: opts.adminToken ?? (opts.tokenFile ? readFileSync(opts.tokenFile, 'utf8').trim() : undefined),
      cert: opts.certFile ? readFileSync(opts.certFile) : undefined,
      key: opts.keyFile ? readFileSync(opts.keyFile) : undefined,
    };
  }
  // kubectl flattens the kubeconfig into JSON (no YAML parser needed here).
  const cfg = JSON.parse(await execFileP('kubectl', ['config', 'view', '--raw', '--minify', '-o', 'json', '--kubeconfig', opts.kubeconfigPath]));
  const cluster = cfg.clusters[0].cluster;
  const user = cfg.users[0]?.user ?? {};
  const file = (p) => (p ? readFileSync(resolvePath(dirname(opts.kubeconfigPath), p)) : undefined);
  const data = (d) => (d ? Buffer.from(d, 'base64') : undefined);
  return {
    server: cluster.server,
    ca: data(cluster['certificate-authority-data']) ?? file(cluster['certificate-authority']),
    token: user.token ?? (user.tokenFile ? readFileSync(user.tokenFile, 'utf8').trim() : undefined),
    cert: data(user['client-certificate-data']) ?? file(user['client-certificate']),
    key: data(user['client-key-data']) ?? file(user['client-key']),
  };
}

class ApiError extends Error {
  constructor(method, path, status, body) {
    super(`${method} ${path}: HTTP ${status}: ${body.slice(0, 500)}`);
    this.status = status;
  }
}

function makeClient(creds) {
  const base = new URL(creds.server);
  const agent = new https.Agent({ ca: creds.ca, cert: creds.cert, key: creds.key, keepAlive: true, maxSockets: 8 });
  function request(method, path, body, contentType = 'application/json', timeoutMs = 15_000) {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
      const headers = { Accept: 'application/json' };
      if (creds.token && !creds.cert) headers.Authorization = `Bearer ${creds.token}`;
      if (payload) {
        headers['Content-Type'] = contentType;
        headers['Content-Length'] = payload.length;
      }
      const req = https.request({ hostname: base.hostname, port: base.port, path, method, headers, agent }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (text += d));
        res.on('end', () => {
          if (res.statusCode >= 200 && res.statusCode < 300) resolve(text ? JSON.parse(text) : {});
          else reject(new ApiError(method, path, res.statusCode, text));
        });
        res.on('error', reject);
      });
      req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${path}: timeout after ${timeoutMs} ms`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
  return {
    get: (p) => request('GET', p),
    post: (p, b) => request('POST', p, b),
    put: (p, b) => request('PUT', p, b),
    del: (p, b) => request('DELETE', p, b),
    smp: (p, b) => request('PATCH', p, b, 'application/strategic-merge-patch+json'),
    close: () => agent.destroy(),
  };
}

// ---------------------------------------------------------------------------------------
// helpers

const enc = encodeURIComponent;
const podPath = (ns, name) => `/api/v1/namespaces/${enc(ns)}/pods/${enc(name)}`;

/** Kubernetes $(VAR) expansion: $(NAME) -> value if defined, $$ -> $. */
function expand(s, env) {
  return String(s).replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)/g, (m, name) => (m === '$$' ? '$' : name in env ? env[name] : m));
}

/** Rewrites occurrences of a volumeMount's mountPath (at the start, or after `=`/`:`/`,`/space) to the materialized dir. */
function rewriteMounts(s, mounts) {
  let out = String(s);
  for (const { mountPath, hostPath } of mounts) {
    const mp = mountPath.replace(/\/+$/, '');
    if (!mp) continue;
    const re = new RegExp(`(^|[=:,\\s])${mp.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?=$|/|[:,\\s])`, 'g');
    out = out.replace(re, (_m, pre) => pre + hostPath);
  }
  return out;
}

function signalNumber(sig) {
  return { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGABRT: 6, SIGKILL: 9, SIGSEGV: 11, SIGPIPE: 13, SIGTERM: 15 }[sig] ?? 1;
}

// ---------------------------------------------------------------------------------------

/**
 * @param {object} opts
 * @param {string} [opts.kubeconfigPath]   admin kubeconfig (or server + caFile + adminToken)
 * @param {string} [opts.server]
 * @param {string} [opts.caFile]
 * @param {string} [opts.adminToken]
 * @param {{name: string, gpus?: number, cpu?: string, memory?: string, pods?: string,
 *   labels?: Record<string,string>, taints?: object[]}[]} opts.nodes
 * @param {string} opts.workdir            per-pod dirs, logs, hosts files go here
 * @param {number} [opts.pollMs=250]       pod list interval
 * @param {number} [opts.heartbeatMs=10000]
 * @param {string} [opts.ipPrefix]         e.g. '127.61' (pod IPs are <prefix>.<a>.<b>); default random 127.x
 * @param {(line: string) => void} [opts.log]
 */
export async function startNodeAgent(opts) {
  const { nodes, workdir, pollMs = 250, heartbeatMs = 10_000, log = () => {} } = opts;
  if (!workdir) throw new Error('startNodeAgent: workdir is required');
  if (!nodes?.length) throw new Error('startNodeAgent: at least one node is required');
  mkdirSync(join(workdir, 'pods'), { recursive: true });
  const api = makeClient(await credentialsFrom(opts));
  const nodeNames = new Set(nodes.map((n) => n.name));
  const ipPrefix = opts.ipPrefix ?? `127.${10 + Math.floor(Math.random() * 240)}`;
  let ipCounter = 1;
  const allocIp = () => {
    ipCounter++;
    if ((ipCounter & 255) === 0 || (ipCounter & 255) === 255) ipCounter += 2;
    return `${ipPrefix}.${ipCounter >> 8}.${ipCounter & 255}`;
  };
  const hostsJson = join(workdir, 'hosts.json');
  const hostsFile = join(workdir, 'hosts');
  writeFileSync(hostsJson, '{}');
  writeFileSync(hostsFile, '');

  /** uid -> pod runtime state */
  const pods = new Map();
  /** "ns/name" -> log file of the latest pod of that name (kept after deletion) */
  const logFiles = new Map();
  let stopped = false;
  const errors = [];
  const report = (where, e) => {
    if (stopped) return;
    const msg = `[node-agent] ${where}: ${e?.message ?? e}`;
    errors.push(msg);
    if (errors.length > 50) errors.shift();
    log(msg);
  };

  // ---- nodes ------------------------------------------------------------------------
  function nodeStatus(n, ready = true, reason = 'KubeletReady') {
    const res = { cpu: n.cpu ?? '8', memory: n.memory ?? '32Gi', pods: n.pods ?? '110', 'ephemeral-storage': '100Gi' };
    if (n.gpus > 0) res['nvidia.com/gpu'] = String(n.gpus);
    const t = now();
    return {
      capacity: res,
      allocatable: res,
      conditions: [
        { type: 'Ready', status: ready ? 'True' : 'Unknown', reason, message: `node agent: ${reason}`, lastHeartbeatTime: t, lastTransitionTime: t },
        ...['MemoryPressure', 'DiskPressure', 'PIDPressure'].map((type) => ({ type, status: 'False', reason: `KubeletHasNo${type}`, lastHeartbeatTime: t, lastTransitionTime: t })),
      ],
      addresses: [
        { type: 'InternalIP', address: '127.0.0.1' },
        { type: 'Hostname', address: n.name },
      ],
      nodeInfo: {
        architecture: process.arch === 'x64' ? 'amd64' : process.arch, operatingSystem: 'linux', kernelVersion: '', osImage: 'finetune node agent',
        containerRuntimeVersion: 'local-process://1', kubeletVersion: 'v0.0.0-node-agent', kubeProxyVersion: '', machineID: '', systemUUID: '', bootID: '',
      },
    };
  }

  async function registerNode(n) {
    const labels = { 'kubernetes.io/hostname': n.name, 'kubernetes.io/os': 'linux', 'kubernetes.io/arch': process.arch === 'x64' ? 'amd64' : process.arch, ...(n.labels ?? {}) };
    const taints = (n.taints ?? []).map((t) => ({ key: t.key, value: t.value, effect: t.effect ?? 'NoSchedule' }));
    try {
      await api.post('/api/v1/nodes', { apiVersion: 'v1', kind: 'Node', metadata: { name: n.name, labels }, spec: { taints }, status: nodeStatus(n) });
    } catch (e) {
      if (e.status !== 409) throw e;
    }
    // Labels/taints as asked for; drop the not-ready taint that TaintNodesByCondition adds
    // on create (no node lifecycle controller runs to remove it).
    for (let i = 0; ; i++) {
      const cur = await api.get(`/api/v1/nodes/${enc(n.name)}`);
      cur.metadata.labels = { ...(cur.metadata.labels ?? {}), ...labels };
      cur.spec.taints = taints;
      try {
        await api.put(`/api/v1/nodes/${enc(n.name)}`, cur);
        break;
      } catch (e) {
        if (e.status !== 409 || i > 10) throw e;
      }
    }
    await api.smp(`/api/v1/nodes/${enc(n.name)}/status`, { status: nodeStatus(n) });
  }

  async function heartbeat() {
    for (const n of nodes) {
      const t = now();
      await api
        .smp(`/api/v1/nodes/${enc(n.name)}/status`, { status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', lastHeartbeatTime: t }] } })
        .catch((e) => report(`heartbeat ${n.name}`, e));
    }
  }

  for (const n of nodes) await registerNode(n);
  const hbTimer = setInterval(heartbeat, heartbeatMs);

  // ---- name resolution -----------------------------------------------------------------
  let lastHosts = '{}';
  function updateHosts(list) {
    const map = {};
    const add = (pod, ip) => {
      const { hostname, subdomain } = pod.spec ?? {};
      if (!ip || !hostname || !subdomain) return;
      map[`${hostname}.${subdomain}.${pod.metadata.namespace}.svc`.toLowerCase()] = ip;
    };
    for (const p of list) if (!['Succeeded', 'Failed'].includes(p.status?.phase)) add(p, p.status?.podIP);
    // Our own pods: known before their status write lands.
    for (const s of pods.values()) if (!s.done) add(s.pod, s.ip);
    const text = JSON.stringify(map, Object.keys(map).sort());
    if (text === lastHosts) return;
    lastHosts = text;
    const tmp = `${hostsJson}.tmp`;
    writeFileSync(tmp, text);
    renameSync(tmp, hostsJson);
    const lines = Object.entries(map).map(([name, ip]) => `${ip}\t${name} ${name}.cluster.local`);
    writeFileSync(`${hostsFile}.tmp`, lines.join('\n') + '\n');
    renameSync(`${hostsFile}.tmp`, hostsFile);
  }

  // ---- pod status ------------------------------------------------------------------------
  function queueStatus(s, status) {
    s.chain = s.chain.then(async () => {
      if (s.deleted) return;
      for (let i = 0; i < 5; i++) {
        try {
          await api.smp(`${podPath(s.ns, s.name)}/status`, { metadata: { uid: s.uid }, status });
          return;
        } catch (e) {
          if (e.status === 404 || e.status === 409 || stopped) return;
          if (i === 4) report(`status ${s.ns}/${s.name}`, e);
          await sleep(200);
        }
      }
    });
    return s.chain;
  }

  function conditions(s, { ready, reason }) {
    const t = now();
    const c = (type, status, r) => ({ type, status, lastProbeTime: null, lastTransitionTime: t, ...(r ? { reason: r } : {}) });
    return [
      c('PodReadyToStartContainers', 'True'),
      c('Initialized', 'True'),
      c('ContainersReady', ready ? 'True' : 'False', ready ? undefined : reason),
      c('Ready', ready ? 'True' : 'False', ready ? undefined : reason),
    ];
  }

  function containerStatus(s, state, ready) {
    return [{ name: s.container.name, image: s.container.image ?? '', imageID: '', containerID: s.pid ? `local-process://${s.pid}` : '', ready, started: !!state.running, restartCount: s.restartCount, state, ...(s.lastState ? { lastState: s.lastState } : {}) }];
  }

  function runningStatus(s) {
    return {
      phase: 'Running', hostIP: '127.0.0.1', hostIPs: [{ ip: '127.0.0.1' }], podIP: s.ip, podIPs: [{ ip: s.ip }], startTime: s.startTime,
      conditions: conditions(s, { ready: s.ready, reason: 'ContainersNotReady' }),
      containerStatuses: containerStatus(s, { running: { startedAt: s.startedAt } }, s.ready),
    };
  }

  // ---- materializing a pod -----------------------------------------------------------
  async function getObj(kind, ns, name) {
    try {
      return await api.get(`/api/v1/namespaces/${enc(ns)}/${kind}/${enc(name)}`);
    } catch (e) {
      if (e.status === 404) return undefined;
      throw e;
    }
  }
  const decode = (kind, obj, key) => {
    if (kind === 'secrets') return obj.data?.[key] !== undefined ? Buffer.from(obj.data[key], 'base64') : undefined;
    if (obj.data?.[key] !== undefined) return Buffer.from(obj.data[key]);
    return obj.binaryData?.[key] !== undefined ? Buffer.from(obj.binaryData[key], 'base64') : undefined;
  };
  const configError = (msg) => Object.assign(new Error(msg), { configError: true });

  async function buildEnv(s) {
    const { pod, container } = s;
    const ns = pod.metadata.namespace;
    const env = {};
    const cache = new Map();
    const lookup = async (kind, name) => {
      const k = `${kind}/${name}`;
      if (!cache.has(k)) cache.set(k, await getObj(kind, ns, name));
      return cache.get(k);
    };
    for (const from of container.envFrom ?? []) {
      const ref = from.configMapRef ?? from.secretRef;
      const kind = from.configMapRef ? 'configmaps' : 'secrets';
      const obj = await lookup(kind, ref.name);
      if (!obj) {
        if (ref.optional) continue;
        throw configError(`${kind.slice(0, -1)} "${ref.name}" not found`);
      }
      for (const key of Object.keys({ ...(obj.data ?? {}), ...(obj.binaryData ?? {}) })) env[(from.prefix ?? '') + key] = decode(kind, obj, key).toString();
    }
    for (const e of container.env ?? []) {
      if (e.value !== undefined || !e.valueFrom) {
        env[e.name] = expand(e.value ?? '', env);
        continue;
      }
      const vf = e.valueFrom;
      if (vf.secretKeyRef || vf.configMapKeyRef) {
        const ref = vf.secretKeyRef ?? vf.configMapKeyRef;
        const kind = vf.secretKeyRef ? 'secrets' : 'configmaps';
        const obj = await lookup(kind, ref.name);
        const val = obj && decode(kind, obj, ref.key);
        if (val === undefined) {
          if (ref.optional) continue;
          throw configError(obj ? `couldn't find key ${ref.key} in ${kind.slice(0, -1)} ${ns}/${ref.name}` : `${kind.slice(0, -1)} "${ref.name}" not found`);
        }
        env[e.name] = val.toString();
      } else if (vf.fieldRef) {
        const fp = vf.fieldRef.fieldPath;
        const m = /^metadata\.(labels|annotations)\['(.*)'\]$/.exec(fp);
        const fields = {
          'metadata.name': pod.metadata.name, 'metadata.namespace': ns, 'metadata.uid': pod.metadata.uid,
          'spec.nodeName': pod.spec.nodeName, 'spec.serviceAccountName': pod.spec.serviceAccountName ?? '',
          'status.podIP': s.ip, 'status.podIPs': s.ip, 'status.hostIP': '127.0.0.1', 'status.hostIPs': '127.0.0.1',
        };
        if (m) env[e.name] = pod.metadata[m[1]]?.[m[2]] ?? '';
        else if (fp in fields) env[e.name] = fields[fp];
        else throw configError(`unsupported fieldRef ${fp}`);
      } else if (vf.resourceFieldRef) {
        const { resource } = vf.resourceFieldRef;
        const [kind, res] = resource.split('.');
        env[e.name] = String(container.resources?.[kind]?.[res] ?? (res === 'cpu' ? '8' : '34359738368'));
      }
    }
    return env;
  }

  async function materializeVolumes(s) {
    const { pod, container } = s;
    const ns = pod.metadata.namespace;
    const vdir = join(s.dir, 'volumes');
    const byName = new Map();
    for (const v of pod.spec.volumes ?? []) {
      if (v.hostPath) {
        // The node's own folder, as the kubelet mounts it: here the mount is that very path.
        const path = v.hostPath.path;
        if (v.hostPath.type === 'DirectoryOrCreate') mkdirSync(path, { recursive: true });
        else if (!existsSync(path)) throw configError(`volume ${v.name}: hostPath ${path} does not exist`);
        byName.set(v.name, path);
        continue;
      }
      const dir = join(vdir, v.name);
      mkdirSync(dir, { recursive: true });
      const src = v.configMap ?? v.secret;
      if (src) {
        const kind = v.configMap ? 'configmaps' : 'secrets';
        const name = v.configMap ? src.name : src.secretName;
        const obj = await getObj(kind, ns, name);
        if (!obj) {
          if (src.optional) continue;
          throw configError(`${kind.slice(0, -1)} "${name}" not found (volume ${v.name})`);
        }
        const keys = Object.keys({ ...(obj.data ?? {}), ...(obj.binaryData ?? {}) });
        const items = src.items ?? keys.map((key) => ({ key, path: key }));
        for (const it of items) {
          const val = decode(kind, obj, it.key);
          if (val === undefined) {
            if (src.optional) continue;
            throw configError(`key ${it.key} not found in ${kind.slice(0, -1)} ${name}`);
          }
          const file = join(dir, it.path);
          mkdirSync(dirname(file), { recursive: true });
          writeFileSync(file, val, { mode: it.mode ?? src.defaultMode ?? 0o644 });
        }
      } else if (!v.emptyDir) {
        throw configError(`volume ${v.name}: only configMap, secret, emptyDir and hostPath volumes are supported`);
      }
      byName.set(v.name, dir);
    }
    const mounts = [];
    for (const m of container.volumeMounts ?? []) {
      const dir = byName.get(m.name);
      if (!dir) continue; // optional source that did not exist
      mounts.push({ mountPath: m.mountPath, hostPath: m.subPath ? join(dir, m.subPath) : dir });
    }
    // The kubelet mounts an empty file at terminationMessagePath for the container's last words.
    s.terminationFile = join(s.dir, 'termination-log');
    writeFileSync(s.terminationFile, '');
    mounts.push({ mountPath: container.terminationMessagePath ?? '/dev/termination-log', hostPath: s.terminationFile });
    // Longest mountPath first, so /a/b wins over /a.
    return mounts.sort((a, b) => b.mountPath.length - a.mountPath.length);
  }

  // ---- running -------------------------------------------------------------------------
  async function startPod(pod) {
    const uid = pod.metadata.uid;
    const s = {
      uid, pod, ns: pod.metadata.namespace, name: pod.metadata.name, container: pod.spec.containers[0],
      ip: pod.spec.hostNetwork ? '127.0.0.1' : allocIp(), dir: join(workdir, 'pods', `${pod.metadata.namespace}_${pod.metadata.name}_${uid.slice(0, 8)}`),
      chain: Promise.resolve(), restartCount: 0, startTime: now(), ready: false, done: false, deleted: false, terminating: false,
      child: undefined, pid: undefined, exited: undefined,
    };
    pods.set(uid, s);
    mkdirSync(s.dir, { recursive: true });
    s.logFile = join(s.dir, `${s.container.name}.log`);
    logFiles.set(`${s.ns}/${s.name}`, s.logFile);
    log(`[node-agent] ${s.ns}/${s.name} -> ${pod.spec.nodeName} ip ${s.ip}`);
    launch(s).catch((e) => report(`start ${s.ns}/${s.name}`, e));
  }

  async function launch(s) {
    let env;
    let mounts;
    try {
      mounts = await materializeVolumes(s);
      env = await buildEnv(s);
    } catch (e) {
      if (!e.configError) throw e;
      // Like the kubelet: stay Pending with a waiting reason, retry later.
      await queueStatus(s, {
        phase: 'Pending', hostIP: '127.0.0.1', podIP: s.ip, podIPs: [{ ip: s.ip }], startTime: s.startTime,
        conditions: conditions(s, { ready: false, reason: 'ContainersNotReady' }),
        containerStatuses: containerStatus(s, { waiting: { reason: 'CreateContainerConfigError', message: e.message } }, false),
      });
      if (!s.terminating && !stopped) s.retryTimer = setTimeout(() => launch(s).catch((err) => report(`start ${s.ns}/${s.name}`, err)), 1000);
      return;
    }
    if (s.terminating || stopped) return;
    const c = s.container;
    let argv = [...(c.command ?? []), ...(c.args ?? [])].map((a) => rewriteMounts(expand(a, env), mounts));
    if (!c.command?.length && !argv.length) {
      await finish(s, { exitCode: 128, reason: 'StartError', message: 'no command: images are not run, a container needs command (or args)' });
      return;
    }
    if (argv[0] === 'ftjob') argv = [process.execPath, FTJOB, ...argv.slice(1)];
    // Run as an image runs it: the executable script itself, so its `env -S node …` shebang counts.
    else if (argv[0] === 'ftjob-worker') argv[0] = FTJOB_WORKER;
    else if (argv[0] === 'node') argv[0] = process.execPath;
    for (const k of Object.keys(env)) env[k] = rewriteMounts(env[k], mounts);
    const hookOpt = `--import="${pathToFileURL(HOOK).href}"`;
    const procEnv = {
      PATH: process.env.PATH, HOME: process.env.HOME ?? '/root', HOSTNAME: s.pod.spec.hostname ?? s.name,
      FT_POD_IP: s.ip, FT_POD_DIR: s.dir, FT_HOSTS_JSON: hostsJson, FT_HOSTS_FILE: hostsFile,
      ...env,
    };
    procEnv.NODE_OPTIONS = [env.NODE_OPTIONS, hookOpt].filter(Boolean).join(' ');
    const cwd = c.workingDir ? rewriteMounts(c.workingDir, mounts) : s.dir;
    mkdirSync(cwd, { recursive: true });
    updateHosts([]);
    await run(s, argv, procEnv, cwd);
  }

  async function run(s, argv, procEnv, cwd) {
    const fd = openSync(s.logFile, 'a');
    let child;
    try {
      child = spawn(argv[0], argv.slice(1), { cwd, env: procEnv, stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    s.child = child;
    s.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const spawned = await new Promise((resolve) => {
      child.once('spawn', () => resolve(true));
      child.once('error', (e) => resolve(e));
    });
    if (spawned !== true) {
      await finish(s, { exitCode: 128, reason: 'StartError', message: String(spawned.message) });
      return;
    }
    s.pid = child.pid;
    s.startedAt = now();
    const probe = s.container.readinessProbe;
    s.ready = !probe;
    queueStatus(s, runningStatus(s));
    if (probe) probeLoop(s, child, probe);
    const { code, signal } = await s.exited;
    s.child = undefined;
    const exitCode = code ?? 128 + signalNumber(signal);
    const message = terminationMessage(s, exitCode) || (signal ? `killed by ${signal}` : '');
    const term = { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', ...(signal ? { signal: signalNumber(signal) } : {}), ...(message ? { message } : {}), startedAt: s.startedAt, finishedAt: now(), containerID: `local-process://${s.pid}` };
    if (s.terminating || stopped) return;
    const policy = s.pod.spec.restartPolicy ?? 'Always';
    if (policy === 'Always' || (policy === 'OnFailure' && exitCode !== 0)) {
      s.lastState = { terminated: term };
      s.restartCount++;
      s.ready = false;
      const backoff = Math.min(10_000, 500 * 2 ** Math.min(5, s.restartCount - 1));
      await queueStatus(s, {
        phase: 'Running', conditions: conditions(s, { ready: false, reason: 'ContainersNotReady' }),
        containerStatuses: containerStatus(s, { waiting: { reason: 'CrashLoopBackOff', message: `back-off ${backoff} ms restarting failed container` } }, false),
      });
      await sleep(backoff);
      if (!s.terminating && !stopped) await run(s, argv, procEnv, cwd);
      return;
    }
    await finish(s, term);
  }

  /**
   * As the kubelet: what the container wrote to its terminationMessagePath (at most 4096 bytes),
   * or, with terminationMessagePolicy FallbackToLogsOnError, the end of its log when it failed
   * without writing one (the last 80 lines, at most 2048 bytes).
   */
  function terminationMessage(s, exitCode) {
    const read = (file) => {
      try {
        return readFileSync(file, 'utf8');
      } catch {
        return '';
      }
    };
    const written = read(s.terminationFile).slice(0, 4096);
    if (written.trim() || exitCode === 0 || s.container.terminationMessagePolicy !== 'FallbackToLogsOnError') return written;
    return read(s.logFile).split('\n').slice(-81).join('\n').slice(-2048);
  }

  async function finish(s, term) {
    s.done = true;
    s.ready = false;
    const phase = term.exitCode === 0 ? 'Succeeded' : 'Failed';
    await queueStatus(s, {
      phase, hostIP: '127.0.0.1', podIP: s.ip, podIPs: [{ ip: s.ip }], startTime: s.startTime,
      conditions: conditions(s, { ready: false, reason: 'PodCompleted' }),
      containerStatuses: containerStatus(s, { terminated: term }, false),
    });
    updateHosts([]);
  }

  function probeLoop(s, child, probe) {
    const periodMs = Math.min(1000, (probe.periodSeconds ?? 10) * 1000);
    const ports = Object.fromEntries((s.container.ports ?? []).filter((p) => p.name).map((p) => [p.name, p.containerPort]));
    const check = () => {
      const spec = probe.tcpSocket ?? probe.httpGet;
      if (!spec) return Promise.resolve(true); // exec/grpc probes: ready once running
      const port = typeof spec.port === 'string' && !/^\d+$/.test(spec.port) ? ports[spec.port] : Number(spec.port);
      const host = spec.host ?? s.ip;
      if (probe.tcpSocket) {
        return new Promise((resolve) => {
          const sock = net.connect({ host, port, timeout: 1000 }, () => {
            sock.destroy();
            resolve(true);
          });
          sock.on('error', () => resolve(false));
          sock.on('timeout', () => (sock.destroy(), resolve(false)));
        });
      }
      return new Promise((resolve) => {
        const req = http.get({ host, port, path: spec.path ?? '/', timeout: 1000 }, (res) => {
          res.resume();
          resolve(res.statusCode >= 200 && res.statusCode < 400);
        });
        req.on('error', () => resolve(false));
        req.on('timeout', () => (req.destroy(), resolve(false)));
      });
    };
    (async () => {
      await sleep((probe.initialDelaySeconds ?? 0) * 1000);
      while (s.child === child && !stopped && !s.terminating) {
        const ok = await check();
        if (s.child !== child || stopped || s.terminating) return;
        if (ok !== s.ready) {
          s.ready = ok;
          queueStatus(s, runningStatus(s));
        }
        await sleep(periodMs);
      }
    })().catch((e) => report(`probe ${s.ns}/${s.name}`, e));
  }

  /** SIGTERM to the process group, SIGKILL after graceMs. Resolves once it has exited. */
  async function kill(s, graceMs) {
    clearTimeout(s.retryTimer);
    const child = s.child;
    if (!child) return;
    const sig = (signal) => {
      try {
        process.kill(-child.pid, signal);
      } catch {
        try {
          child.kill(signal);
        } catch {}
      }
    };
    sig('SIGTERM');
    const timer = setTimeout(() => sig('SIGKILL'), graceMs);
    await s.exited;
    clearTimeout(timer);
    // Leftover children in the group, if any.
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  }

  async function terminate(s, pod) {
    if (s.terminating) return;
    s.terminating = true;
    const grace = pod ? pod.metadata.deletionGracePeriodSeconds ?? pod.spec.terminationGracePeriodSeconds ?? 30 : 0;
    log(`[node-agent] killing ${s.ns}/${s.name} (grace ${grace}s)`);
    await kill(s, grace * 1000);
    s.done = true;
    updateHosts([]);
    if (pod) {
      // Confirm the deletion, as the kubelet does: the object goes away only now.
      await s.chain;
      await api.del(podPath(s.ns, s.name), { kind: 'DeleteOptions', apiVersion: 'v1', gracePeriodSeconds: 0, preconditions: { uid: s.uid } }).catch((e) => {
        if (e.status !== 404 && e.status !== 409) report(`delete ${s.ns}/${s.name}`, e);
      });
    }
    s.deleted = true;
    pods.delete(s.uid);
  }

  // ---- the loop ------------------------------------------------------------------------
  async function sync() {
    const list = (await api.get('/api/v1/pods')).items;
    const seen = new Set();
    for (const pod of list) {
      if (!nodeNames.has(pod.spec.nodeName)) continue;
      const uid = pod.metadata.uid;
      seen.add(uid);
      const s = pods.get(uid);
      if (pod.metadata.deletionTimestamp) {
        if (s) terminate(s, pod).catch((e) => report(`terminate ${pod.metadata.name}`, e));
        else if (!['Succeeded', 'Failed'].includes(pod.status?.phase)) {
          // Never started by us (e.g. after an agent restart): confirm the deletion.
          api.del(podPath(pod.metadata.namespace, pod.metadata.name), { gracePeriodSeconds: 0, preconditions: { uid } }).catch(() => {});
        }
        continue;
      }
      if (!s && !['Succeeded', 'Failed'].includes(pod.status?.phase)) await startPod(pod);
    }
    // Gone without a graceful deletion (force delete): just kill the process.
    for (const s of pods.values()) if (!seen.has(s.uid) && !s.terminating) terminate(s, undefined).catch((e) => report(`kill ${s.name}`, e));
    updateHosts(list);
  }

  let loopDone;
  const loop = (async () => {
    while (!stopped) {
      await sync().catch((e) => report('sync', e));
      await sleep(pollMs);
    }
  })();
  loopDone = loop;

  return {
    nodes: [...nodeNames],
    workdir,
    hostsJson,
    hostsFile,
    errors,
    /** Local runtime info of a pod run by this agent (undefined if not known). */
    pod(namespace, name) {
      for (const s of pods.values()) {
        if (s.ns === namespace && s.name === name) return { uid: s.uid, ip: s.ip, pid: s.child?.pid, dir: s.dir, logFile: s.logFile, running: !!s.child, restartCount: s.restartCount };
      }
      return undefined;
    },
    /** The container's stdout+stderr so far (also kept after the pod is gone). */
    podLog(namespace, name) {
      const file = logFiles.get(`${namespace}/${name}`);
      try {
        return file ? readFileSync(file, 'utf8') : undefined;
      } catch {
        return undefined;
      }
    },
    async stop({ graceMs = 5000 } = {}) {
      if (stopped) return;
      stopped = true;
      clearInterval(hbTimer);
      await loopDone;
      await Promise.all([...pods.values()].map((s) => kill(s, graceMs).catch(() => {})));
      await Promise.all(
        nodes.map((n) =>
          api.smp(`/api/v1/nodes/${enc(n.name)}/status`, { status: { conditions: [{ type: 'Ready', status: 'Unknown', reason: 'NodeStatusUnknown', message: 'node agent stopped', lastHeartbeatTime: now() }] } }).catch(() => {}),
        ),
      );
      api.close();
    },
  };
}

export { rewriteMounts, expand };
