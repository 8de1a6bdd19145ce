/**
 * End to end on one node: pods attached through the CLI reach each other over
 * IPv4 and IPv6 through the eBPF datapath, the answers to ARP and neighbour
 * discovery come from BPF, the monitor shows the traffic, deletion leaves
 * nothing behind, and a SIGKILLed agent neither breaks a running connection
 * nor loses its endpoints, and an upgrade replaces endpoint programs in place.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Topology, REPO, must, sh, sleep, type Node, type Pod } from './harness/topology.js';

const TCP_TOOL = join(REPO, 'dist', 'test', 'tools', 'tcp.js');

/** "device direction id" of every tc filter program on the node's lxc devices. */
async function attachedPrograms(node: Node): Promise<string[]> {
  const links = (await must(['ip', '-br', 'link', 'show'], { netns: node.netnsPath })).split('\n').map((l) => l.split(/[\s@]/)[0]!).filter((n) => n.startsWith('lxc'));
  const out: string[] = [];
  for (const dev of links) {
    for (const dir of ['ingress', 'egress']) {
      const text = await must(['tc', 'filter', 'show', 'dev', dev, dir], { netns: node.netnsPath });
      for (const m of text.matchAll(/ id (\d+) name/g)) out.push(`${dev} ${dir} ${m[1]}`);
    }
  }
  return out.sort();
}

