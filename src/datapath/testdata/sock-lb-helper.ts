/**
 * The processes of src/datapath/sock-lb.privileged.test.ts, each run inside
 * a network namespace with `nsenter --net=`:
 *
 *   server <json>  backends: TCP listeners that answer every connection with
 *                  their own address and close; UDP sockets that answer every
 *                  datagram with their own address. Says {type:"ready"} over
 *                  IPC, answers {type:"counts"} with how many connections and
 *                  datagrams each address got.
 *   client <json>  a list of operations run one after the other, the results
 *                  printed as one JSON line on stdout, then exit. The test
 *                  starts it inside the cgroup the socket LB is attached to.
 *     {op:"tcp", host, port, n}          n connections: what answered (the
 *                                        backend's address), getpeername
 *                                        (remoteAddress/remotePort), or the
 *                                        error code and how long it took
 *     {op:"udp", host, port, n}          one unconnected socket, n datagrams:
 *                                        each answer's payload and source
 *                                        (recvmsg's address)
 *     {op:"udp-connected", host, port}   connect(), one datagram: getpeername
 *                                        and the answer
 */
import net from 'node:net';
import dgram from 'node:dgram';

interface Listen {
  addr: string;
  port: number;
}

function server(cfg: { tcp: Listen[]; udp: Listen[] }): void {
  const counts: Record<string, number> = {};
  const bump = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
  let pending = cfg.tcp.length + cfg.udp.length;
  const ready = () => {
    if (--pending === 0) process.send!({ type: 'ready' });
  };
  for (const l of cfg.tcp) {
    const s = net.createServer((c) => {
      bump(`tcp ${l.addr}`);
      c.on('error', () => undefined);
      c.end(`${l.addr}\n`);
    });
    s.listen({ host: l.addr, port: l.port }, ready);
  }
  for (const l of cfg.udp) {
    const s = dgram.createSocket(l.addr.includes(':') ? 'udp6' : 'udp4');
    s.on('message', (_m, rinfo) => {
      bump(`udp ${l.addr}`);
      s.send(l.addr, rinfo.port, rinfo.address);
    });
    s.bind(l.port, l.addr, ready);
  }
  process.on('message', (m: { type: string }) => {
    if (m.type === 'counts') process.send!({ type: 'counts', counts });
  });
}

type Op =
  | { op: 'tcp'; host: string; port: number; n: number; timeoutMs?: number }
  | { op: 'udp'; host: string; port: number; n: number; timeoutMs?: number }
  | { op: 'udp-connected'; host: string; port: number; timeoutMs?: number };

function tcpOnce(host: string, port: number, timeoutMs: number): Promise<Record<string, unknown>> {
  const start = Date.now();
  return new Promise((resolve) => {
    const c = net.connect({ host, port });
    let data = '';
    let peer: Record<string, unknown> = {};
    const t = setTimeout(() => {
      c.destroy();
      resolve({ error: 'TIMEOUT', ms: Date.now() - start });
    }, timeoutMs);
    c.on('connect', () => (peer = { remote: c.remoteAddress, remotePort: c.remotePort }));
    c.on('data', (d) => (data += d));
    c.on('end', () => {
      clearTimeout(t);
      resolve({ backend: data.trim(), ...peer });
    });
    c.on('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      resolve({ error: e.code, ms: Date.now() - start });
    });
  });
}

function udpMany(host: string, port: number, n: number, timeoutMs: number): Promise<Array<Record<string, unknown>>> {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const out: Array<Record<string, unknown>> = [];
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      s.close();
      resolve(out);
    };
    const t = setTimeout(() => {
      out.push({ error: 'TIMEOUT' });
      done();
    }, timeoutMs);
    s.on('message', (m, rinfo) => {
      out.push({ backend: m.toString(), from: rinfo.address, fromPort: rinfo.port });
      if (out.length === n) done();
      else send();
    });
    const send = () =>
      s.send(`ping ${out.length}`, port, host, (err) => {
        if (err) {
          out.push({ error: (err as NodeJS.ErrnoException).code });
          done();
        }
      });
    send();
  });
}

function udpConnected(host: string, port: number, timeoutMs: number): Promise<Record<string, unknown>> {
  const s = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      s.close();
      resolve({ error: 'TIMEOUT' });
    }, timeoutMs);
    s.on('message', (m) => {
      clearTimeout(t);
      const peer = s.remoteAddress();
      s.close();
      resolve({ backend: m.toString(), remote: peer.address, remotePort: peer.port });
    });
    s.connect(port, host, (err?: Error) => {
      if (err) {
        clearTimeout(t);
        s.close();
        return resolve({ error: (err as NodeJS.ErrnoException).code });
      }
      s.send('ping');
    });
  });
}

async function client(ops: Op[]): Promise<void> {
  const results: unknown[] = [];
  for (const o of ops) {
    // Generous: a loaded machine running many suites at once is slow to schedule.
    const timeoutMs = o.timeoutMs ?? 10_000;
    if (o.op === 'tcp') {
      const r: unknown[] = [];
      for (let i = 0; i < o.n; i++) r.push(await tcpOnce(o.host, o.port, timeoutMs));
      results.push(r);
    } else if (o.op === 'udp') results.push(await udpMany(o.host, o.port, o.n, timeoutMs));
    else results.push(await udpConnected(o.host, o.port, timeoutMs));
  }
  process.stdout.write(JSON.stringify(results) + '\n');
}

const [mode, json] = process.argv.slice(2);
if (mode === 'server') server(JSON.parse(json!));
else if (mode === 'client') void client(JSON.parse(json!));
else {
  process.stderr.write(`usage: sock-lb-helper server|client <json>\n`);
  process.exit(2);
}
