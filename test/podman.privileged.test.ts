/**
 * podman as the runtime: containers on the "tendril" CNI network get their
 * addresses from the agent, ping and reach each other's TCP servers, are
 * isolated by a policy on their labels, leave no trace when removed, and
 * get connectivity back when restarted; twenty started at once get
 * distinct addresses and reach each other.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Topology, must, type Node } from './harness/topology.js';
import { PODMAN_IMAGE, Podman } from './harness/podman.js';

const SKIP = Podman.unavailable();
if (SKIP) process.stdout.write(`# podman.privileged.test: skipped: ${SKIP}\n`);

describe('podman containers on the tendril CNI network', { skip: SKIP ?? false }, () => {
  let topo: Topology;
  let node: Node;
  let podman: Podman;

  const ipOf = async (name: string) => (await podman.must(['inspect', name, '--format', '{{(index .NetworkSettings.Networks "tendril").IPAddress}}'])).trim();
  /** A one-shot container on the network running `cmd`; its exit code and output. */
  const oneShot = (name: string, cmd: string[]) => podman.run(['run', '--rm', '--name', name, '--network', 'tendril', PODMAN_IMAGE, ...cmd], 60_000);
  /** An HTTP GET with nc (busybox-static's wget crashes resolving names without libc's NSS). */
  const fetch = async (name: string, ip: string) => {
    const r = await oneShot(name, ['sh', '-c', `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} 8080`]);
    const body = r.stdout.split('\r\n\r\n')[1] ?? '';
    return { code: r.code === 0 && r.stdout.startsWith('HTTP/1.') ? 0 : 1, stdout: body, stderr: r.stderr + r.stdout };
  };

  before(async () => {
    topo = Topology.create();
    node = await topo.addNode();
    podman = await Podman.create(topo, node);
    await podman.must(['run', '-d', '--name', 'web', '--network', 'tendril', PODMAN_IMAGE, 'httpd', '-f', '-p', '8080', '-h', '/www']);
  });
  after(async () => {
    await topo?.dispose();
  });

  test('a container gets its address from the agent, labelled with its name; containers ping and reach its TCP server', async () => {
    const ip = await ipOf('web');
    const eps = await node.client.listEndpoints();
    const ep = eps.find((e) => e.ipv4 === ip);
    assert.ok(ep, `no endpoint for ${ip}: ${JSON.stringify(eps)}`);
    assert.equal(ep.labels['io.kubernetes.pod.name'], 'web', JSON.stringify(ep.labels));
    const ping = await oneShot('pinger', ['ping', '-c', '1', '-W', '3', ip]);
    assert.equal(ping.code, 0, ping.stdout + ping.stderr);
    const r = await fetch('client', ip);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'served by a podman container\n');
  });

  test('20 containers started in parallel get distinct addresses and reach each other', async () => {
    const names = Array.from({ length: 20 }, (_, i) => `par${i}`);
    const before = (await node.client.listEndpoints()).length;
    await Promise.all(names.map((name) => podman.must(['run', '-d', '--name', name, '--network', 'tendril', PODMAN_IMAGE, 'httpd', '-f', '-p', '8080', '-h', '/www'], 180_000)));
    try {
      const ips = await Promise.all(names.map(ipOf));
      assert.equal(new Set(ips).size, names.length, `addresses: ${ips.join(' ')}`);
      const eps = await node.client.listEndpoints();
      for (const ip of ips) assert.ok(eps.some((e) => e.ipv4 === ip), `no endpoint for ${ip}`);
      const get = (ip: string) => `printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 ${ip} 8080 | grep -q 'served by a podman container' || echo unreachable ${ip}`;
      // Every container reaches the first one's server, and the first reaches every other's.
      const toFirst = await Promise.all(names.slice(1).map((name) => podman.run(['exec', name, 'sh', '-c', get(ips[0]!)], 60_000)));
      for (const [i, r] of toFirst.entries()) assert.equal(r.code + r.stdout.trim(), '0', `${names[i + 1]} -> ${ips[0]}: ${r.stdout}${r.stderr}`);
      const fromFirst = await podman.run(['exec', names[0]!, 'sh', '-c', ips.slice(1).map(get).join('; ')], 120_000);
      assert.equal(fromFirst.code + fromFirst.stdout.trim(), '0', fromFirst.stdout + fromFirst.stderr);
    } finally {
      await podman.run(['rm', '-f', '-t', '0', ...names], 180_000);
    }
    assert.equal((await node.client.listEndpoints()).length, before, 'podman rm removed their endpoints');
  });

  test('a policy selecting containers by label is enforced', async () => {
    const file = join(topo.dir, 'web-from-good.yaml');
    writeFileSync(
      file,
      `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: web-from-good }
spec:
  endpointSelector: { matchLabels: { io.kubernetes.pod.name: web } }
  ingress:
  - fromEndpoints: [ { matchLabels: { io.kubernetes.pod.name: good } } ]
    toPorts: [ { ports: [ { port: "8080", protocol: TCP } ] } ]
`,
    );
    assert.equal((await node.cli(['policy', 'import', file])).code, 0);
    const ip = await ipOf('web');
    assert.equal((await fetch('good', ip)).code, 0, 'the admitted container');
    assert.notEqual((await fetch('bad', ip)).code, 0, 'any other container is denied');
    assert.equal((await node.cli(['policy', 'delete', '--all'])).code, 0);
  });

  test('a restarted container gets connectivity back; podman rm removes every trace', async () => {
    await podman.must(['restart', '-t', '0', 'web']);
    const ip = await ipOf('web');
    assert.equal((await fetch('after-restart', ip)).code, 0);
    const ep = (await node.client.listEndpoints()).find((e) => e.ipv4 === ip)!;

    await podman.must(['rm', '-f', '-t', '0', 'web']);
    assert.deepEqual(await node.client.listEndpoints(), [], 'no endpoint left');
    assert.doesNotMatch(await must(['ip', 'link', 'show'], { netns: node.netnsPath }), new RegExp(ep.hostIfname), 'the host-side link is gone');
    const dump = (await node.cli(['map', 'dump', 'tnd_endpoints', '-o', 'json'])).stdout;
    assert.ok(!dump.includes(ip), `tnd_endpoints still names ${ip}`);
    // The address went back to the pool: the next container may get it again.
    await podman.must(['run', '-d', '--name', 'web2', '--network', 'tendril', PODMAN_IMAGE, 'httpd', '-f', '-p', '8080', '-h', '/www']);
    assert.equal((await fetch('client2', await ipOf('web2'))).code, 0);
  });
});
