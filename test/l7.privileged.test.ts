/**
 * HTTP-aware (L7) policy end to end on one node: the seed's deathstar
 * scenario with real HTTP clients (curl, Node's fetch, raw sockets) in pod
 * namespaces, flows steered by the datapath into the agent's proxy workers,
 * what the monitor shows, attempts to get past the proxy, socket redirection
 * of the proxy's connections, and the proxy dying under load.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Topology, REPO, must, sh, sleep, type Node, type Pod } from './harness/topology.js';

const HTTP_TOOL = join(REPO, 'dist', 'test', 'tools', 'http.js');
const SERVER = join(REPO, 'dist', 'examples', 'deathstar-server.js');
const L3L4 = join(REPO, 'examples', 'policies', 'deathstar-l3-l4.yaml');
const L7 = join(REPO, 'examples', 'policies', 'deathstar-l7.yaml');

interface CurlResult {
  /** curl's exit status: 0 answered, 28 timed out (the datapath dropped the connection), 7 refused/reset. */
  code: number;
  status: number;
  body: string;
}

/** One request with curl from a pod; --path-as-is keeps dot segments as typed. */
async function curl(from: Pod, method: string, url: string, extra: string[] = []): Promise<CurlResult> {
  const r = await sh(['curl', '-s', '--path-as-is', '--max-time', '3', '-X', method, '-w', '\n%{http_code}', ...extra, url], { netns: from.netnsPath, timeoutMs: 10_000 });
  const nl = r.stdout.lastIndexOf('\n');
  return { code: r.code, status: Number(r.stdout.slice(nl + 1)) || 0, body: r.stdout.slice(0, Math.max(nl, 0)) };
}

const url = (pod: Pod, path: string) => `http://${pod.ipv4}${path}`;

