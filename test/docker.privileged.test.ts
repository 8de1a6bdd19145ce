/**
 * dockerd as the runtime, tendril-docker as its network and IPAM driver:
 * containers on a tendril network get distinct addresses from the agent, a
 * /32 address with a working default route via the node's router, ping and
 * reach each other's TCP servers, carry their Docker labels as endpoint
 * labels, are isolated by a policy on those labels, survive a restart of
 * tendril-docker and of the agent, and leave no trace when removed.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Topology, must, sleep, type Node, type World } from './harness/topology.js';
import { DOCKER_IMAGE, Dockerd } from './harness/docker.js';
import type { Endpoint } from '../src/endpoint/endpoint.js';

const SKIP = Dockerd.unavailable();
if (SKIP) process.stdout.write(`# docker.privileged.test: skipped: ${SKIP}\n`);

const NET = 'tnet';

describe('docker containers on a tendril network', { skip: SKIP ?? false }, () => {
  let topo: Topology;
  let node: Node;
  let docker: Dockerd;
  let world: World;

  const ipOf = async (name: string) => (await docker.must(['inspect', name, '--format', `{{(index .NetworkSettings.Networks "${NET}").IPAddress}}`])).trim();
  /** A long-running container on the network, once the agent has applied its labels (its traffic is held until then). */
  const start = async (name: string, labels: string[], cmd: string[] = ['sleep', '3600']): Promise<Endpoint> => {
    await docker.must(['run', '-d', '--name', name, '--network', NET, ...labels.flatMap((l) => ['--label', l]), DOCKER_IMAGE, ...cmd]);
    return activeEndpoint(name);
  };
  const activeEndpoint = async (name: string): Promise<Endpoint> => {
    const ip = await ipOf(name);
    const deadline = Date.now() + 30_000;
    for (;;) {
      const ep = (await node.client.listEndpoints()).find((e) => e.ipv4 === ip);
      if (ep?.labels['io.kubernetes.pod.name'] === name) return ep;
      if (Date.now() > deadline) throw new Error(`container ${name} (${ip}) never got its labels: ${JSON.stringify(ep)}\n${docker.logs}`);
      await sleep(100);
    }
  };
  const exec = (name: string, cmd: string[]) => docker.docker(['exec', name, ...cmd], 30_000);
  /** An HTTP GET with nc (busybox-static's wget crashes resolving names without libc's NSS). */
  const fetch = async (from: string, ip: string, port = 8080) => {
    const r = await exec(from, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} ${port}`]);
    return { ok: r.code === 0 && r.stdout.startsWith('HTTP/1.'), body: r.stdout.split('\r\n\r\n')[1] ?? '', detail: r.stderr + r.stdout };
  };

  /** One remote plugin call on tendril-docker's socket, as Docker makes it. */
  const call = (method: string, body: string) =>
    new Promise<{ status: number; body: Record<string, any> }>((resolve, reject) => {
      const req = request({ socketPath: docker.pluginSocket, method: 'POST', path: `/${method}` }, (res) => {
        let text = '';
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, any> }));
      });
      req.on('error', reject);
      req.end(body);
    });

  before(async () => {
    topo = Topology.create();
    node = await topo.addNode({ start: false });
    world = await topo.addWorld(node);
    await node.startAgent();
    docker = await Dockerd.start(topo, node);
    await docker.must(['network', 'create', '-d', 'tendril', '--ipam-driver', 'tendril', '--ipv6', NET]);
    await start('web', ['org=empire', 'app=web'], ['httpd', '-f', '-p', '8080', '-h', '/www']);
    await start('tie', ['org=empire']);
    await start('xwing', ['org=alliance']);
  });
  after(async () => {
    if (process.env.TENDRIL_TEST_LOGS) process.stdout.write(docker?.logs ?? '');
    await topo?.dispose();
  });

  test('containers get distinct addresses of the node, their Docker labels, a /32 and a working default route via the router', async () => {
    const eps = await node.client.listEndpoints();
    assert.equal(eps.length, 3);
    const web = eps.find((e) => e.labels['io.kubernetes.pod.name'] === 'web')!;
    assert.deepEqual(web.labels, { app: 'web', 'io.kubernetes.pod.name': 'web', org: 'empire' });
    assert.equal(new Set(eps.map((e) => e.ipv4)).size, 3);
    for (const ep of eps) assert.ok(ep.ipv4.startsWith('10.200.1.'), ep.ipv4);
    // What Docker reports is what the agent handed out, with the router as gateway.
    assert.equal(await ipOf('web'), web.ipv4);
    assert.equal((await docker.must(['inspect', 'web', '--format', `{{(index .NetworkSettings.Networks "${NET}").Gateway}}`])).trim(), '10.200.1.1');
    const listed = (await node.cli(['endpoint', 'list'])).stdout;
    assert.match(listed, /app=web,io\.kubernetes\.pod\.name=web,org=empire/);
    // Inside the container: the agent's MAC and addresses, and the default routes via the router.
    const addr = (await exec('web', ['ip', 'addr', 'show', 'eth0'])).stdout;
    assert.ok(addr.includes(`inet ${web.ipv4}/32`), addr);
    assert.ok(addr.includes(`inet6 ${web.ipv6}/128`), addr);
    assert.ok(addr.includes(`link/ether ${web.podMac}`), addr);
    const routes = (await exec('web', ['ip', 'route'])).stdout;
    assert.match(routes, /^default via 10\.200\.1\.1 dev eth0/m, routes);
    const routes6 = (await exec('web', ['ip', '-6', 'route'])).stdout;
    assert.match(routes6, /^default via fd10:200:0:1::1 dev eth0/m, routes6);
    // The default routes work: the world beyond the node answers, in both families.
    const out = await exec('web', ['ping', '-c', '1', '-W', '3', world.ipv4]);
    assert.equal(out.code, 0, out.stdout + out.stderr);
    const out6 = await exec('web', ['ping', '-c', '1', '-W', '3', world.ipv6]);
    assert.equal(out6.code, 0, out6.stdout + out6.stderr);
  });

  test('containers ping each other and reach each other\'s TCP server, over IPv4 and IPv6', async () => {
    const web = await activeEndpoint('web');
    const ping = await exec('tie', ['ping', '-c', '1', '-W', '3', web.ipv4]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    const ping6 = await exec('xwing', ['ping', '-c', '1', '-W', '3', web.ipv6]);
    assert.equal(ping6.code, 0, ping6.stdout + ping6.stderr);
    for (const from of ['tie', 'xwing']) {
      const r = await fetch(from, web.ipv4);
      assert.ok(r.ok, `${from}: ${r.detail}`);
      assert.equal(r.body, 'served by a docker container\n');
    }
  });

  test('a policy written against Docker labels is enforced', async () => {
    const file = join(topo.dir, 'web-from-empire.yaml');
    writeFileSync(
      file,
      `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: web-from-empire }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
  - fromEndpoints: [ { matchLabels: { org: empire } } ]
    toPorts: [ { ports: [ { port: "8080", protocol: TCP } ] } ]
