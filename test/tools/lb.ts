/**
 * Backends and clients for load-balancing tests, run inside pod namespaces:
 *   node lb.js serve NAME PORT           TCP and UDP on PORT (all addresses): a TCP
 *                                        connection gets "NAME\n" at once, then every
 *                                        line it sends echoed as "NAME LINE\n"; a UDP
 *                                        datagram gets "NAME" back
 *   node lb.js spread HOST PORT N tcp|udp  N new connections (TCP) or new sockets
 *                                        sending one datagram each (UDP), one after
 *                                        the other; prints one JSON object:
 *                                        {counts: {NAME: n}, failures, errors: {message: n},
 *                                         peers: [addresses the replies came from /
 *                                         the sockets were connected to]}
 *   node lb.js hold HOST PORT            one TCP connection: prints "NAME" when greeted,
 *                                        then sends a line every 100 ms and prints
 *                                        "echo NAME" for each answer, "closed" at the end
 */
import { createServer, connect } from 'node:net';
import { createSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';

const [mode, ...args] = process.argv.slice(2);

function serve(name: string, port: number): void {
  let ready = 0;
  const up = () => {
    if (++ready === 2) process.stdout.write('listening\n');
  };
  createServer((sock) => {
    sock.write(`${name}\n`);
    let buf = '';
    sock.on('data', (d) => {
      buf += d.toString();
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        sock.write(`${name} ${buf.slice(0, i)}\n`);
        buf = buf.slice(i + 1);
      }
    });
    sock.on('error', () => undefined);
  }).listen({ port, host: '::', ipv6Only: false }, up);
  const udp = createSocket({ type: 'udp6', ipv6Only: false });
  udp.on('message', (_msg, rinfo) => udp.send(name, rinfo.port, rinfo.address));
  udp.bind(port, '::', up);
}

interface Outcome {
  name?: string;
  peer?: string;
  error?: string;
}

function tcpOnce(host: string, port: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = connect({ host, port, timeout: 3000 });
    let got = '';
    sock.on('data', (d) => {
      got += d.toString();
      const i = got.indexOf('\n');
      if (i >= 0) {
        resolve({ name: got.slice(0, i), peer: sock.remoteAddress ?? '' });
        sock.destroy();
      }
    });
    sock.on('timeout', () => {
      resolve({ error: 'timeout' });
      sock.destroy();
    });
    sock.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

function udpOnce(host: string, port: number): Promise<Outcome> {
  return new Promise((resolve) => {
    const sock = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      resolve({ error: 'timeout' });
      sock.close();
    }, 3000);
    sock.on('message', (msg, rinfo) => {
      clearTimeout(timer);
      resolve({ name: msg.toString(), peer: rinfo.address });
      sock.close();
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve({ error: err.code ?? err.message });
      sock.close();
    });
    sock.send('hello', port, host);
  });
}

async function spread(host: string, port: number, n: number, proto: string): Promise<void> {
  const counts: Record<string, number> = {};
  const errors: Record<string, number> = {};
  const peers = new Set<string>();
  let failures = 0;
  for (let i = 0; i < n; i++) {
    const o = proto === 'udp' ? await udpOnce(host, port) : await tcpOnce(host, port);
    if (o.name !== undefined) {
      counts[o.name] = (counts[o.name] ?? 0) + 1;
      peers.add(o.peer ?? '');
    } else {
      failures++;
      errors[o.error ?? '?'] = (errors[o.error ?? '?'] ?? 0) + 1;
    }
  }
  process.stdout.write(JSON.stringify({ counts, failures, errors, peers: [...peers] }) + '\n');
}

function hold(host: string, port: number): void {
  const sock = connect({ host, port });
  let greeted = false;
  let buf = '';
  let n = 0;
  const timer = setInterval(() => {
    if (greeted) sock.write(`ping ${n++}\n`);
  }, 100);
  sock.on('data', (d) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      if (!greeted) {
        greeted = true;
        process.stdout.write(`${line}\n`);
      } else process.stdout.write(`echo ${line.split(' ')[0]}\n`);
    }
  });
  const end = () => {
    clearInterval(timer);
    process.stdout.write('closed\n');
    process.exit(0);
  };
  sock.on('close', end);
  sock.on('error', () => undefined);
}

if (mode === 'serve') serve(args[0]!, Number(args[1]));
else if (mode === 'spread') void spread(args[0]!, Number(args[1]), Number(args[2]), args[3] ?? 'tcp');
else if (mode === 'hold') hold(args[0]!, Number(args[1]));
else {
  process.stderr.write('usage: lb.js serve NAME PORT | spread HOST PORT N tcp|udp | hold HOST PORT\n');
  process.exit(2);
}
