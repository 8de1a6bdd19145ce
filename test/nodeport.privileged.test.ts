/**
 * Services reached from outside the node, end to end in namespaces: the
 * XDP load balancer on the node's world-facing device (agent
 * --lb-interface) answering NodePort, ExternalIP and port-map frontends in
 * SNAT mode, direct server return across two nodes of an underlay, a
 * service without backends refusing at once; and pods reaching a ClusterIP
 * service per packet (agent --no-socket-lb). Port maps' control plane
 * (created, listed, restored and removed with their endpoint; bad input)
 * needs no datapath work and always runs.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { Topology, REPO, must, sh, sleep, type Node, type Pod, type UnderlayMember, type World } from './harness/topology.js';

const LB_TOOL = join(REPO, 'dist', 'test', 'tools', 'lb.js');

interface Spread {
  counts: Record<string, number>;
  failures: number;
  errors: Record<string, number>;
  peers: string[];
}

interface ServiceView {
  id: number;
  type: string;
  frontend: string;
  name?: string;
  endpoint?: number;
  activeBackends: number;
  backends: Array<{ address: string; port: number; state: string; connections: number }>;
}


async function spread(netnsPath: string, host: string, port: number, n: number, proto: 'tcp' | 'udp' = 'tcp'): Promise<Spread> {
  const out = await must([process.execPath, LB_TOOL, 'spread', host, String(port), String(n), proto], { netns: netnsPath, timeoutMs: 180_000 });
  return JSON.parse(out) as Spread;
}

async function cli(node: Node, args: string[]): Promise<string> {
  const r = await node.cli(args);
  assert.equal(r.code, 0, `tendril ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

async function addService(node: Node, args: string[]): Promise<ServiceView> {
  return JSON.parse(await cli(node, ['service', 'add', ...args, '-o', 'json'])) as ServiceView;
}

async function serve(topo: Topology, pod: Pod, name: string, port: number): Promise<void> {
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

/** A pod attached with extra `endpoint add` flags (port maps). */
async function addPodWith(topo: Topology, node: Node, suffix: string, flags: string[]): Promise<Pod> {
  const name = await topo.addNamespace(suffix);
  const netnsPath = `/run/netns/${name}`;
  const ep = JSON.parse(await cli(node, ['endpoint', 'add', '--netns', netnsPath, ...flags, '-o', 'json'])) as { id: number; ipv4: string; ipv6: string };
  return { name, netnsPath, id: ep.id, ipv4: ep.ipv4, ipv6: ep.ipv6 };
}

/** Entries of the node's pinned frontend map (tnd_lb_services). */
async function frontendEntries(topo: Topology, node: Node): Promise<number> {
  const out = await must(['bpftool', '-j', 'map', 'dump', 'pinned', join(topo.bpffs, 'tendril', node.name, 'maps', 'tnd_lb_services')]);
  return (JSON.parse(out) as unknown[]).length;
}