/** A keep-alive connection driven line by line: one request per send(). */
function session(topo: Topology, from: Pod, to: Pod): { send(line: string): Promise<Record<string, any>>; close(): void } {
  const child = topo.spawnIn(from.netnsPath, [process.execPath, HTTP_TOOL, 'session', to.ipv4, '80'], { stdin: true });
  const lines: string[] = [];
  const waiters: Array<(line: string) => void> = [];
  let buf = '';
  child.stdout!.on('data', (d: Buffer) => {
    buf += d;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      const w = waiters.shift();
      if (w) w(line);
      else lines.push(line);
    }
  });
  return {
    send: (line) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no response to ${line}`)), 8000);
        waiters.push((l) => {
          clearTimeout(timer);
          resolve(JSON.parse(l) as Record<string, any>);
        });
        child.stdin!.write(`${line}\n`);
      }),
    close: () => child.stdin!.end(),
  };
}

/** The agent's socket redirection counters (status), or undefined when it is off. */
async function redirection(node: Node): Promise<{ joined: number; redirected: number; usualWay: number } | undefined> {
  return (JSON.parse((await node.cli(['status', '-o', 'json'])).stdout) as { proxyRedirect?: { joined: number; redirected: number; usualWay: number } }).proxyRedirect;
}

async function importPolicy(node: Node, file: string): Promise<void> {
  const r = await node.cli(['policy', 'import', file]);
  assert.equal(r.code, 0, r.stderr);
}

describe('L7 HTTP policy through the proxy', () => {
  let topo: Topology;
  let node: Node;
  let deathstars: Pod[];
  let tiefighter: Pod;
  let xwing: Pod;

  before(async () => {
    topo = Topology.create();
    node = await topo.addNode();
    deathstars = [
      await topo.addPod(node, 'deathstar1', 'org=empire,class=deathstar'),
      await topo.addPod(node, 'deathstar2', 'org=empire,class=deathstar'),
    ];
    tiefighter = await topo.addPod(node, 'tiefighter', 'org=empire,class=tiefighter');
    xwing = await topo.addPod(node, 'xwing', 'org=alliance,class=xwing');
    for (const [i, pod] of deathstars.entries()) {
      const server = topo.spawnIn(pod.netnsPath, [process.execPath, SERVER, '80', `deathstar-${i + 1}`]);
      await new Promise((resolve) => server.stdout!.once('data', resolve));
    }
  });

  after(async () => {
    await topo?.dispose();
  });

  test('the demo scenario: no policy, then L3/L4, then L7', async () => {
    await node.cli(['policy', 'delete', '--all']);
    for (const ds of deathstars) {
      for (const ship of [tiefighter, xwing]) {
        const r = await curl(ship, 'POST', url(ds, '/v1/request-landing'));
        assert.deepEqual([r.code, r.status, r.body], [0, 200, 'Ship landed\n'], `${ship.name} -> ${ds.name} without policy`);
      }
    }

    await importPolicy(node, L3L4);
    const drops = node.monitor(['--type', 'drop']);
    await sleep(200);
    for (const ds of deathstars) {
      assert.equal((await curl(tiefighter, 'POST', url(ds, '/v1/request-landing'))).status, 200);
      const x = await curl(xwing, 'POST', url(ds, '/v1/request-landing'));
      assert.equal(x.code, 28, `the xwing's connection is dropped (curl timed out): ${JSON.stringify(x)}`);
    }
    // Without L7 rules, the tiefighter can still hit the exhaust port: the L3/L4 policy does not look at requests.
    assert.equal((await curl(tiefighter, 'PUT', url(deathstars[0]!, '/v1/exhaust-port'))).status, 503);
    await drops.stop(300);
    const xwingDrops = drops.events.filter((e) => e.source === xwing.ipv4 && e.reason === 'policy denied');
    assert.ok(xwingDrops.length > 0, `monitor shows the xwing's drops: ${JSON.stringify(drops.events)}`);
    assert.equal(xwingDrops[0]!.rule ?? 'default deny', 'default deny');

    await importPolicy(node, L7);
    for (const ds of deathstars) {
      const landing = await curl(tiefighter, 'POST', url(ds, '/v1/request-landing'));
      assert.deepEqual([landing.status, landing.body], [200, 'Ship landed\n'], `tiefighter lands on ${ds.name}`);
      const exhaust = await curl(tiefighter, 'PUT', url(ds, '/v1/exhaust-port'));
      assert.deepEqual([exhaust.status, exhaust.body], [403, 'Access denied'], `the exhaust port of ${ds.name} is protected`);
      assert.equal((await curl(xwing, 'POST', url(ds, '/v1/request-landing'))).code, 28, 'the xwing stays dropped at L3/L4');
    }
  });

  test('Node fetch and curl agree; allowed requests reach the service unchanged', async () => {
    await importPolicy(node, L7);
    const fetched = JSON.parse(await must([process.execPath, HTTP_TOOL, 'fetch', url(deathstars[1]!, '/v1/request-landing'), 'POST'], { netns: tiefighter.netnsPath }));
    assert.deepEqual(fetched, { status: 200, body: 'Ship landed\n' });
    const denied = JSON.parse(await must([process.execPath, HTTP_TOOL, 'fetch', url(deathstars[1]!, '/v1/exhaust-port'), 'PUT'], { netns: tiefighter.netnsPath }));
    assert.deepEqual(denied, { status: 403, body: 'Access denied' });
    // A 1 MiB body goes through (streamed) to the service, which answers after reading it all.
    const big = await curl(tiefighter, 'POST', url(deathstars[1]!, '/v1/request-landing'), ['--data-binary', `@${bigFile(topo)}`, '-H', 'Transfer-Encoding: chunked']);
    assert.deepEqual([big.status, big.body], [200, 'Ship landed\n']);
  });

  test('keep-alive: each request judged on its own; a rule change reaches the next request without closing the connection', async () => {
    await importPolicy(node, L7);
    const s = session(topo, tiefighter, deathstars[0]!);
    try {
      const first = await s.send('POST /v1/request-landing');
      const second = await s.send('PUT /v1/exhaust-port');
      assert.deepEqual([first.status, first.body], [200, 'Ship landed\n']);
      assert.deepEqual([second.status, second.body], [403, 'Access denied']);
      assert.equal(second.port, first.port, 'same connection');

      // Now the empire also allows GET /v1; the open connection sees it on its next request.
      const wider = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: rule1}
spec:
  endpointSelector: {matchLabels: {org: empire, class: deathstar}}
  ingress:
  - fromEndpoints: [{matchLabels: {org: empire}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http:
        - {method: POST, path: /v1/request-landing}
        - {method: GET, path: /v1}`;
      const file = join(topo.dir, 'wider.yaml');
      writeFileSync(file, wider);
      const before = await s.send('GET /v1');
      assert.equal(before.status, 403);
      await importPolicy(node, file);
      const afterChange = await s.send('GET /v1');
      assert.equal(afterChange.status, 200, JSON.stringify(afterChange));
      assert.equal(afterChange.port, first.port, 'the connection survived the rule change');
      assert.equal((await s.send('PUT /v1/exhaust-port')).status, 403);
    } finally {
      s.close();
    }
  });

  test('socket redirection: the proxy legs carry requests socket to socket', async () => {
    await importPolicy(node, L7);
    const before = (await redirection(node))!;
    const s = session(topo, tiefighter, deathstars[0]!);
    try {
      for (let i = 0; i < 5; i++) assert.equal((await s.send('POST /v1/request-landing')).status, 200);
    } finally {
      s.close();
    }
    const after = (await redirection(node))!;
    // Client and accepted sockets, and upstream and backend ones unless a pooled upstream served.
    assert.ok(after.joined >= before.joined + 2, `sockets joined: ${JSON.stringify({ before, after })}`);
    // Each request: client -> proxy, proxy -> backend, backend -> proxy, proxy -> client.
    assert.ok(after.redirected >= before.redirected + 10, `messages redirected: ${JSON.stringify({ before, after })}`);
  });

  test('a keep-alive connection through the proxy is cut when the policy no longer steers it', async () => {
    await importPolicy(node, L7);
    const s = session(topo, tiefighter, deathstars[0]!);
    try {
      assert.equal((await s.send('POST /v1/request-landing')).status, 200);
      const before = await redirection(node);
      // The L3/L4 policy allows the tiefighter directly: the flow may not leave the proxy, so it is cut.
      const drops = node.monitor(['--type', 'drop']);
      await sleep(200);
      await importPolicy(node, L3L4);
      const reply: Record<string, unknown> = await s.send('POST /v1/request-landing').catch((err: Error) => ({ error: err.message }));
      assert.equal(reply.status, undefined, `no answer on the cut connection: ${JSON.stringify(reply)}`);
      await drops.stop(300);
      const cut = drops.events.filter((e) => e.source === tiefighter.ipv4 && e.reason === 'L7 redirect withdrawn from a proxied flow');
      assert.ok(cut.length > 0, `the endpoint programs cut the flow: ${JSON.stringify(drops.events)}`);
      if (before) assert.ok((await redirection(node))!.usualWay > before.usualWay, 'the client leg went back to TCP/IP, where it was judged');
    } finally {
      s.close();
    }
    // A new connection goes straight to the service now: no proxy, no 403.
    assert.equal((await curl(tiefighter, 'PUT', url(deathstars[0]!, '/v1/exhaust-port'))).status, 503);
  });

  test('no way around the proxy: dot segments, percent-encoding, slashes, smuggling, IPv6, other ports', async () => {
    await importPolicy(node, L7);
    const ds = deathstars[0]!;
    for (const path of ['/v1/./exhaust-port', '/v1/%65xhaust-port', '//v1//exhaust-port', '/v1/x/../exhaust-port', '/v1/request-landing/../exhaust-port']) {
      const r = await curl(tiefighter, 'PUT', url(ds, path));
      assert.deepEqual([r.status, r.body], [403, 'Access denied'], path);
    }
    // The landing path, normalised, is still the landing path: allowed, and passed on unchanged (the service does not normalise).
    const dotted = await curl(tiefighter, 'POST', url(ds, '/v1/./request-landing'));
    assert.deepEqual([dotted.status, dotted.body], [404, 'Not found\n']);

    // Request smuggling: an allowed request hiding a second one behind conflicting lengths.
    const smuggle = Buffer.from(
      'POST /v1/request-landing HTTP/1.1\r\nHost: ds\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nPUT /v1/exhaust-port HTTP/1.1\r\nHost: ds\r\n\r\n',
    ).toString('base64');
    const raw = JSON.parse(await must([process.execPath, HTTP_TOOL, 'raw', ds.ipv4, '80', smuggle], { netns: tiefighter.netnsPath }));
    assert.match(raw.text, /^HTTP\/1\.1 400 /, raw.text);
    assert.doesNotMatch(raw.text, /Panic/);
    const dupLength = Buffer.from('POST /v1/request-landing HTTP/1.1\r\nHost: ds\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n').toString('base64');
    assert.match(JSON.parse(await must([process.execPath, HTTP_TOOL, 'raw', ds.ipv4, '80', dupLength], { netns: tiefighter.netnsPath })).text, /^HTTP\/1\.1 400 /);

    // Another port of the deathstar: not in the policy, dropped at L3/L4 (a closed port would answer with a reset).
    assert.equal((await curl(tiefighter, 'PUT', `http://${ds.ipv4}:81/v1/exhaust-port`)).code, 28);

    // IPv6 to the same pod and port: there is no proxy path for it, so it is dropped, never delivered.
    const v6 = await sh(['curl', '-s', '--max-time', '3', '-X', 'PUT', `http://[${ds.ipv6}]/v1/exhaust-port`], { netns: tiefighter.netnsPath, timeoutMs: 10_000 });
    assert.notEqual(v6.code, 0, `IPv6 must not reach the service: ${v6.stdout}`);
    assert.doesNotMatch(v6.stdout, /Panic/);
  });

  test('L7 events in the monitor: one per request, with identities, endpoints, method, path, status, verdict, latency', async () => {
    await importPolicy(node, L7);
    const m = node.monitor(['--type', 'l7']);
    await sleep(300);
    await curl(tiefighter, 'POST', url(deathstars[0]!, '/v1/request-landing'));
    await curl(tiefighter, 'PUT', url(deathstars[0]!, '/v1/exhaust-port'));
    await sleep(300);
    await m.stop(300);
    const ids = JSON.parse((await node.cli(['endpoint', 'list', '-o', 'json'])).stdout) as Array<{ id: number; identity: number }>;
    const identityOf = (pod: Pod) => ids.find((e) => e.id === pod.id)!.identity;
    const mine = m.events.filter((e) => e.source === tiefighter.ipv4);
    assert.equal(mine.length, 2, JSON.stringify(m.events));
    const [allow, deny] = mine;
    for (const e of mine) {
      assert.equal(e.type, 'l7');
      assert.equal(e.destination, deathstars[0]!.ipv4);
      assert.equal(e.destinationPort, 80);
      assert.equal(e.sourceIdentity, identityOf(tiefighter));
      assert.equal(e.destinationIdentity, identityOf(deathstars[0]!));
      assert.equal(e.sourceEndpoint, tiefighter.id);
      assert.equal(e.destinationEndpoint, deathstars[0]!.id);
      assert.equal(typeof e.http.latencyMs, 'number');
    }
    assert.deepEqual([allow!.verdict, allow!.http.method, allow!.http.path, allow!.http.status], ['allow', 'POST', '/v1/request-landing', 200]);
    assert.equal(allow!.rule, 'rule1 ingress[0]');
    assert.deepEqual([deny!.verdict, deny!.http.method, deny!.http.path, deny!.http.status], ['deny', 'PUT', '/v1/exhaust-port', 403]);
    const text = await node.cli(['monitor', '--help']);
    assert.match(text.stdout + text.stderr, /l7/);
  });

  test('a killed proxy is restarted by the agent and judges the next request again', async () => {
    await importPolicy(node, L7);
    const before = (await node.client.status()).proxy!;
    assert.ok(before.workers.length >= 1, JSON.stringify(before));
    for (const w of before.workers) process.kill(w.pid, 'SIGKILL');
    const deadline = Date.now() + 15_000;
    let now = before;
    while (Date.now() < deadline) {
      now = (await node.client.status()).proxy!;
      const fresh = now.workers.filter((w) => w.ready && !before.workers.some((b) => b.pid === w.pid));
      if (fresh.length === before.workers.length) break;
      await sleep(100);
    }
    assert.equal(now.workers.filter((w) => w.ready).length, before.workers.length, `workers back: ${JSON.stringify(now)}`);
    assert.ok(now.restarts >= before.workers.length);
    assert.equal((await curl(tiefighter, 'POST', url(deathstars[0]!, '/v1/request-landing'))).status, 200);
    assert.equal((await curl(tiefighter, 'PUT', url(deathstars[0]!, '/v1/exhaust-port'))).status, 403);
  });

  test('without L7 rules no flow touches the proxy', async () => {
    await importPolicy(node, L3L4);
    await sleep(1500); // counters of earlier tests' connections arrive first (workers report once a second)
    const before = (await node.client.status()).proxy!;
    assert.equal((await curl(tiefighter, 'PUT', url(deathstars[0]!, '/v1/exhaust-port'))).status, 503);
    await sleep(1500); // workers report their counters once a second
    const afterStatus = (await node.client.status()).proxy!;
    assert.equal(afterStatus.connections, before.connections, 'the proxy saw no new connection');
  });
});

function bigFile(topo: Topology): string {
  const file = join(topo.dir, 'big.bin');
  writeFileSync(file, Buffer.alloc(1 << 20, 0x61));
  return file;
}