`,
    );
    assert.equal((await node.cli(['policy', 'import', file])).code, 0);
    const ip = await ipOf('web');
    assert.ok((await fetch('tie', ip)).ok, 'org=empire is admitted');
    assert.ok(!(await fetch('xwing', ip)).ok, 'org=alliance is denied');
    // A container started under the policy is held until its labels apply: the admitted one gets in at once.
    await start('tie2', ['org=empire']);
    assert.ok((await fetch('tie2', ip)).ok, 'a new org=empire container is admitted');
    await start('xwing2', ['org=alliance']);
    assert.ok(!(await fetch('xwing2', ip)).ok, 'a new org=alliance container is denied');
    assert.equal((await node.cli(['policy', 'delete', '--all'])).code, 0);
  });

  test('tendril-docker killed and restarted, and the agent restarted, lose nothing', async () => {
    await docker.stopDriver('SIGKILL');
    await docker.startDriver();
    await node.agent!.kill('SIGKILL');
    await node.startAgent();
    const web = await activeEndpoint('web');
    assert.ok((await fetch('tie', web.ipv4)).ok, 'old containers still talk');
    await start('late', ['org=empire']);
    assert.ok((await fetch('late', web.ipv4)).ok, 'a new container gets its address and labels');
  });

  test('an endpoint is held down, carrying nothing, until its container\'s labels apply', async () => {
    // Docker's calls made by hand, so the moment between Join and the labels can be looked at.
    const mac = '02:00:00:00:be:ef';
    const nid = 'c'.repeat(64);
    const eid = 'd'.repeat(64);
    const v4 = await call('IpamDriver.RequestAddress', JSON.stringify({ PoolID: 'tendril-ipv4', Options: { 'com.docker.network.endpoint.macaddress': mac } }));
    const address = String(v4.body.Address);
    assert.match(address, /^10\.200\.1\.\d+\/32$/);
    assert.deepEqual((await call('NetworkDriver.CreateEndpoint', JSON.stringify({ NetworkID: nid, EndpointID: eid, Interface: { Address: address, MacAddress: mac } }))).body, {});
    const join = await call('NetworkDriver.Join', JSON.stringify({ NetworkID: nid, EndpointID: eid, SandboxKey: '/var/run/docker/netns/test' }));
    const src = String(join.body.InterfaceName?.SrcName);
    assert.equal(join.body.Gateway, '10.200.1.1');
    // What Docker then does with the link: into the sandbox, renamed, addressed, routed.
    const sandbox = `/run/netns/${await topo.addNamespace('sandbox')}`;
    await must(['ip', 'link', 'set', src, 'netns', sandbox], { netns: node.netnsPath });
    const ip = address.split('/')[0]!;
    await must(['ip', '-batch', '-'], {
      netns: sandbox,
      input: [`link set ${src} name eth0`, `addr add ${address} dev eth0`, 'link set eth0 up', 'route add 10.200.1.1/32 dev eth0 scope link', 'route add default via 10.200.1.1 dev eth0', ''].join('\n'),
    });
    const pending = await node.client.call<Array<{ endpointId: string }>>('GET', '/v1/docker/pending');
    assert.deepEqual(pending.map((p) => p.endpointId), [eid]);
    assert.notEqual((await exec('tie', ['ping', '-c', '1', '-W', '2', ip])).code, 0, 'nothing reaches a held endpoint');
    assert.ok(!(await node.cli(['map', 'dump', 'tnd_endpoints', '-o', 'json'])).stdout.includes(ip), 'no program delivers to a held endpoint');
    const received = async () => (JSON.parse(await must(['ip', '-s', '-j', 'link', 'show', 'eth0'], { netns: sandbox })) as Array<{ stats64: { rx: { packets: number } } }>)[0]!.stats64.rx.packets;
    const rxHeld = await received();
    const ep = await node.client.call<Endpoint>('POST', `/v1/docker/endpoints/${eid}/activate`, { labels: { org: 'empire', 'io.kubernetes.pod.name': 'byhand' } });
    assert.deepEqual(ep.labels, { 'io.kubernetes.pod.name': 'byhand', org: 'empire' });
    const ping = await exec('tie', ['ping', '-c', '1', '-W', '3', ip]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    assert.deepEqual(await node.client.call('GET', '/v1/docker/pending'), []);
    assert.equal(rxHeld, 0, 'the held endpoint received nothing');
    assert.ok((await received()) > 0);
    // Docker's way out: Leave, DeleteEndpoint, ReleaseAddress.
    assert.deepEqual((await call('NetworkDriver.Leave', JSON.stringify({ NetworkID: nid, EndpointID: eid }))).body, {});
    assert.deepEqual((await call('NetworkDriver.DeleteEndpoint', JSON.stringify({ NetworkID: nid, EndpointID: eid }))).body, {});
    assert.deepEqual((await call('IpamDriver.ReleaseAddress', JSON.stringify({ PoolID: 'tendril-ipv4', Address: address }))).body, {});
    assert.ok(!(await node.client.listEndpoints()).some((e) => e.ipv4 === ip));
    assert.match(String((await call('NetworkDriver.Join', JSON.stringify({ NetworkID: nid, EndpointID: eid, SandboxKey: '/x' }))).body.Err), /not a tendril endpoint/);
  });

  test('bad calls on the plugin socket are answered with Err and change nothing', async () => {
    const before = await node.client.listEndpoints();
    const malformed = await call('NetworkDriver.CreateEndpoint', '{"NetworkID": ');
    assert.match(String(malformed.body.Err), /not valid JSON/);
    const unknown = await call('NetworkDriver.Join', JSON.stringify({ NetworkID: 'a'.repeat(64), EndpointID: 'b'.repeat(64), SandboxKey: '/x' }));
    assert.match(String(unknown.body.Err), /is not a tendril endpoint/);
    const method = await call('NetworkDriver.Frobnicate', '{}');
    assert.match(String(method.body.Err), /unknown method/);
    const stray = await call('IpamDriver.RequestAddress', JSON.stringify({ PoolID: 'tendril-ipv4', Address: '10.200.1.77' }));
    assert.match(String(stray.body.Err), /leave --ip/);
    const activate = await call('Plugin.Activate', '');
    assert.deepEqual(activate.body, { Implements: ['NetworkDriver', 'IpamDriver'] });
    assert.deepEqual(await node.client.listEndpoints(), before);
    // A network without tendril's IPAM cannot hand out the node's addresses: refused.
    const noIpam = await docker.docker(['network', 'create', '-d', 'tendril', 'plain']);
    assert.notEqual(noIpam.code, 0);
    assert.match(noIpam.stderr, /needs tendril IPAM/);
  });

  test('a restarted container gets connectivity back; a service backed by a container is reached from another', async () => {
    const before = await activeEndpoint('web');
    await docker.must(['restart', '-t', '0', 'web']);
    const web = await activeEndpoint('web');
    assert.notEqual(web.id, before.id, 'a restart is a new Docker endpoint');
    assert.ok(!(await node.client.listEndpoints()).some((e) => e.id === before.id), 'the old endpoint is gone');
    assert.ok((await fetch('tie', web.ipv4)).ok);
    const add = await node.cli(['service', 'add', '--frontend', '10.96.0.10:80/TCP', '--backend', `${web.ipv4}:8080`, '-o', 'json']);
    assert.equal(add.code, 0, add.stderr);
    const r = await fetch('tie', '10.96.0.10', 80);
    assert.ok(r.ok, r.detail);
    assert.equal(r.body, 'served by a docker container\n');
    assert.equal((await node.cli(['service', 'delete', String((JSON.parse(add.stdout) as { id: number }).id)])).code, 0);
  });

  test('docker rm -f removes every trace; docker network rm works', async () => {
    const ep = await activeEndpoint('web');
    const owners = () => Object.keys((JSON.parse(readFileSync(join(node.stateDir, 'endpoints.json'), 'utf8')) as { ipam: { allocations: Record<string, string[]> } }).ipam.allocations);
    assert.ok(owners().includes(`docker:${ep.podMac}`), 'the reservation is held while the container runs');
    await docker.must(['rm', '-f', 'web']);
    assert.ok(!(await node.client.listEndpoints()).some((e) => e.id === ep.id), 'no endpoint left');
    assert.doesNotMatch(await must(['ip', 'link', 'show'], { netns: node.netnsPath }), new RegExp(ep.hostIfname), 'the host-side link is gone');
    const dump = (await node.cli(['map', 'dump', 'tnd_endpoints', '-o', 'json'])).stdout;
    assert.ok(!dump.includes(ep.ipv4), `tnd_endpoints still names ${ep.ipv4}`);
    assert.ok(!owners().includes(`docker:${ep.podMac}`), 'the addresses went back to the pool');

    const names = (await docker.must(['ps', '-aq'])).split('\n').filter(Boolean);
    await docker.must(['rm', '-f', ...names]);
    assert.deepEqual(await node.client.listEndpoints(), []);
    assert.deepEqual(owners(), [], 'no address held');
    await docker.must(['network', 'rm', NET]);
    assert.doesNotMatch(await docker.must(['network', 'ls']), new RegExp(` ${NET} `));
    assert.doesNotMatch(await must(['ip', 'link', 'show'], { netns: node.netnsPath }), /tnd[0-9a-f]{12}|lxc/, 'no link left in the node');
  });
});
