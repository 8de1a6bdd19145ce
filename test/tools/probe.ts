/**
 * A traffic tool for policy tests, run inside pod (or world) namespaces:
 *   node probe.js serve PORT...            TCP and UDP echo on each port, all addresses
 *   node probe.js probe TIMEOUT_MS JSON     tries every target of JSON
 *                                           ([{host, port, proto: "tcp"|"udp"}]) at once and
 *                                           prints one JSON array of booleans: did the
 *                                           echo come back within TIMEOUT_MS
 *   node probe.js flood HOST PORT MS        UDP datagrams to HOST:PORT every MS milliseconds,
 *                                           one flow, until killed
 *   node probe.js stream HOST PORT          a long-lived TCP connection: sends a line every
 *                                           100 ms, prints "echo N" for each one echoed,
 *                                           "closed: why" when it ends (no echo for 1 s,
 *                                           an error, or the peer closing)
 */
import { createServer, connect } from 'node:net';
import { createSocket } from 'node:dgram';

interface Target {
  host: string;
  port: number;
  proto: 'tcp' | 'udp';
}

function serve(ports: number[]): void {
  let ready = 0;
  const up = () => {
    if (++ready === ports.length * 2) process.stdout.write('listening\n');
  };
  for (const port of ports) {
    createServer((sock) => {
      sock.on('error', () => undefined);
      sock.pipe(sock);
    }).listen({ port, host: '::', ipv6Only: false }, up);
    const udp = createSocket({ type: 'udp6', ipv6Only: false });
    udp.on('message', (msg, rinfo) => udp.send(msg, rinfo.port, rinfo.address));
    udp.bind(port, '::', up);
  }
}

function probeTcp(t: Target, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const message = `probe ${process.pid}\n`;
    const sock = connect({ host: t.host, port: t.port });
    let got = '';
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('connect', () => sock.write(message));
    sock.on('data', (d) => {
      got += d;
      if (got === message) done(true);
    });
    sock.on('error', () => done(false));
  });
}

function probeUdp(t: Target, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = createSocket(t.host.includes(':') ? 'udp6' : 'udp4');
    const message = Buffer.from(`probe ${process.pid}`);
    let resend: NodeJS.Timeout | undefined;
    const done = (ok: boolean) => {
      clearTimeout(timer);
      clearInterval(resend);
      sock.close();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.on('message', (msg) => {
      if (msg.equals(message)) done(true);
    });
    sock.on('error', () => done(false));
    // UDP may lose the first datagram to neighbour resolution: send a few.
    const send = () => sock.send(message, t.port, t.host);
    sock.connect(t.port, t.host, () => {
      send();
      resend = setInterval(send, Math.max(50, timeoutMs / 5));
    });
  });
}

async function probe(timeoutMs: number, targets: Target[]): Promise<void> {
  const results = await Promise.all(targets.map((t) => (t.proto === 'tcp' ? probeTcp(t, timeoutMs) : probeUdp(t, timeoutMs))));
  process.stdout.write(JSON.stringify(results) + '\n');
}

function stream(host: string, port: number): void {
  const sock = connect({ host, port });
  let sent = 0;
  let buffered = '';
  let lastEcho = Date.now();
  const finish = (why: string) => {
    clearInterval(tick);
    process.stdout.write(`closed: ${why}\n`);
    sock.destroy();
    process.exit(0);
  };
  const tick = setInterval(() => {
    if (Date.now() - lastEcho > 1000) finish('no echo for 1 s');
    if (sock.readyState === 'open') sock.write(`line ${++sent}\n`);
  }, 100);
  sock.on('data', (d) => {
    buffered += d;
    let nl;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      lastEcho = Date.now();
      process.stdout.write(`echo ${line.slice(5)}\n`);
    }
  });
  sock.on('error', (err) => finish(err.message));
  sock.on('end', () => finish('peer closed'));
}

function flood(host: string, port: number, intervalMs: number): void {
  const sock = createSocket(host.includes(':') ? 'udp6' : 'udp4');
  const message = Buffer.from('flood');
  sock.on('error', () => undefined); // a denied datagram is the point, not a failure
  sock.connect(port, host, () => setInterval(() => sock.send(message), intervalMs));
}

const [mode, ...args] = process.argv.slice(2);
if (mode === 'serve' && args.length > 0) serve(args.map(Number));
else if (mode === 'probe' && args.length === 2) void probe(Number(args[0]), JSON.parse(args[1]!) as Target[]);
else if (mode === 'flood' && args.length === 3) flood(args[0]!, Number(args[1]), Number(args[2]));
else if (mode === 'stream' && args.length === 2) stream(args[0]!, Number(args[1]));
else {
  process.stderr.write('usage: probe.js serve PORT... | probe TIMEOUT_MS JSON | flood HOST PORT MS | stream HOST PORT\n');
  process.exit(2);
}