describe('port maps: made, shown, restored and removed with their endpoint', () => {
  let topo: Topology;
  let node: Node;

  before(async () => {
    topo = Topology.create();
    node = await topo.addNode();
  });
  after(async () => {
    await topo?.dispose();
  });

  test('endpoint add --port-map: HostPort services named after the endpoint, in endpoint get/list and service list', async () => {
    const entries = await frontendEntries(topo, node);
    const pod = await addPodWith(topo, node, 'pm1', ['--port-map', '8080:80/TCP', '--port-map', '5353:53/udp']);
    const ep = JSON.parse(await cli(node, ['endpoint', 'get', String(pod.id), '-o', 'json'])) as { portMaps: unknown[] };
    assert.deepEqual(ep.portMaps, [
      { hostPort: 8080, containerPort: 80, protocol: 'TCP' },
      { hostPort: 5353, containerPort: 53, protocol: 'UDP' },
    ]);
    assert.match(await cli(node, ['endpoint', 'get', String(pod.id)]), /^Port maps: +8080:80\/TCP, 5353:53\/UDP$/m);
    assert.match(await cli(node, ['endpoint', 'list']), /8080:80\/TCP, 5353:53\/UDP/);
    const services = (JSON.parse(await cli(node, ['service', 'list', '-o', 'json'])) as ServiceView[]).filter((s) => s.endpoint === pod.id);
    assert.deepEqual(
      services.map((s) => [s.type, s.name, s.frontend, `${s.backends[0]!.address}:${s.backends[0]!.port}`]),
      [
        ['HostPort', `endpoint-${pod.id}`, '0.0.0.0:8080/TCP', `${pod.ipv4}:80`],
        ['HostPort', `endpoint-${pod.id}`, '[::]:8080/TCP', `${pod.ipv6}:80`],
        ['HostPort', `endpoint-${pod.id}`, '0.0.0.0:5353/UDP', `${pod.ipv4}:53`],
        ['HostPort', `endpoint-${pod.id}`, '[::]:5353/UDP', `${pod.ipv6}:53`],
      ],
    );
    assert.match(await cli(node, ['service', 'list']), new RegExp(`HostPort \\(endpoint-${pod.id}\\)`));
    assert.equal(await frontendEntries(topo, node), entries + 4, 'one nodeport frontend per map and family');

    // Not the service commands' to change: one line saying what to do.
    for (const args of [['service', 'delete', String(services[0]!.id)], ['service', 'update', String(services[0]!.id), '--add-backend', '10.200.1.99:80']]) {
      const r = await node.cli(args);
      assert.equal(r.code, 1, r.stderr);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`endpoint ${pod.id}.*tendril endpoint delete ${pod.id}`));
    }

    await cli(node, ['endpoint', 'delete', String(pod.id)]);
    const left = (JSON.parse(await cli(node, ['service', 'list', '-o', 'json'])) as ServiceView[]).filter((s) => s.endpoint === pod.id);
    assert.deepEqual(left, []);
    assert.equal(await frontendEntries(topo, node), entries);
  });

  test('port maps survive an agent restart, and go when their endpoint went while no agent ran', async () => {
    const entries = await frontendEntries(topo, node);
    const kept = await addPodWith(topo, node, 'pm2', ['--port-map', '8081:80']);
    const gone = await addPodWith(topo, node, 'pm3', ['--port-map', '8082:80/TCP']);
    const before = (JSON.parse(await cli(node, ['service', 'list', '-o', 'json'])) as ServiceView[]).filter((s) => s.type === 'HostPort');
    assert.equal(before.length, 4);
    const goneIf = (JSON.parse(await cli(node, ['endpoint', 'get', String(gone.id), '-o', 'json'])) as { hostIfname: string }).hostIfname;
    await node.agent!.kill('SIGTERM');
    await must(['ip', 'netns', 'del', gone.name]);
    // The kernel dismantles the namespace, and with it the veth, a moment later.
    for (let i = 0; i < 100 && (await node.exec(['ip', 'link', 'show', goneIf])).code === 0; i++) await sleep(50);
    await node.startAgent();
    const afterRestart = (JSON.parse(await cli(node, ['service', 'list', '-o', 'json'])) as ServiceView[]).filter((s) => s.type === 'HostPort');
    assert.deepEqual(
      afterRestart,
      before.filter((s) => s.endpoint === kept.id),
    );
    assert.equal(await frontendEntries(topo, node), entries + 2);
    // The freed host port is free again.
    const again = await addPodWith(topo, node, 'pm4', ['--port-map', '8082:80/TCP']);
    await cli(node, ['endpoint', 'delete', String(again.id)]);
    await cli(node, ['endpoint', 'delete', String(kept.id)]);
    assert.equal(await frontendEntries(topo, node), entries);
  });

  test('bad port maps: one line, exit 1, and neither the endpoint nor a service is created', async () => {
    const np = await addService(node, ['--frontend', '10.96.0.80:80/TCP', '--type', 'NodePort', '--node-port', '30080']);
    const holder = await addPodWith(topo, node, 'pm5', ['--port-map', '9090:80/TCP']);
    const endpointsBefore = await cli(node, ['endpoint', 'list', '-o', 'json']);
    const servicesBefore = await cli(node, ['service', 'list', '-o', 'json']);
    const entries = await frontendEntries(topo, node);
    const pod = await topo.addNamespace('pm-bad');
    const cases: Array<[string[], RegExp]> = [
      [['0:80/TCP'], /host port 0 is not a port/],
      [['65536:80/TCP'], /host port 65536 is not a port/],
      [['8080:0'], /container port 0 is not a port/],
      [['8080:80/SCTP'], /"SCTP" is not TCP or UDP/],
      [['8080-80'], /"8080-80" is not HOSTPORT:CONTAINERPORT/],
      [['8080:80/TCP', '8080:80/TCP'], /host port 8080\/TCP is mapped twice/],
      [['30080:80/TCP'], new RegExp(`host port 30080/TCP is used by service ${np.id} already`)],
      [['7070:80/TCP', '9090:80/TCP'], new RegExp(`host port 9090/TCP is used by a port map of endpoint ${holder.id} already`)],
    ];
    for (const [maps, message] of cases) {
      const args = ['endpoint', 'add', '--netns', `/run/netns/${pod}`, ...maps.flatMap((m) => ['--port-map', m])];
      const r = await node.cli(args);
      assert.equal(r.code, 1, `tendril ${args.join(' ')} exits 1: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.match(r.stderr, message);
    }
    assert.equal(await cli(node, ['endpoint', 'list', '-o', 'json']), endpointsBefore);
    assert.equal(await cli(node, ['service', 'list', '-o', 'json']), servicesBefore);
    assert.equal(await frontendEntries(topo, node), entries);
    assert.equal((await sh(['ip', 'link', 'show', 'eth0'], { netns: `/run/netns/${pod}` })).code, 1, 'no veth was left in the pod');
    await cli(node, ['endpoint', 'delete', String(holder.id)]);
    await cli(node, ['service', 'delete', String(np.id)]);
  });
});

describe('NodePort, ExternalIP and port maps from the outside world (XDP, SNAT)', () => {
  let topo: Topology;
  let node: Node;
  let world: World;
  let backends: Pod[];

  before(async () => {
    topo = Topology.create();
    node = await topo.addNode({ start: false });
    world = await topo.addWorld(node);
    node.extraArgs.push('--lb-interface', world.nodeDev);
    await node.startAgent();
    backends = [];
    for (let i = 0; i < 3; i++) backends.push(await topo.addPod(node, `backend${i}`, 'app=backend'));
    for (let i = 0; i < 3; i++) await serve(topo, backends[i]!, `b${i}`, 8080);
  });
  after(async () => {
    await topo?.dispose();
  });

  test('TCP NodePort: many connections from the world spread over three backends', async () => {
    await addService(node, ['--frontend', '10.96.1.10:80/TCP', '--type', 'NodePort', '--node-port', '30080', ...backends.flatMap((b) => ['--backend', `${b.ipv4}:8080`])]);
    // A connection completes only if the replies come from the address and port the client sent to.
    const r = await spread(world.netnsPath, world.nodeIPv4, 30080, 300);
    assert.equal(r.failures, 0, JSON.stringify(r.errors));
    for (const name of ['b0', 'b1', 'b2']) assert.ok((r.counts[name] ?? 0) >= 50, `${name} got ${r.counts[name]} of 300: ${JSON.stringify(r.counts)}`);
    assert.deepEqual(r.peers, [world.nodeIPv4]);
  });

  test('UDP NodePort: replies come from the node address', async () => {
    await addService(node, ['--frontend', '10.96.1.53:53/UDP', '--type', 'NodePort', '--node-port', '30053', ...backends.flatMap((b) => ['--backend', `${b.ipv4}:8080`])]);
    const r = await spread(world.netnsPath, world.nodeIPv4, 30053, 150, 'udp');
    assert.equal(r.failures, 0, JSON.stringify(r.errors));
    for (const name of ['b0', 'b1', 'b2']) assert.ok((r.counts[name] ?? 0) >= 20, JSON.stringify(r.counts));
    assert.deepEqual(r.peers, [world.nodeIPv4]);
  });

  test('IPv6 NodePort, TCP and UDP', async () => {
    await addService(node, ['--frontend', '[fd10:96::1:10]:80/TCP', '--type', 'NodePort', '--node-port', '30080', ...backends.flatMap((b) => ['--backend', `[${b.ipv6}]:8080`])]);
    await addService(node, ['--frontend', '[fd10:96::1:53]:53/UDP', '--type', 'NodePort', '--node-port', '30053', ...backends.flatMap((b) => ['--backend', `[${b.ipv6}]:8080`])]);
    const tcp = await spread(world.netnsPath, world.nodeIPv6, 30080, 90);
    assert.equal(tcp.failures, 0, JSON.stringify(tcp.errors));
    assert.equal(Object.keys(tcp.counts).length, 3, JSON.stringify(tcp.counts));
    const udp = await spread(world.netnsPath, world.nodeIPv6, 30053, 60, 'udp');
    assert.equal(udp.failures, 0, JSON.stringify(udp.errors));
    assert.deepEqual(udp.peers, [world.nodeIPv6]);
  });

  test('ExternalIP: an address the world routes to the node', async () => {
    await must(['ip', 'route', 'add', '203.0.113.200/32', 'via', world.nodeIPv4], { netns: world.netnsPath });
    await addService(node, ['--frontend', '203.0.113.200:80/TCP', '--type', 'ExternalIP', ...backends.flatMap((b) => ['--backend', `${b.ipv4}:8080`])]);
    const r = await spread(world.netnsPath, '203.0.113.200', 80, 90);
    assert.equal(r.failures, 0, JSON.stringify(r.errors));
    assert.equal(Object.keys(r.counts).length, 3, JSON.stringify(r.counts));
    const udp = await addService(node, ['--frontend', '203.0.113.200:53/UDP', '--type', 'ExternalIP', '--backend', `${backends[0]!.ipv4}:8080`]);
    const u = await spread(world.netnsPath, '203.0.113.200', 53, 5, 'udp');
    assert.deepEqual(u.counts, { b0: 5 });
    assert.deepEqual(u.peers, ['203.0.113.200'], 'UDP replies come from the external IP');
    await cli(node, ['service', 'delete', String(udp.id)]);
  });

  test('a NodePort service without backends refuses the world at once (TCP reset), never black-holes', async () => {
    await addService(node, ['--frontend', '10.96.1.60:80/TCP', '--type', 'NodePort', '--node-port', '30099']);
    // spread's connections time out after 3 s as "timeout": a refusal is a reset that came back.
    const r = await spread(world.netnsPath, world.nodeIPv4, 30099, 3);
    assert.deepEqual(r.errors, { ECONNREFUSED: 3 });
  });

  test('a port map: the world reaches the pod through node address:8080 until the endpoint is deleted', async () => {
    const pod = await addPodWith(topo, node, 'mapped', ['--port-map', '8080:80/TCP', '--port-map', '8053:80/UDP']);
    await serve(topo, pod, 'mapped', 80);
    const r = await spread(world.netnsPath, world.nodeIPv4, 8080, 10);
    assert.deepEqual(r.counts, { mapped: 10 }, JSON.stringify(r.errors));
    const u = await spread(world.netnsPath, world.nodeIPv4, 8053, 5, 'udp');
    assert.deepEqual(u.counts, { mapped: 5 }, JSON.stringify(u.errors));
    assert.deepEqual(u.peers, [world.nodeIPv4]);
    const v6 = await spread(world.netnsPath, world.nodeIPv6, 8080, 5);
    assert.deepEqual(v6.counts, { mapped: 5 }, JSON.stringify(v6.errors));
    await cli(node, ['endpoint', 'delete', String(pod.id)]);
    const gone = await spread(world.netnsPath, world.nodeIPv4, 8080, 2);
    assert.equal(gone.failures, 2, `after endpoint delete: ${JSON.stringify(gone)}`);
  });
});

describe('direct server return across two nodes of an underlay', () => {
  let topo: Topology;
  let node1: Node;
  let node2: Node;
  let u1: UnderlayMember;
  let u2: UnderlayMember;
  let uw: UnderlayMember;
  let world: World;
  let backend: Pod;

  /** Packets the world received on the underlay from `mac` with source node1:port (iptables counters in the world's netns). */
  async function repliesFrom(mac: string, proto: 'tcp' | 'udp', port: number): Promise<number> {
    // "-A PREROUTING ... -p tcp -m tcp --sport 30100 -m mac --mac-source 02:..:ee -c PACKETS BYTES"
    const out = await must(['iptables', '-t', 'raw', '-S', 'PREROUTING', '-v'], { netns: world.netnsPath });
    const line = out.split('\n').find((l) => l.includes(`-p ${proto} `) && l.includes(`--sport ${port} `) && l.toLowerCase().includes(`--mac-source ${mac.toLowerCase()} `));
    assert.ok(line, `no counter for ${mac} ${proto} ${port} in:\n${out}`);
    return Number(/ -c (\d+) \d+$/.exec(line.trim())?.[1]);
  }

  async function countReplies(proto: 'tcp' | 'udp', port: number): Promise<void> {
    for (const u of [u1, u2])
      await must(
        ['iptables', '-t', 'raw', '-A', 'PREROUTING', '-i', uw.dev, '-p', proto, '-s', u1.ipv4, '--sport', String(port), '-m', 'mac', '--mac-source', u.mac],
        { netns: world.netnsPath },
      );
  }

  before(async () => {
    topo = Topology.create();
    node1 = await topo.addNode({ start: false });
    node2 = await topo.addNode({ start: false });
    u1 = await topo.joinUnderlay(node1);
    u2 = await topo.joinUnderlay(node2);
    world = await topo.addBareWorld();
    uw = await topo.joinUnderlay(world);
    node1.extraArgs.push('--lb-interface', u1.dev);
    node2.extraArgs.push('--lb-interface', u2.dev);
    await node1.startAgent();
    await node2.startAgent();
    backend = await topo.addPod(node2, 'backend', 'app=backend');
    await serve(topo, backend, 'dsr-b', 8080);
  });
  after(async () => {
    await topo?.dispose();
  });

  test('TCP: the backend on node2 answers the world as node1:nodePort, and the replies do not pass node1', async () => {
    await addService(node1, ['--frontend', '10.96.2.10:80/TCP', '--type', 'NodePort', '--node-port', '30100', '--mode', 'dsr', '--backend', `${backend.ipv4}:8080`]);
    await countReplies('tcp', 30100);
    const r = await spread(world.netnsPath, u1.ipv4, 30100, 20);
    assert.deepEqual(r.counts, { 'dsr-b': 20 }, JSON.stringify(r.errors));
    const viaNode2 = await repliesFrom(u2.mac, 'tcp', 30100);
    const viaNode1 = await repliesFrom(u1.mac, 'tcp', 30100);
    assert.ok(viaNode2 >= 40, `replies from node2's MAC with source ${u1.ipv4}:30100: ${viaNode2}`);
    assert.equal(viaNode1, 0, "no reply came through node1's MAC");
  });

  test('UDP: replies come from node1:nodePort, sent by node2', async () => {
    await addService(node1, ['--frontend', '10.96.2.53:53/UDP', '--type', 'NodePort', '--node-port', '30153', '--mode', 'dsr', '--backend', `${backend.ipv4}:8080`]);
    await countReplies('udp', 30153);
    const r = await spread(world.netnsPath, u1.ipv4, 30153, 10, 'udp');
    assert.deepEqual(r.counts, { 'dsr-b': 10 }, JSON.stringify(r.errors));
    assert.deepEqual(r.peers, [u1.ipv4]);
    assert.equal(await repliesFrom(u2.mac, 'udp', 30153), 10);
    assert.equal(await repliesFrom(u1.mac, 'udp', 30153), 0);
  });
});

