/**
 * The relay over loopback with real clients (fetch, curl, raw sockets) and a
 * real upstream: no steering needed, the test maps every connection's
 * "original destination" to its own server (the seam RelayOptions offers).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { L7Event, L7PolicyTable, ProxyFlow } from '../common/l7-policy.js';
import { Relay, plainUpstream } from './relay.js';

const FLOW: ProxyFlow = { srcIdentity: 1000, dstIdentity: 2000, srcEndpoint: 0, dstEndpoint: 7, egress: false, ingress: true };

function policy(revision: number, rules: L7PolicyTable['endpoints'][number]['entries'][number]['rules']): L7PolicyTable {
  return {
    revision,
    ruleNames: { 42: 'test ingress[0]' },
    endpoints: [{ endpointId: 7, entries: [{ direction: 'ingress', identity: 1000, firstPort: 1, lastPort: 65535, ruleId: 42, rules }] }],
  };
}

const RULES = [
  { method: 'POST', path: '/v1/request-landing' },
  { method: 'GET', path: '/ok/.*' },
  { method: 'GET', path: '/ws', headers: ['Upgrade: echo'] },
];

/** A raw client connection that collects everything it receives. */
class Raw {
  text = '';
  closed = false;
  readonly sock: net.Socket;
  constructor(port: number) {
    this.sock = net.connect(port, '127.0.0.1');
    this.sock.setEncoding('latin1');
    this.sock.on('data', (d: string) => (this.text += d));
    this.sock.on('close', () => (this.closed = true));
    this.sock.on('error', () => {});
  }
  async until(cond: () => boolean, ms = 3000): Promise<void> {
    const t0 = Date.now();
    while (!cond()) {
      if (Date.now() - t0 > ms) throw new Error(`timed out; got ${JSON.stringify(this.text.slice(0, 400))} closed=${this.closed}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  responses(): number {
    return this.text.split('HTTP/1.1 ').length - 1;
  }
}

describe('relay over loopback', () => {
  let upstream: http.Server;
  let upPort = 0;
  let relay: Relay;
  let server: net.Server;
  let port = 0;
  const events: L7Event[] = [];
  let received = 0;

  before(async () => {
    upstream = http.createServer((req, res) => {
      let n = 0;
      req.on('data', (d: Buffer) => {
        n += d.length;
        received += d.length;
      });
      req.on('end', () => {
        if (req.url === '/v1/request-landing') res.end(`Ship landed ${n}`);
        else res.end(`ok ${req.method} ${req.url}`);
      });
    });
    upstream.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
      socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\n');
      socket.on('data', (d: Buffer) => socket.write(`echo:${d.toString()}`));
      void req;
    });
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upPort = (upstream.address() as net.AddressInfo).port;
    relay = new Relay({
      flows: { lookup: () => FLOW },
      originalDestination: () => ({ address: '127.0.0.1', port: upPort, family: 4 }),
      connectUpstream: plainUpstream,
      headerTimeoutMs: 300,
    });
    relay.setPolicy(policy(1, RULES));
    relay.monitoring = true;
    relay.onEvent = (e) => events.push(e);
    server = relay.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as net.AddressInfo).port;
  });

  after(() => {
    relay.close();
    server.close();
    upstream.closeAllConnections();
    upstream.close();
  });

  it('fetch: allowed request reaches the upstream, denied gets 403 "Access denied"', async () => {
    const ok = await fetch(`http://127.0.0.1:${port}/v1/request-landing`, { method: 'POST', body: 'abc' });
    assert.equal(ok.status, 200);
    assert.equal(await ok.text(), 'Ship landed 3');
    const no = await fetch(`http://127.0.0.1:${port}/v1/exhaust-port`, { method: 'POST', body: 'abc' });
    assert.equal(no.status, 403);
    assert.equal(no.headers.get('content-type'), 'text/plain');
    assert.equal(await no.text(), 'Access denied');
  });

  it('curl: allow and deny', async () => {
    const run = promisify(execFile);
    const a = await run('curl', ['-s', '-w', ' %{http_code}', '-X', 'POST', '-d', 'xy', `http://127.0.0.1:${port}/v1/request-landing`]);
    assert.equal(a.stdout, 'Ship landed 2 200');
    const d = await run('curl', ['-s', '-w', ' %{http_code}', `http://127.0.0.1:${port}/v1/request-landing`]);
    assert.equal(d.stdout, 'Access denied 403');
  });

  it('bypass spellings are denied by a rule allowing only POST /v1/request-landing', async () => {
    for (const path of ['/v1/./exhaust-port', '/v1/%65xhaust-port', '/v1//exhaust-port', '/v1/request-landing/../exhaust-port']) {
      const c = new Raw(port);
      c.sock.write(`POST ${path} HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\n\r\n`);
      await c.until(() => c.text.includes('Access denied'));
      assert.match(c.text, /^HTTP\/1.1 403 Forbidden\r\n/);
      c.sock.destroy();
    }
    // and an encoded unreserved character of an allowed path is allowed
    const c = new Raw(port);
    c.sock.write('POST /v1/request-%6Canding HTTP/1.1\r\nHost: api\r\nContent-Length: 0\r\n\r\n');
    await c.until(() => c.text.includes('ok POST /v1/request-%6Canding'), 3000); // forwarded unchanged
    assert.match(c.text, /^HTTP\/1.1 200 /);
    c.sock.destroy();
  });

  it('keep-alive: allowed then denied then allowed on one connection', async () => {
    const c = new Raw(port);
    c.sock.write('POST /v1/request-landing HTTP/1.1\r\nHost: api\r\nContent-Length: 1\r\n\r\nx');
    await c.until(() => c.responses() === 1 && c.text.includes('Ship landed 1'));
    c.sock.write('GET /v1/request-landing HTTP/1.1\r\nHost: api\r\n\r\n');
    await c.until(() => c.text.includes('Access denied'));
    c.sock.write('GET /ok/3 HTTP/1.1\r\nHost: api\r\n\r\n');
    await c.until(() => c.text.includes('ok GET /ok/3'));
    assert.equal(c.closed, false);
    c.sock.destroy();
  });

  it('pipelined requests are judged one by one and answered in order', async () => {
    const c = new Raw(port);
    c.sock.write(
      'GET /ok/1 HTTP/1.1\r\nHost: api\r\n\r\n' +
        'GET /no/2 HTTP/1.1\r\nHost: api\r\n\r\n' +
        'POST /v1/request-landing HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n' +
        'DELETE /ok/4 HTTP/1.1\r\nHost: api\r\nContent-Length: 2\r\n\r\nzz' +
        'GET /ok/5 HTTP/1.1\r\nHost: api\r\n\r\n',
    );
    c.sock.end();
    await c.until(() => c.closed);
    const order = [...c.text.matchAll(/ok GET \/ok\/\d|Access denied|Ship landed \d/g)].map((m) => m[0]);
    assert.deepEqual(order, ['ok GET /ok/1', 'Access denied', 'Ship landed 3', 'Access denied', 'ok GET /ok/5']);
  });

  it('a 20 MB chunked upload streams through (the upstream has bytes before the client is done)', async () => {
    const c = new Raw(port);
    const before = received;
    const mb = Buffer.alloc(1 << 20, 0x61);
    const chunk = Buffer.concat([Buffer.from(`${mb.length.toString(16)}\r\n`), mb, Buffer.from('\r\n')]);
    c.sock.write('POST /v1/request-landing HTTP/1.1\r\nHost: api\r\nTransfer-Encoding: chunked\r\n\r\n');
    c.sock.write(chunk);
    // The client stops here until the upstream saw its first megabyte: only a streaming proxy gets that far.
    await c.until(() => received - before >= mb.length, 5000);
    for (let i = 1; i < 20; i++) if (!c.sock.write(chunk)) await new Promise((r) => c.sock.once('drain', r));
    c.sock.write('0\r\n\r\n');
    await c.until(() => c.text.includes(`Ship landed ${20 * mb.length}`), 20000);
    c.sock.destroy();
  });

  it('Upgrade: allowed becomes a raw pipe after 101; denied gets 403', async () => {
    const c = new Raw(port);
    c.sock.write('GET /ws HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    await c.until(() => c.text.includes('\r\n\r\n'));
    assert.match(c.text, /^HTTP\/1.1 101 /);
    c.sock.write('ping\x00\xff');
    await c.until(() => c.text.includes('echo:ping'));
    c.sock.destroy();
    const d = new Raw(port);
    d.sock.write('GET /ws-other HTTP/1.1\r\nHost: api\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n');
    await d.until(() => d.text.includes('Access denied'));
    assert.match(d.text, /^HTTP\/1.1 403 /);
    d.sock.destroy();
  });

  it('an incomplete head gets 408 after the header timeout, and the connection closes', async () => {
    const c = new Raw(port);
    c.sock.write('GET /ok/1 HTTP/1.1\r\nHost: a');
    await c.until(() => c.closed, 3000);
    assert.match(c.text, /^HTTP\/1.1 408 /);
  });

  it('malformed requests get 400 and the connection closes: bad line, CL+TE, duplicate CL, bare LF', async () => {
    const bad = [
      'GET /ok/1 HTTP/1.1 extra\r\nHost: a\r\n\r\n',
      'POST /v1/request-landing HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
      'POST /v1/request-landing HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc',
      'GET /ok/1 HTTP/1.1\nHost: a\r\n\r\n',
      'GET /ok/1 HTTP/1.1\r\n\r\n',
      'GET /a%zz HTTP/1.1\r\nHost: a\r\n\r\n',
    ];
    for (const text of bad) {
      const c = new Raw(port);
      c.sock.write(text + 'GET /ok/2 HTTP/1.1\r\nHost: a\r\n\r\n');
      await c.until(() => c.closed);
      assert.match(c.text, /^HTTP\/1.1 400 /, JSON.stringify(text));
      assert.equal(c.responses(), 1, 'nothing after the 400');
    }
  });

  it('a rule change applies to the next request of an open connection without closing it', async () => {
    const c = new Raw(port);
    c.sock.write('GET /ok/1 HTTP/1.1\r\nHost: api\r\n\r\n');
    await c.until(() => c.text.includes('ok GET /ok/1'));
    relay.setPolicy(policy(2, [{ method: 'GET', path: '/other' }]));
    c.sock.write('GET /ok/1 HTTP/1.1\r\nHost: api\r\n\r\n');
    await c.until(() => c.text.includes('Access denied'));
    relay.setPolicy(policy(3, RULES));
    c.sock.write('GET /ok/2 HTTP/1.1\r\nHost: api\r\n\r\n');
    await c.until(() => c.text.includes('ok GET /ok/2'));
    assert.equal(c.closed, false);
    c.sock.destroy();
  });

  it('events describe each request', async () => {
    events.length = 0;
    await (await fetch(`http://127.0.0.1:${port}/v1/request-landing?q=1`, { method: 'POST', body: 'z' })).text();
    await (await fetch(`http://127.0.0.1:${port}/v1/%65xhaust-port`, { method: 'POST', body: 'z' })).text();
    assert.equal(events.length, 2);
    const [a, d] = events as [L7Event, L7Event];
    assert.equal(a.verdict, 'allow');
    assert.equal(a.status, 200);
    assert.equal(a.method, 'POST');
    assert.equal(a.path, '/v1/request-landing');
    assert.equal(a.host, `127.0.0.1:${port}`);
    assert.equal(a.ruleId, 42);
    assert.equal(a.srcIdentity, 1000);
    assert.equal(a.dstEndpoint, 7);
    assert.equal(a.destination, `127.0.0.1:${upPort}`);
    assert.match(a.source, /^127\.0\.0\.1:\d+$/);
    assert.ok(a.latencyMs > 0 && a.latencyMs < 5000);
    assert.ok(Math.abs(a.time - Date.now()) < 5000);
    assert.equal(d.verdict, 'deny');
    assert.equal(d.status, 403);
    assert.equal(d.path, '/v1/exhaust-port');
    assert.equal(d.ruleId, 0);
  });

  it('no flow entry: the connection is reset and counted as an error', async () => {
    const noFlow = new Relay({ flows: { lookup: () => undefined }, connectUpstream: plainUpstream });
    const s = noFlow.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const c = new Raw((s.address() as net.AddressInfo).port);
    c.sock.write('GET /ok/1 HTTP/1.1\r\nHost: a\r\n\r\n');
    await c.until(() => c.closed);
    assert.equal(c.text, '');
    assert.equal(noFlow.stats.errors, 1);
    noFlow.close();
    s.close();
  });

  it('an upstream that refuses connections gives 502', async () => {
    const dead = new Relay({
      flows: { lookup: () => FLOW },
      originalDestination: () => ({ address: '127.0.0.1', port: 1, family: 4 }),
      connectUpstream: plainUpstream,
    });
    dead.setPolicy(policy(1, RULES));
    const s = dead.createServer();
    await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
    const res = await fetch(`http://127.0.0.1:${(s.address() as net.AddressInfo).port}/ok/1`);
    assert.equal(res.status, 502);
    dead.close();
    s.close();
  });
});
