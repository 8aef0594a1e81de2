// Preloaded into every Node.js pod process by the node agent (NODE_OPTIONS=--import ...).
// There is no cluster DNS: names ending in `.svc` / `.svc.cluster.local` are answered from
// the JSON map {"<name>": "<ip>"} in $FT_HOSTS_JSON, which the agent rewrites (atomically)
// whenever pods get addresses. The file is re-read on each lookup, so late peers appear
// without restarting the process. Other names go to the normal resolver.
import dns from 'node:dns';
import { readFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';

const FILE = process.env.FT_HOSTS_JSON;

function clusterName(host) {
  if (typeof host !== 'string') return false;
  const h = host.toLowerCase().replace(/\.$/, '');
  return h.endsWith('.svc') || h.endsWith('.svc.cluster.local');
}

function resolveFromMap(host) {
  const h = host.toLowerCase().replace(/\.$/, '');
  try {
    const map = JSON.parse(readFileSync(FILE, 'utf8'));
    return map[h] ?? map[h.replace(/\.cluster\.local$/, '')];
  } catch {
    return undefined;
  }
}

function notFound(host) {
  const err = new Error(`getaddrinfo ENOTFOUND ${host}`);
  err.code = 'ENOTFOUND';
  err.errno = dns.NOTFOUND;
  err.syscall = 'getaddrinfo';
  err.hostname = host;
  return err;
}

if (FILE) {
  const origLookup = dns.lookup;
  dns.lookup = function lookup(hostname, options, callback) {
    if (typeof options === 'function') {
      callback = options;
      options = {};
    }
    if (!clusterName(hostname)) return origLookup.call(this, hostname, options, callback);
    const opts = typeof options === 'number' ? { family: options } : options ?? {};
    const ip = resolveFromMap(hostname);
    process.nextTick(() => {
      if (!ip) callback(notFound(hostname));
      else if (opts.all) callback(null, [{ address: ip, family: 4 }]);
      else callback(null, ip, 4);
    });
    return {};
  };
  const origPromiseLookup = dns.promises.lookup;
  dns.promises.lookup = async function lookup(hostname, options) {
    if (!clusterName(hostname)) return origPromiseLookup.call(this, hostname, options);
    const opts = typeof options === 'number' ? { family: options } : options ?? {};
    const ip = resolveFromMap(hostname);
    if (!ip) throw notFound(hostname);
    return opts.all ? [{ address: ip, family: 4 }] : { address: ip, family: 4 };
  };
  syncBuiltinESMExports();
}
