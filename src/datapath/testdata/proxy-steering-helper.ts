/**
 * The processes of src/datapath/proxy-steering.privileged.test.ts, each run
 * inside a network namespace with `nsenter --net=` and talking to the test
 * over Node's IPC channel:
 *
 *   node <json>    the node's side: attaches both endpoints' programs (their
 *                  maps are the pinned ones the test made), sets up the proxy
 *                  routing, and runs a minimal transparent L7 "proxy": a
 *                  listener on 127.0.0.1 that reports every accepted
 *                  connection (its local address and port, the flow map's
 *                  entry) and relays it upstream through a socket marked
 *                  TND_MARK_FROM_PROXY. Commands: close the listener, make a
 *                  connection from the node (marked or not), remove the
 *                  proxy routing.
 *   server <json>  a pod's TCP servers: every connection reported, every
 *                  chunk answered as "<port>:<chunk>".
 *   client <json>  one connection from a pod: connect, send, report the
 *                  first answer (or the error / a timeout), exit.
 */
import net from 'node:net';
import { execFileSync } from 'node:child_process';
import { TndMark } from '../../bpf/generated/wire.js';
import { ensureProxyRouting, removeProxyRouting } from '../../link/proxy-routing.js';
import { markedTcpSocket, transparentListener } from '../../sys/socket.js';
import { loadAndAttachEndpointPrograms, type EndpointDatapathSpec } from '../endpoint-programs.js';
import { NodeMaps } from '../node-maps.js';
import { PinPaths } from '../paths.js';
import { ProxyFlowMap } from '../proxy-maps.js';

const send = (msg: unknown) => process.send!(msg);

interface ConnectOptions {
  addr: string;
  port: number;
  message: string;
  mark?: number;
  timeoutMs: number;
}

/** One connection: the first answer, or why there was none. */
function tryConnect(o: ConnectOptions): Promise<{ ok: boolean; data?: string; error?: string }> {
  return new Promise((resolve) => {
    const sock = o.mark ? new net.Socket({ fd: markedTcpSocket(4, o.mark) }) : new net.Socket();
    const done = (r: { ok: boolean; data?: string; error?: string }) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(r);
    };
    const timer = setTimeout(() => done({ ok: false, error: 'timeout' }), o.timeoutMs);
    sock.on('error', (err: NodeJS.ErrnoException) => done({ ok: false, error: err.code ?? err.message }));
    sock.on('data', (d) => done({ ok: true, data: d.toString() }));
    sock.on('close', () => done({ ok: false, error: 'closed' }));
    sock.connect(o.port, o.addr, () => sock.write(o.message));
  });
}

async function nodeSide(cfg: { bpffs: string; node: string; endpoints: Array<EndpointDatapathSpec & { device: string }> }): Promise<void> {
  const maps = NodeMaps.open(new PinPaths(cfg.bpffs, cfg.node));
  for (const ep of cfg.endpoints) {
    const [link] = JSON.parse(execFileSync('ip', ['-j', 'link', 'show', ep.device], { encoding: 'utf8' })) as Array<{ ifindex: number }>;
    loadAndAttachEndpointPrograms(maps, { ...ep, ifindex: link!.ifindex });
  }
  await ensureProxyRouting();
  await ensureProxyRouting(); // idempotent: a second call changes nothing
  const flows = ProxyFlowMap.openPinned(maps.proxyFlowsPath);
  const relays = new Set<net.Socket>();
  const server = net.createServer((client) => {
    relays.add(client);
    const tuple = { family: 4 as const, srcAddr: client.remoteAddress!, srcPort: client.remotePort!, dstAddr: client.localAddress!, dstPort: client.localPort! };
    send({ type: 'accepted', ...tuple, flow: flows.lookup(tuple) ?? null });
    const upstream = new net.Socket({ fd: markedTcpSocket(4, TndMark.TND_MARK_FROM_PROXY) });
    relays.add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', close);
    upstream.on('error', close);
    upstream.connect(tuple.dstPort, tuple.dstAddr, () => {
      client.pipe(upstream);
      upstream.pipe(client);
    });
  });
  await new Promise<void>((resolve) => server.listen({ fd: transparentListener('127.0.0.1', 0, { reusePort: true }) }, resolve));
  process.on('message', async (m: { cmd: string } & Partial<ConnectOptions>) => {
    if (m.cmd === 'closeListener') {
      server.close();
      send({ type: 'closed' });
    } else if (m.cmd === 'removeRouting') {
      await removeProxyRouting();
      await removeProxyRouting(); // idempotent: nothing left to remove
      send({ type: 'removed' });
    } else if (m.cmd === 'connect') {
      send({ type: 'connected', ...(await tryConnect(m as ConnectOptions)) });
    }
  });
  send({ type: 'ready', port: (server.address() as net.AddressInfo).port });
}

function serverSide(cfg: { ports: number[] }): void {
  let listening = 0;
  for (const port of cfg.ports) {
    net
      .createServer((sock) => {
        send({ type: 'conn', port, remote: sock.remoteAddress });
        sock.on('data', (d) => sock.write(`${port}:${d.toString()}`));
        sock.on('error', () => undefined);
      })
      .listen(port, '0.0.0.0', () => {
        if (++listening === cfg.ports.length) send({ type: 'ready' });
      });
  }
}

const [mode, json] = process.argv.slice(2);
const cfg = JSON.parse(json ?? '{}');
if (mode === 'node') await nodeSide(cfg);
else if (mode === 'server') serverSide(cfg);
else if (mode === 'client') {
  send({ type: 'result', ...(await tryConnect(cfg as ConnectOptions)) });
  process.disconnect();
} else throw new Error(`unknown mode ${mode}`);
