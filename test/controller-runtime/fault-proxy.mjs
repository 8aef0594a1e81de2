// A TCP proxy that sits between a client and the real kube-apiserver and injects network
// faults. TLS passes through untouched (the serving certificate is for 127.0.0.1, whatever
// the port), so the client still authenticates the real server.
//
//   forward  bytes flow both ways (the default)
//   stall    connections stay open and new ones are accepted, but every byte is dropped in
//            both directions: a black hole, as after a silent network partition
//   refuse   open connections are destroyed and new ones are closed at once
//
// dropAll() destroys every proxied connection (both sides) and keeps forwarding new ones.
import { createServer, connect } from 'node:net';
import { readFileSync, writeFileSync } from 'node:fs';

export async function startFaultProxy(upstreamUrl) {
  const upstream = new URL(upstreamUrl);
  const upstreamPort = Number(upstream.port);
  /** @type {Set<{client: import('node:net').Socket, server: import('node:net').Socket}>} */
  const pairs = new Set();
  let mode = 'forward';
  const stats = { connections: 0, dropped: 0, bytesDropped: 0 };

  const destroyPair = (pair) => {
    pair.client.destroy();
    pair.server.destroy();
    pairs.delete(pair);
  };
  // One direction of a pair: forwards or drops according to the mode at the time each
  // chunk arrives, so a stall also freezes connections opened before it.
  const relay = (from, to) => {
    from.on('data', (chunk) => {
      if (mode === 'forward') to.write(chunk);
      else stats.bytesDropped += chunk.length;
    });
  };

  const server = createServer((client) => {
    stats.connections++;
    if (mode === 'refuse') return void client.destroy();
    const pair = { client, server: connect(upstreamPort, upstream.hostname) };
    pairs.add(pair);
    relay(pair.client, pair.server);
    relay(pair.server, pair.client);
    for (const socket of [pair.client, pair.server]) {
      socket.on('error', () => {}); // the other side's close or reset is the expected outcome
      socket.on('close', () => destroyPair(pair));
    }
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const url = `https://127.0.0.1:${server.address().port}`;

  return {
    url,
    stats,
    get mode() {
      return mode;
    },
    get open() {
      return pairs.size;
    },
    forward() {
      mode = 'forward';
    },
    stall() {
      mode = 'stall';
    },
    refuse() {
      mode = 'refuse';
      this.dropAll();
    },
    /** Destroys every proxied connection, as a crashing load balancer or NAT would. */
    dropAll() {
      stats.dropped += pairs.size;
      for (const pair of [...pairs]) destroyPair(pair);
    },
    async close() {
      for (const pair of [...pairs]) destroyPair(pair);
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Copies a kubeconfig with its server replaced by the proxy's address; returns the new path. */
export function kubeconfigThrough(kubeconfigPath, server, proxyUrl, outPath) {
  const text = readFileSync(kubeconfigPath, 'utf8');
  if (!text.includes(`server: ${server}`)) throw new Error(`${kubeconfigPath}: no 'server: ${server}' line to redirect`);
  writeFileSync(outPath, text.replaceAll(`server: ${server}`, `server: ${proxyUrl}`), { mode: 0o600 });
  return outPath;
}