describe('single-node connectivity', () => {
  let topo: Topology;
  let node: Node;
  let a: Pod;
  let b: Pod;

  before(async () => {
    topo = Topology.create();
    node = await topo.addNode();
    a = await topo.addPod(node, 'pod-a', 'app=a');
    b = await topo.addPod(node, 'pod-b', 'app=b');
  });
  after(async () => {
    await topo?.dispose();
  });

  test('pods ping each other over IPv4 and IPv6', async () => {
    await must(['ping', '-c', '2', '-i', '0.2', '-W', '2', b.ipv4], { netns: a.netnsPath });
    await must(['ping', '-c', '2', '-i', '0.2', '-W', '2', a.ipv4], { netns: b.netnsPath });
    await must(['ping', '-6', '-c', '2', '-i', '0.2', '-W', '2', b.ipv6], { netns: a.netnsPath });
    await must(['ping', '-6', '-c', '2', '-i', '0.2', '-W', '2', a.ipv6], { netns: b.netnsPath });
  });

  test('tendril status, endpoint list/get and map list describe the node as it is', async () => {
    const status = JSON.parse((await node.cli(['status', '-o', 'json'])).stdout) as { endpoints: number; datapath: { programsAttached: number }; maps: Array<{ name: string; entries: number | null }> };
    assert.equal(status.endpoints, 2);
    assert.equal(status.datapath.programsAttached, 4, 'two programs per endpoint, as the kernel reports them');
    assert.equal(status.maps.find((m) => m.name === 'tnd_endpoints')?.entries, 4, 'an IPv4 and an IPv6 entry per endpoint');
    const human = await node.cli(['status']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /Endpoints:\s+2/);
    assert.match(human.stdout, /4 programs attached/);
    const list = (await node.cli(['endpoint', 'list'])).stdout;
    assert.match(list, /^ID\s+IPV4\s+IPV6/);
    assert.match(list, new RegExp(`${a.id}\\s+${a.ipv4.replace(/\./g, '\\.')}\\s+${a.ipv6}.*app=a`));
    const get = (await node.cli(['endpoint', 'get', String(b.id)])).stdout;
    assert.match(get, new RegExp(`IPv4:\\s+${b.ipv4.replace(/\./g, '\\.')}`));
    assert.match(get, /Labels:\s+app=b/);
    const maps = (await node.cli(['map', 'list'])).stdout;
    for (const name of ['tnd_endpoints', 'tnd_ct', 'tnd_events', 'tnd_metrics']) assert.match(maps, new RegExp(`^${name}\\s`, 'm'));
  });

  test('pods open TCP connections both ways, over IPv4 and IPv6', async () => {
    for (const [server, client] of [
      [b, a],
      [a, b],
    ] as const) {
      const srv = topo.spawnIn(server.netnsPath, [process.execPath, TCP_TOOL, 'server', '8080']);
      await new Promise<void>((resolve, reject) => {
        srv.stdout!.once('data', () => resolve());
        srv.once('exit', (code) => reject(new Error(`tcp server exited ${code}`)));
      });
      for (const addr of [server.ipv4, server.ipv6]) {
        const out = await must([process.execPath, TCP_TOOL, 'client', addr, '8080'], { netns: client.netnsPath });
        assert.match(out, /echoed via/);
      }
      srv.kill('SIGKILL');
    }
  });

  test('the node netns learned no neighbour entries for the pods: BPF answered', async () => {
    // The agent's own static IPv6 entries (for the stack's NodePort deliveries) are not learned ones.
    const learned = (text: string) => text.split('\n').filter((l) => !l.includes('PERMANENT')).join('\n');
    const neigh = learned(await must(['ip', 'neigh', 'show'], { netns: node.netnsPath }));
    const neigh6 = learned(await must(['ip', '-6', 'neigh', 'show'], { netns: node.netnsPath }));
    for (const addr of [a.ipv4, b.ipv4, a.ipv6, b.ipv6]) {
      assert.ok(!neigh.includes(addr) && !neigh6.includes(addr), `node has a neighbour entry for ${addr}:\n${neigh}${neigh6}`);
    }
    const podNeigh = await must(['ip', 'neigh', 'show'], { netns: a.netnsPath });
    assert.match(podNeigh, /10\.200\.1\.1 dev eth0 lladdr/, 'the pod learned its router from the BPF ARP reply');
  });

  test('tendril monitor -o json streams trace events of pod traffic', async () => {
    const mon = topo.spawnIn(node.netnsPath, [process.execPath, join(REPO, 'bin', 'tendril'), '--socket', node.socket, 'monitor', '--type', 'trace', '-o', 'json']);
    let out = '';
    mon.stdout!.on('data', (d) => (out += d));
    await sleep(300); // subscribed before the traffic starts
    await must(['ping', '-c', '1', '-W', '2', b.ipv4], { netns: a.netnsPath });
    const deadline = Date.now() + 5000;
    let events: Array<Record<string, unknown>> = [];
    while (Date.now() < deadline) {
      events = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
      if (events.some((e) => e.source === a.ipv4 && e.destination === b.ipv4 && e.observationPoint === 'to-endpoint')) break;
      await sleep(100);
    }
    mon.kill('SIGTERM');
    const fromA = events.find((e) => e.source === a.ipv4 && e.destination === b.ipv4 && e.observationPoint === 'from-endpoint');
    assert.ok(fromA, `no from-endpoint trace of ${a.ipv4} -> ${b.ipv4} in:\n${out}`);
    assert.equal(fromA.type, 'trace');
    assert.equal(fromA.protocol, 'ICMP');
    assert.equal(fromA.endpoint, a.id);
    assert.ok(events.some((e) => e.source === a.ipv4 && e.destination === b.ipv4 && e.observationPoint === 'to-endpoint' && e.endpoint === b.id));
  });

  test('tendril monitor --type drop --endpoint ID shows only that endpoint\'s drops, with their reason', async () => {
    const cli = join(REPO, 'bin', 'tendril');
    const mon = topo.spawnIn(node.netnsPath, [process.execPath, cli, '--socket', node.socket, 'monitor', '--type', 'drop', '--endpoint', String(a.id), '-o', 'json']);
    let out = '';
    mon.stdout!.on('data', (d) => (out += d));
    await sleep(300);
    // TTL 1 towards another pod: the datapath drops it as exceeded. (Addresses
    // that are no local endpoint go to the node's stack, so they make no drop.)
    await sh(['ping', '-c', '1', '-W', '1', '-t', '1', b.ipv4], { netns: a.netnsPath });
    await sh(['ping', '-c', '1', '-W', '1', '-t', '1', a.ipv4], { netns: b.netnsPath });
    await sh(['ping', '-c', '1', '-W', '1', b.ipv4], { netns: a.netnsPath }); // allowed: no event of type drop
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline && !out.includes('ttl exceeded')) await sleep(100);
    await sleep(300);
    mon.kill('SIGTERM');
    const events = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.ok(events.length >= 1, `no drop event:\n${out}`);
    for (const ev of events) {
      assert.equal(ev.type, 'drop');
      assert.equal(ev.endpoint, a.id, `an event of another endpoint passed the filter: ${JSON.stringify(ev)}`);
    }
    const drop = events.find((e) => e.destination === b.ipv4);
    assert.ok(drop, `no drop of the ping to ${b.ipv4}:\n${out}`);
    assert.equal(drop.reason, 'ttl exceeded');
    assert.equal(drop.source, a.ipv4);
  });

  test('SIGKILL of the agent during a TCP stream loses no connection; the restarted agent lists the same endpoints', async () => {
    const before = JSON.parse((await node.cli(['endpoint', 'list', '-o', 'json'])).stdout) as unknown[];
    const programsBefore = await attachedPrograms(node);
    assert.equal(programsBefore.length, 4, 'two endpoints, two filters each');
    const server = topo.spawnIn(b.netnsPath, ['iperf3', '-s', '-1', '-p', '5201']);
    await sleep(300);
    const client = topo.spawnIn(a.netnsPath, ['iperf3', '-c', b.ipv4, '-p', '5201', '-t', '4', '-J']);
    let report = '';
    client.stdout!.on('data', (d) => (report += d));
    await sleep(1000);
    await node.agent!.kill('SIGKILL');
    await sleep(500);
    // Still flowing with no agent at all: a fresh connection works too.
    await must(['ping', '-c', '1', '-W', '2', b.ipv4], { netns: a.netnsPath });
    await node.startAgent();
    const code = await new Promise<number>((resolve) => client.once('exit', (c) => resolve(c ?? 1)));
    server.kill('SIGKILL');
    assert.equal(code, 0, `iperf3 failed across the agent restart:\n${report.slice(-2000)}`);
    const result = JSON.parse(report) as { end: { sum_received: { bytes: number } } };
    assert.ok(result.end.sum_received.bytes > 0);
    const afterList = JSON.parse((await node.cli(['endpoint', 'list', '-o', 'json'])).stdout) as unknown[];
    assert.deepEqual(afterList, before);
    assert.match(node.agent!.log, /2 adopted, 0 re-attached/);
    assert.deepEqual(await attachedPrograms(node), programsBefore, 'the same programs stay attached: adopted, not re-created');
  });

  test('an upgrade: endpoints whose programs came from another lxc.o get the current ones in place, and traffic keeps flowing', async () => {
    const programsBefore = await attachedPrograms(node);
    await node.agent!.kill('SIGTERM');
    // What an earlier version left: its programs attached, its own datapath version (or none) in the state.
    const stateFile = join(node.stateDir, 'endpoints.json');
    const state = JSON.parse(readFileSync(stateFile, 'utf8')) as { endpoints: Array<{ datapath?: string }> };
    for (const ep of state.endpoints) ep.datapath = '0000000000000000';
    writeFileSync(stateFile, JSON.stringify(state));
    const pinger = topo.spawnIn(a.netnsPath, ['ping', '-i', '0.05', '-c', '60', '-W', '1', b.ipv4]);
    let out = '';
    pinger.stdout!.on('data', (d) => (out += d));
    await node.startAgent();
    const code = await new Promise<number>((resolve) => pinger.once('exit', (c) => resolve(c ?? 1)));
    assert.match(node.agent!.log, /0 adopted, 2 re-attached/);
    const after = await attachedPrograms(node);
    assert.equal(after.length, programsBefore.length);
    assert.notDeepEqual(after, programsBefore, 'new programs in the same filters');
    assert.equal(code, 0, `ping lost packets across the replacement:\n${out}`);
    assert.match(out, / 0% packet loss/);
    // Now recorded: the next restart adopts them.
    await node.agent!.kill('SIGTERM');
    await node.startAgent();
    assert.match(node.agent!.log, /2 adopted, 0 re-attached/);
  });

  test('endpoint delete leaves no link, program, map entry or conntrack entry behind', async () => {
    const ep = JSON.parse((await node.cli(['endpoint', 'get', String(b.id), '-o', 'json'])).stdout) as { hostIfname: string };
    const filters = (await must(['tc', 'filter', 'show', 'dev', ep.hostIfname, 'ingress'], { netns: node.netnsPath })) + (await must(['tc', 'filter', 'show', 'dev', ep.hostIfname, 'egress'], { netns: node.netnsPath }));
    const progIds = [...filters.matchAll(/ id (\d+) name (from|to)_container/g)].map((m) => m[1]!);
    assert.equal(progIds.length, 2, `expected both programs attached:\n${filters}`);
    const r = await node.cli(['endpoint', 'delete', String(b.id)]);
    assert.equal(r.code, 0, r.stderr);
    const links = await must(['ip', '-o', 'link', 'show'], { netns: node.netnsPath });
    assert.ok(!links.includes(ep.hostIfname), `link ${ep.hostIfname} still there`);
    const podLinks = await must(['ip', '-o', 'link', 'show'], { netns: b.netnsPath });
    assert.ok(!podLinks.includes('eth0'), 'the pod side went with it');
    for (const id of progIds) {
      // The kernel frees a filter's program after an RCU grace period: allow it a moment.
      let loaded = true;
      for (let i = 0; i < 40 && loaded; i++) {
        loaded = (await sh(['bpftool', 'prog', 'show', 'id', id])).code === 0;
        if (loaded) await sleep(50);
      }
      assert.ok(!loaded, `program ${id} still loaded`);
    }
    const dump = (await node.cli(['map', 'dump', 'tnd_endpoints', '-o', 'json'])).stdout;
    assert.ok(!dump.includes(b.ipv4) && !dump.includes(b.ipv6), `map entries left: ${dump}`);
    const ct = (await node.cli(['map', 'dump', 'tnd_ct', '-o', 'json'])).stdout;
    assert.ok(!ct.includes(`"endpoint": ${b.id},`), 'conntrack entries of the endpoint are purged');
    const get = await node.cli(['endpoint', 'get', String(b.id)]);
    assert.equal(get.code, 1);
    assert.match(get.stderr, new RegExp(`endpoint ${b.id} does not exist`));
  });
});

describe('agent --trace-all', () => {
  test('traces every packet, not one per flow and second', async () => {
    await using topo = Topology.create();
    const node = await topo.addNode({ agentArgs: ['--trace-all'] });
    const a = await topo.addPod(node, 'pod-a');
    const b = await topo.addPod(node, 'pod-b');
    const mon = topo.spawnIn(node.netnsPath, [process.execPath, join(REPO, 'bin', 'tendril'), '--socket', node.socket, 'monitor', '--type', 'trace', '-o', 'json']);
    let out = '';
    mon.stdout!.on('data', (d) => (out += d));
    await sleep(300);
    await must(['ping', '-c', '4', '-i', '0.1', '-W', '2', b.ipv4], { netns: a.netnsPath });
    await sleep(500);
    mon.kill('SIGTERM');
    const events = out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
    const requests = events.filter((e) => e.source === a.ipv4 && e.destination === b.ipv4);
    const count = (point: string) => requests.filter((e) => e.observationPoint === point).length;
    assert.equal(count('from-endpoint'), 4, `one from-endpoint trace per echo request:\n${out}`);
    assert.equal(count('to-endpoint'), 4, `one to-endpoint trace per echo request:\n${out}`);
  });
});