describe('pods reach a ClusterIP service per packet (agent --no-socket-lb)', () => {
  let topo: Topology;
  let node: Node;
  let client: Pod;
  let backends: Pod[];

  before(async () => {
    topo = Topology.create();
    node = await topo.addNode({ agentArgs: ['--no-socket-lb'] });
    client = await topo.addPod(node, 'client', 'app=client');
    backends = [];
    for (let i = 0; i < 3; i++) backends.push(await topo.addPod(node, `backend${i}`, 'app=backend'));
    for (let i = 0; i < 3; i++) await serve(topo, backends[i]!, `b${i}`, 8080);
  });
  after(async () => {
    await topo?.dispose();
  });

  test('the agent attached no socket LB links', async () => {
    const pins = await sh(['ls', join(topo.bpffs, 'tendril', node.name, 'links', 'sock_lb')]);
    assert.ok(pins.code !== 0 || pins.stdout.trim() === '', `socket LB links pinned: ${pins.stdout}`);
    assert.match(node.agent!.log, /socket load balancing off/);
  });

  test('TCP: connections spread over the backends; the socket sees the service address as its peer', async () => {
    await addService(node, ['--frontend', '10.96.3.10:80/TCP', ...backends.flatMap((b) => ['--backend', `${b.ipv4}:8080`])]);
    const r = await spread(client.netnsPath, '10.96.3.10', 80, 150);
    assert.equal(r.failures, 0, JSON.stringify(r.errors));
    for (const name of ['b0', 'b1', 'b2']) assert.ok((r.counts[name] ?? 0) >= 20, JSON.stringify(r.counts));
    assert.deepEqual(r.peers, ['10.96.3.10']);
  });

  test('UDP: replies come from the service address', async () => {
    await addService(node, ['--frontend', '10.96.3.53:53/UDP', ...backends.flatMap((b) => ['--backend', `${b.ipv4}:8080`])]);
    const r = await spread(client.netnsPath, '10.96.3.53', 53, 90, 'udp');
    assert.equal(r.failures, 0, JSON.stringify(r.errors));
    assert.equal(Object.keys(r.counts).length, 3, JSON.stringify(r.counts));
    assert.deepEqual(r.peers, ['10.96.3.53']);
  });

  test('IPv6 TCP per packet', async () => {
    await addService(node, ['--frontend', '[fd10:96::3:10]:80/TCP', ...backends.flatMap((b) => ['--backend', `[${b.ipv6}]:8080`])]);
    const r = await spread(client.netnsPath, 'fd10:96::3:10', 80, 60);
    assert.equal(r.failures, 0, JSON.stringify(r.errors));
    assert.deepEqual(r.peers, ['fd10:96::3:10']);
  });

  test('zero backends: refused at once (ECONNREFUSED), not timed out', async () => {
    await addService(node, ['--frontend', '10.96.3.60:80/TCP']);
    const r = await spread(client.netnsPath, '10.96.3.60', 80, 3);
    assert.deepEqual(r.errors, { ECONNREFUSED: 3 }, 'refused, not timed out');
  });
});
