/**
 * Services end to end on one node: pods reach a service address and the
 * datapath sends each new connection to a backend pod (at connect(), through
 * the agent's cgroup socket programs). Real pods, real servers, the CLI.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Topology, REPO, must, sleep, type Node, type Pod } from './harness/topology.js';

const LB_TOOL = join(REPO, 'dist', 'test', 'tools', 'lb.js');

interface Spread {
  counts: Record<string, number>;
  failures: number;
  errors: Record<string, number>;
  peers: string[];
}

interface ServiceView {
  id: number;
  activeBackends: number;
  backends: Array<{ address: string; port: number; state: string; connections: number }>;
}

describe('services: load balancing for pods', () => {
  let topo: Topology;
  let node: Node;
  let client: Pod;
  let backends: Pod[];

  async function spread(host: string, port: number, n: number, proto: 'tcp' | 'udp' = 'tcp', from: Pod = client): Promise<Spread> {
    const out = await must([process.execPath, LB_TOOL, 'spread', host, String(port), String(n), proto], { netns: from.netnsPath, timeoutMs: 120_000 });
    return JSON.parse(out) as Spread;
  }

  async function cli(args: string[]): Promise<string> {
    const r = await node.cli(args);
    assert.equal(r.code, 0, `tendril ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  }

  async function addService(args: string[]): Promise<ServiceView> {
    return JSON.parse(await cli(['service', 'add', ...args, '-o', 'json'])) as ServiceView;
  }

  async function getService(id: number): Promise<ServiceView> {
    return JSON.parse(await cli(['service', 'get', String(id), '-o', 'json'])) as ServiceView;
  }

  async function serve(pod: Pod, name: string, port: number): Promise<void> {
    const child = topo.spawnIn(pod.netnsPath, [process.execPath, LB_TOOL, 'serve', name, String(port)]);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${name} did not start`)), 10_000);
      child.stdout!.on('data', (d: Buffer) => {
        if (d.toString().includes('listening')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
  }

  before(async () => {
    topo = Topology.create();
    node = await topo.addNode();
    client = await topo.addPod(node, 'client', 'app=client');
    backends = [];
    for (let i = 0; i < 3; i++) backends.push(await topo.addPod(node, `backend${i}`, 'app=backend'));
    for (let i = 0; i < 3; i++) await serve(backends[i]!, `b${i}`, 8080);
    await serve(client, 'self', 8080);
  });

  after(async () => {
    await topo?.dispose();
  });

  test('new connections to a TCP service spread over its three backends; the socket sees the service address', async () => {
    const svc = await addService(['--frontend', '10.96.0.10:80/TCP', ...backends.flatMap((b) => ['--backend', `${b.ipv4}:8080`])]);
    const r = await spread('10.96.0.10', 80, 300);
    assert.equal(r.failures, 0, JSON.stringify(r.errors));
    for (const name of ['b0', 'b1', 'b2']) assert.ok((r.counts[name] ?? 0) >= 50, `${name} got ${r.counts[name]} of 300: ${JSON.stringify(r.counts)}`);
    assert.deepEqual(r.peers, ['10.96.0.10'], 'getpeername() answers the service address');
    const view = await getService(svc.id);
    assert.equal(view.activeBackends, 3);
    const total = view.backends.reduce((n, b) => n + b.connections, 0);
    assert.ok(total >= 300, `service get counts ${total} connections`);
  });

  test('a backend removed while a connection is open: that connection goes on, new ones avoid it', async () => {
    const svc = await addService(['--frontend', '10.96.0.20:80/TCP', ...backends.flatMap((b) => ['--backend', `${b.ipv4}:8080`])]);
    const held = topo.spawnIn(client.netnsPath, [process.execPath, LB_TOOL, 'hold', '10.96.0.20', '80']);
    const lines: string[] = [];
    held.stdout!.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
    for (let i = 0; i < 50 && lines.length === 0; i++) await sleep(100);
    const name = lines[0]!;
    assert.match(name, /^b[012]$/);
    const gone = backends[Number(name.slice(1))]!;
    await cli(['service', 'update', String(svc.id), '--remove-backend', `${gone.ipv4}:8080`]);
    const view = await getService(svc.id);
    assert.equal(view.activeBackends, 2);
    assert.equal(view.backends.find((b) => b.address === gone.ipv4)?.state, 'terminating');
    const r = await spread('10.96.0.20', 80, 100);
    assert.equal(r.failures, 0);
    assert.equal(r.counts[name], undefined, `the removed backend ${name} got new connections: ${JSON.stringify(r.counts)}`);
    const before = lines.filter((l) => l === `echo ${name}`).length;
    await sleep(500);
    const afterCount = lines.filter((l) => l === `echo ${name}`).length;
    assert.ok(afterCount > before, 'the open connection to the removed backend still carries data');
    assert.ok(!lines.includes('closed'));
    held.kill();
  });

  test('client-IP affinity keeps a client on one backend', async () => {
    await addService(['--frontend', '10.96.0.30:80/TCP', ...backends.flatMap((b) => ['--backend', `${b.ipv4}:8080`]), '--affinity', 'client-ip', '--affinity-timeout', '30s']);
    const r = await spread('10.96.0.30', 80, 60);
    assert.equal(r.failures, 0);
    assert.equal(Object.keys(r.counts).length, 1, JSON.stringify(r.counts));
  });

  test('hairpin: a pod reaches a service whose only backend is itself', async () => {
    await addService(['--frontend', '10.96.0.40:80/TCP', '--backend', `${client.ipv4}:8080`]);
    const r = await spread('10.96.0.40', 80, 5);
    assert.deepEqual(r.counts, { self: 5 });
  });

  test('a UDP service: datagrams spread over the backends and replies come from the service address', async () => {
    await addService(['--frontend', '10.96.0.53:53/UDP', ...backends.flatMap((b) => ['--backend', `${b.ipv4}:8080`])]);
    const r = await spread('10.96.0.53', 53, 150, 'udp');
    assert.equal(r.failures, 0, JSON.stringify(r.errors));
    for (const name of ['b0', 'b1', 'b2']) assert.ok((r.counts[name] ?? 0) >= 20, JSON.stringify(r.counts));
    assert.deepEqual(r.peers, ['10.96.0.53']);
  });

  test('an IPv6 service', async () => {
    await addService(['--frontend', '[fd10:96::10]:80/TCP', ...backends.flatMap((b) => ['--backend', `[${b.ipv6}]:8080`])]);
    const r = await spread('fd10:96::10', 80, 90);
    assert.equal(r.failures, 0, JSON.stringify(r.errors));
    assert.equal(Object.keys(r.counts).length, 3, JSON.stringify(r.counts));
  });

  test('a service without backends refuses connections at once instead of black-holing them', async () => {
    await addService(['--frontend', '10.96.0.60:80/TCP']);
    const t0 = Date.now();
    const r = await spread('10.96.0.60', 80, 3);
    assert.equal(r.failures, 3);
    assert.deepEqual(r.errors, { ECONNREFUSED: 3 });
    assert.ok(Date.now() - t0 < 2500, 'refused, not timed out');
  });

  test('bad input: one line, exit 1, nothing changed', async () => {
    const before = await cli(['service', 'list', '-o', 'json']);
    const cases: Array<[string[], RegExp]> = [
      [['service', 'add', '--frontend', `${backends[0]!.ipv4}:80/TCP`, '--backend', `${backends[1]!.ipv4}:8080`], /pod range/i],
      [['service', 'add', '--frontend', '10.96.0.10:80/TCP', '--backend', `${backends[1]!.ipv4}:8080`], /10\.96\.0\.10:80\/TCP/],
      [['service', 'add', '--frontend', '10.96.1.1:80/TCP', '--backend', '10.200.300.1:8080'], /10\.200\.300\.1/],
      [['service', 'add', '--frontend', '10.96.1.1:80/TCP', '--backend', `${backends[1]!.ipv4}:70000`], /70000/],
      [['service', 'add', '--frontend', '10.96.1.1:80/SCTP', '--backend', `${backends[1]!.ipv4}:8080`], /SCTP/],
      [['service', 'delete', '4242'], /4242/],
      [['service', 'update', '4242', '--add-backend', `${backends[1]!.ipv4}:8080`], /4242/],
    ];
    for (const [args, message] of cases) {
      const r = await node.cli(args);
      assert.equal(r.code, 1, `tendril ${args.join(' ')} exits 1: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.equal(await cli(['service', 'list', '-o', 'json']), before);
  });

  test('service delete: the address stops being translated', async () => {
    const svc = await addService(['--frontend', '10.96.0.70:80/TCP', '--backend', `${backends[0]!.ipv4}:8080`]);
    assert.deepEqual((await spread('10.96.0.70', 80, 2)).counts, { b0: 2 });
    await cli(['service', 'delete', String(svc.id)]);
    const list = JSON.parse(await cli(['service', 'list', '-o', 'json'])) as ServiceView[];
    assert.equal(list.find((s) => s.id === svc.id), undefined);
    const r = await spread('10.96.0.70', 80, 1);
    assert.equal(r.failures, 1);
  });
});
