/**
 * tendril-cni invoked exactly as the CNI spec says: CNI_* in the
 * environment, the network configuration on stdin, the answer on stdout and
 * in the exit code; against a real agent in a node netns, with real
 * container namespaces.
 */
import { after, before, describe, test } from 'node:test';
import { spawn, type ChildProcess } from 'node:child_process';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { REPO, Topology, must, sh, type Node } from './harness/topology.js';
import { formatVersionInfo, requestedVersion } from '../src/cni/protocol.js';

const PLUGIN = join(REPO, 'build', 'bin', 'tendril-cni');

/** Polls `cond` for up to 5 s. */
async function waitFor(cond: () => Promise<boolean>): Promise<boolean> {
  for (const deadline = Date.now() + 5000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 20))) if (await cond()) return true;
  return false;
}

interface Call {
  code: number;
  out: any;
  raw: string;
}

describe('tendril-cni, called the way the CNI spec says', () => {
  let topo: Topology;
  let node: Node;
  const conf = (extra: Record<string, unknown> = {}, version = '1.0.0') => JSON.stringify({ cniVersion: version, name: 'tnd-net', type: 'tendril', ...extra });

  async function cni(command: string, env: Record<string, string>, stdin: string, socket = node.socket): Promise<Call> {
    const r = await sh([PLUGIN], { input: stdin, env: { PATH: process.env.PATH ?? '', CNI_COMMAND: command, CNI_PATH: '/usr/lib/cni', TENDRIL_SOCKET: socket, ...env } });
    return { code: r.code, raw: r.stdout, out: r.stdout.trim() ? JSON.parse(r.stdout) : null };
  }

  async function container(suffix: string): Promise<Record<string, string>> {
    const name = await topo.addNamespace(suffix);
    return { CNI_CONTAINERID: `ctr-${suffix}`, CNI_NETNS: `/run/netns/${name}`, CNI_IFNAME: 'eth0' };
  }

  /** The node's host-side endpoint links (lxc...). */
  const hostLinks = async () => (await must(['ip', '-o', 'link', 'show'], { netns: node.netnsPath })).match(/lxc[0-9a-f]{8}/g) ?? [];

  /**
   * Starts an ADD and calls `midway` the moment the agent has made the
   * endpoint's host link (reported by `ip monitor` in the node netns), while
   * the rest of the ADD (addresses, identity, policy, programs) is under way.
   */
  async function addInterrupted(env: Record<string, string>, midway: (plugin: ChildProcess) => unknown): Promise<void> {
    const monitor = topo.spawnIn(node.netnsPath, ['ip', '-o', 'monitor', 'link']);
    await new Promise((resolve) => setTimeout(resolve, 200)); // subscribed
    const made = new Promise<void>((resolve) => monitor.stdout!.on('data', (d: Buffer) => /lxc[0-9a-f]{8}/.test(d.toString()) && resolve()));
    const plugin = spawn(PLUGIN, [], { env: { PATH: process.env.PATH ?? '', CNI_COMMAND: 'ADD', CNI_PATH: '/usr/lib/cni', TENDRIL_SOCKET: node.socket, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    plugin.stdin!.end(conf());
    const exited = new Promise((resolve) => plugin.once('exit', resolve));
    await made;
    await midway(plugin);
    await exited;
    monitor.kill('SIGKILL');
  }

  before(async () => {
    topo = Topology.create();
    node = await topo.addNode();
  });
  after(async () => {
    await topo?.dispose();
  });

  test('VERSION lists 0.4.0, 1.0.0 and 1.1.0, answered by the plugin itself (no agent needed), as the agent would', async () => {
    const r = await cni('VERSION', {}, '{"cniVersion":"1.0.0"}');
    assert.equal(r.code, 0);
    assert.deepEqual(r.out, { cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
    for (const stdin of ['{"cniVersion":"0.4.0"}', '{"cniVersion":"9.9.9"}', '', '{']) {
      const local = await cni('VERSION', {}, stdin, '/nonexistent/agent.sock');
      assert.equal(local.code, 0, local.raw);
      assert.deepEqual(local.out, formatVersionInfo(requestedVersion(stdin)), stdin);
    }
  });

  test('ADD attaches the container and returns a spec-conformant result; CHECK passes; DEL removes every trace and is idempotent', async () => {
    const env = await container('c1');
    const add = await cni('ADD', { ...env, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;TENDRIL_LABELS=org=empire,class=deathstar' }, conf());
    assert.equal(add.code, 0, add.raw);
    const r = add.out;
    assert.equal(r.cniVersion, '1.0.0');
    const idx = r.interfaces.findIndex((i: any) => i.name === 'eth0');
    assert.equal(r.interfaces[idx].sandbox, env.CNI_NETNS);
    assert.match(r.interfaces[idx].mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    assert.equal(r.ips.length, 2);
    for (const ip of r.ips) assert.equal(ip.interface, idx);
    assert.deepEqual(r.routes.map((x: any) => x.dst).sort(), ['0.0.0.0/0', '::/0']);
    const v4 = r.ips.find((ip: any) => !ip.address.includes(':')).address.split('/')[0];

    // The endpoint carries the labels from CNI_ARGS, and the container really has the address.
    const ep = (await node.client.listEndpoints()).find((e) => e.ipv4 === v4)!;
    assert.deepEqual(ep.labels, { class: 'deathstar', 'io.kubernetes.pod.name': 'web', 'io.kubernetes.pod.namespace': 'default', org: 'empire' });
    assert.match(await must(['ip', '-4', 'addr', 'show', 'dev', 'eth0'], { netns: env.CNI_NETNS }), new RegExp(`inet ${v4.replace(/\./g, '\\.')}/32`));

    const check = await cni('CHECK', env, conf({ prevResult: r }));
    assert.equal(check.code, 0, check.raw);

    // A route the plugin made goes missing: CHECK says so.
    await must(['ip', 'route', 'del', 'default'], { netns: env.CNI_NETNS });
    const broken = await cni('CHECK', env, conf({ prevResult: r }));
    assert.equal(broken.code, 1);
    assert.equal(broken.out.code, 101);
    assert.match(broken.out.msg, /default route/);

    const del = await cni('DEL', env, conf({ prevResult: r }));
    assert.equal(del.code, 0, del.raw);
    assert.equal(del.raw, '');
    assert.equal((await node.client.listEndpoints()).some((e) => e.ipv4 === v4), false);
    assert.doesNotMatch(await must(['ip', 'link', 'show'], { netns: env.CNI_NETNS }), /eth0/);
    // Again, and for a container never seen: success.
    assert.equal((await cni('DEL', env, conf())).code, 0);
    assert.equal((await cni('DEL', { ...env, CNI_CONTAINERID: 'never-seen' }, conf())).code, 0);
  });

  test('0.4.0 results name the IP version; a second ADD of the same attachment is refused', async () => {
    const env = await container('c2');
    const add = await cni('ADD', env, conf({}, '0.4.0'));
    assert.equal(add.code, 0, add.raw);
    assert.deepEqual(add.out.ips.map((ip: any) => ip.version).sort(), ['4', '6']);
    const again = await cni('ADD', env, conf({}, '0.4.0'));
    assert.equal(again.code, 1);
    assert.equal(again.out.cniVersion, '0.4.0');
    assert.equal((await cni('DEL', env, conf({}, '0.4.0'))).code, 0);
  });

  test('chained after another plugin: the previous result is handed on with ours appended', async () => {
    const env = await container('c3');
    const prevResult = { cniVersion: '1.0.0', interfaces: [{ name: 'dummy' }], ips: [{ address: '192.168.77.2/24', interface: 0 }], routes: [], dns: { nameservers: ['192.168.77.1'] } };
    const add = await cni('ADD', env, conf({ prevResult }));
    assert.equal(add.code, 0, add.raw);
    assert.deepEqual(add.out.interfaces[0], { name: 'dummy' });
    assert.deepEqual(add.out.ips[0], { address: '192.168.77.2/24', interface: 0 });
    assert.deepEqual(add.out.dns, { nameservers: ['192.168.77.1'] });
    assert.equal(add.out.ips.length, 3);
    assert.equal((await cni('DEL', env, conf())).code, 0);
  });

  test('GC (1.1.0) removes the attachments the runtime no longer lists', async () => {
    const keep = await container('gc-keep');
    const drop = await container('gc-drop');
    assert.equal((await cni('ADD', keep, conf({}, '1.1.0'))).code, 0);
    assert.equal((await cni('ADD', drop, conf({}, '1.1.0'))).code, 0);
    const gc = await cni('GC', {}, conf({ 'cni.dev/valid-attachments': [{ containerID: keep.CNI_CONTAINERID, ifname: 'eth0' }] }, '1.1.0'));
    assert.equal(gc.code, 0, gc.raw);
    const netnses = (await node.client.listEndpoints()).map((e) => e.netns);
    assert.ok(netnses.includes(keep.CNI_NETNS!));
    assert.ok(!netnses.includes(drop.CNI_NETNS!));
    assert.equal((await cni('STATUS', {}, conf({}, '1.1.0'))).code, 0);
    assert.equal((await cni('DEL', keep, conf({}, '1.1.0'))).code, 0);
  });

  test('every error class: a CNI error object on stdout and a non-zero exit, nothing created', async () => {
    const env = await container('bad');
    const before = (await node.client.listEndpoints()).length;
    const cases: Array<[string, Record<string, string>, string, number, string?]> = [
      ['missing CNI_NETNS', { ...env, CNI_NETNS: '' }, conf(), 4],
      ['missing CNI_IFNAME', { ...env, CNI_IFNAME: '' }, conf(), 4],
      ['unsupported version', env, conf({}, '0.3.1'), 1],
      ['invalid JSON', env, '{"cniVersion": "1.0.0", ', 6],
      ['wrong type', env, conf({ type: 'bridge' }), 7],
      ['bad label in the configuration', env, conf({ runtimeConfig: { labels: { 'bad key!': 'x' } } }), 7],
      ['bad port mapping', env, conf({ runtimeConfig: { portMappings: [{ hostPort: 0, containerPort: 80 }] } }), 7],
      ['bad label in CNI_ARGS', { ...env, CNI_ARGS: 'TENDRIL_LABELS=org' }, conf(), 4],
      ['agent unreachable', env, conf(), 11, '/nonexistent/agent.sock'],
    ];
    for (const [what, e, stdin, code, socket] of cases) {
      const r = await cni('ADD', e, stdin, socket);
      assert.equal(r.code, 1, `${what}: exit ${r.code}`);
      assert.equal(r.out.code, code, `${what}: ${r.raw}`);
      assert.equal(typeof r.out.msg, 'string');
      assert.ok(r.out.cniVersion, `${what}: cniVersion in the error`);
    }
    assert.equal((await node.client.listEndpoints()).length, before);
    assert.doesNotMatch(await must(['ip', 'link', 'show'], { netns: env.CNI_NETNS }), /eth0/);
  });

  test('the plugin killed mid-ADD leaves nothing the next DEL, or a GC, cannot clean', async () => {
    const links = await hostLinks();
    for (const cleanup of ['DEL', 'GC'] as const) {
      const env = await container(`killed-${cleanup.toLowerCase()}`);
      await addInterrupted(env, (plugin) => plugin.kill('SIGKILL'));
      // The agent finishes the ADD it was asked for; the runtime, having no result, cleans up.
      const made = await waitFor(async () => (await node.client.listEndpoints()).some((e) => e.netns === env.CNI_NETNS));
      assert.ok(made, 'the agent completed the ADD its dead plugin asked for');
      const r = cleanup === 'DEL' ? await cni('DEL', env, conf()) : await cni('GC', {}, conf({ 'cni.dev/valid-attachments': [] }, '1.1.0'));
      assert.equal(r.code, 0, r.raw);
      assert.equal((await node.client.listEndpoints()).some((e) => e.netns === env.CNI_NETNS), false, `${cleanup}: the endpoint is gone`);
      assert.deepEqual(await hostLinks(), links, `${cleanup}: no host link left`);
      assert.doesNotMatch(await must(['ip', 'link', 'show'], { netns: env.CNI_NETNS }), /eth0/);
      // Its address is free again: a new ADD of the same container succeeds.
      assert.equal((await cni('ADD', env, conf())).code, 0);
      assert.equal((await cni('DEL', env, conf())).code, 0);
    }
  });

  test('the agent killed mid-ADD: the restarted agent removes the half-made endpoint and DEL succeeds', async () => {
    const links = await hostLinks();
    const env = await container('agent-killed');
    await addInterrupted(env, () => node.agent!.kill('SIGKILL'));
    await node.startAgent();
    assert.equal((await node.client.listEndpoints()).some((e) => e.netns === env.CNI_NETNS), false);
    assert.deepEqual(await hostLinks(), links, 'the half-made link is gone');
    assert.equal((await cni('DEL', env, conf())).code, 0);
    const add = await cni('ADD', env, conf());
    assert.equal(add.code, 0, add.raw);
    assert.equal((await cni('DEL', env, conf())).code, 0);
  });

  test('an agent restart between ADD and DEL: CHECK still passes, DEL removes every trace', async () => {
    const links = await hostLinks();
    const env = await container('restart');
    const add = await cni('ADD', env, conf());
    assert.equal(add.code, 0, add.raw);
    await node.agent!.kill('SIGTERM');
    // Meanwhile the runtime calls and gets a clear error, not a hang.
    const down = await cni('CHECK', env, conf({ prevResult: add.out }));
    assert.equal(down.code, 1);
    assert.equal(down.out.code, 11, down.raw);
    await node.startAgent();
    const check = await cni('CHECK', env, conf({ prevResult: add.out }));
    assert.equal(check.code, 0, check.raw);
    assert.equal((await cni('DEL', env, conf({ prevResult: add.out }))).code, 0);
    assert.equal((await node.client.listEndpoints()).some((e) => e.netns === env.CNI_NETNS), false);
    assert.deepEqual(await hostLinks(), links);
  });
});
