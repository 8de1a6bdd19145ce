/**
 * A tiny TCP peer for tests, run inside pod namespaces:
 *   node tcp.js server PORT          echo server on all addresses (IPv4 and IPv6)
 *   node tcp.js client HOST PORT     connects, sends a line, expects it back, exits 0
 */
import { createServer, connect } from 'node:net';

const [mode, a, b] = process.argv.slice(2);

if (mode === 'server') {
  const server = createServer((sock) => sock.pipe(sock));
  server.listen({ port: Number(a), host: '::', ipv6Only: false }, () => process.stdout.write('listening\n'));
} else if (mode === 'client') {
  const message = `hello from ${process.pid}\n`;
  const sock = connect({ host: a!, port: Number(b), timeout: 5000 });
  let got = '';
  sock.on('data', (d) => {
    got += d;
    if (got === message) {
      process.stdout.write(`echoed via ${sock.localAddress} -> ${sock.remoteAddress}\n`);
      sock.end();
      process.exitCode = 0;
    }
  });
  sock.on('connect', () => sock.write(message));
  sock.on('timeout', () => {
    process.stderr.write('timeout\n');
    process.exit(1);
  });
  sock.on('error', (err) => {
    process.stderr.write(`${err.message}\n`);
    process.exit(1);
  });
  process.exitCode = 1;
} else {
  process.stderr.write('usage: tcp.js server PORT | client HOST PORT\n');
  process.exit(2);
}
