/**
 * Identity-based L3/L4 policy end to end on one node: pods with different
 * labels and an "outside world" netns, real TCP and UDP traffic, policies
 * imported through the CLI in both formats, and what the monitor, trace and
 * identity commands say about it.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Topology, REPO, must, sleep, type Node, type Pod, type World } from './harness/topology.js';

const PROBE_TOOL = join(REPO, 'dist', 'test', 'tools', 'probe.js');

/** app=web admits role=frontend only: on TCP 80, or on everything. */
const WEB_FROM_FRONTEND_TCP80 = `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: web-from-frontend }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
  - fromEndpoints: [ { matchLabels: { role: frontend } } ]
    toPorts:
    - ports: [ { port: "80", protocol: TCP } ]`;
const WEB_FROM_FRONTEND = `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: web-from-frontend }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
  - fromEndpoints: [ { matchLabels: { role: frontend } } ]`;

interface Target {
  host: string;
  port: number;
  proto: 'tcp' | 'udp';
}

async function reach(netnsPath: string, targets: Target[], timeoutMs = 1500): Promise<boolean[]> {
  const text = await must([process.execPath, PROBE_TOOL, 'probe', String(timeoutMs), JSON.stringify(targets)], { netns: netnsPath });
  return JSON.parse(text) as boolean[];
}

describe('L3/L4 identity policy', () => {
  let topo: Topology;
  let node: Node;
  let world: World;
  let web: Pod;
  let good: Pod;
  let bad: Pod;
  let policyNo = 0;

  /** Writes `text` to a new file and imports it; returns the CLI's result. */
  async function importPolicy(text: string, expectOk = true) {
    const file = join(topo.dir, `policy-${++policyNo}.yaml`);
    writeFileSync(file, text);
    const r = await node.cli(['policy', 'import', file]);
    if (expectOk) assert.equal(r.code, 0, `import failed: ${r.stderr}`);
    return { ...r, file };
  }

  async function clearPolicies() {
    assert.equal((await node.cli(['policy', 'delete', '--all'])).code, 0);
  }

  const to = (pod: Pod | World, port: number, proto: 'tcp' | 'udp'): Target => ({ host: pod.ipv4, port, proto });

  before(async () => {
    topo = Topology.create();
    node = await topo.addNode({ start: false });
    world = await topo.addWorld(node);
    await node.startAgent();
    web = await topo.addPod(node, 'web', 'app=web');
    good = await topo.addPod(node, 'good', 'role=frontend');
    bad = await topo.addPod(node, 'bad', 'role=intruder');
    for (const ns of [web.netnsPath, world.netnsPath, good.netnsPath]) {
      const child = topo.spawnIn(ns, [process.execPath, PROBE_TOOL, 'serve', '80', '81']);
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (d: Buffer) => d.toString().includes('listening') && resolve());
        child.once('exit', (code) => reject(new Error(`probe server exited ${code}`)));
      });
    }
  });
  after(async () => {
    await topo?.dispose();
  });

  test('default allow: pods with any labels, and the world, reach each other over TCP and UDP', async () => {
    assert.deepEqual(await reach(good.netnsPath, [to(web, 80, 'tcp'), to(web, 80, 'udp'), to(web, 81, 'tcp'), to(world, 80, 'tcp'), to(world, 80, 'udp')]), [true, true, true, true, true]);
    assert.deepEqual(await reach(bad.netnsPath, [to(web, 80, 'tcp'), to(web, 80, 'udp')]), [true, true]);
    assert.deepEqual(await reach(world.netnsPath, [to(web, 80, 'tcp'), to(web, 80, 'udp')]), [true, true]);
  });

  test('an ingress policy admits one label set only; monitor shows verdicts with their rule and "policy denied" drops', async () => {
    const verdicts = node.monitor(['--type', 'policy']);
    const drops = node.monitor(['--type', 'drop']);
    await sleep(300); // the streams are open before the traffic starts
    try {
      await importPolicy(WEB_FROM_FRONTEND_TCP80);
      assert.deepEqual(await reach(good.netnsPath, [to(web, 80, 'tcp'), to(web, 80, 'udp'), to(web, 81, 'tcp')]), [true, false, false]);
      assert.deepEqual(await reach(bad.netnsPath, [to(web, 80, 'tcp'), to(web, 80, 'udp')]), [false, false]);
      assert.deepEqual(await reach(world.netnsPath, [to(web, 80, 'tcp')]), [false]);
      // Other directions are not selected: web still reaches out, and the frontend is open.
      assert.deepEqual(await reach(web.netnsPath, [to(good, 80, 'tcp'), to(world, 80, 'udp')]), [true, true]);
      await sleep(300);
    } finally {
      await verdicts.stop();
      await drops.stop();
    }
    const allowed = verdicts.events.find((e) => e.verdict === 'allow' && e.source === good.ipv4 && e.destinationPort === 80 && e.protocol === 'TCP' && e.direction === 'ingress');
    assert.ok(allowed, `no ingress allow verdict for frontend -> web:80 among ${verdicts.events.length} events`);
    assert.match(String(allowed.rule), /web-from-frontend/);
    const denied = verdicts.events.find((e) => e.verdict === 'deny' && e.source === bad.ipv4 && e.destinationPort === 80 && e.direction === 'ingress');
    assert.ok(denied, 'a deny verdict for the intruder');
    const drop = drops.events.find((e) => e.source === bad.ipv4 && e.destination === web.ipv4);
    assert.ok(drop, 'the intruder\'s packets are dropped');
    assert.equal(drop.reason, 'policy denied');
    await clearPolicies();
    assert.deepEqual(await reach(bad.netnsPath, [to(web, 80, 'tcp')]), [true], 'deleting the policy opens the door again');
  });

  test('policy trace names the deciding rule, or says no rule selects the destination', async () => {
    await importPolicy(WEB_FROM_FRONTEND_TCP80);
    try {
      const ok = await node.cli(['policy', 'trace', '--src', 'role=frontend', '--dst', 'app=web', '--dport', '80/TCP']);
      assert.equal(ok.code, 0, ok.stderr);
      assert.match(ok.stdout, /allow/i);
      assert.match(ok.stdout, /web-from-frontend/);
      const byId = await node.cli(['policy', 'trace', '--src', String(bad.id), '--dst', String(web.id), '--dport', '80/TCP', '-o', 'json']);
      assert.equal(byId.code, 0, byId.stderr);
      assert.equal((JSON.parse(byId.stdout) as { verdict: string }).verdict, 'deny');
      const cidr = await node.cli(['policy', 'trace', '--src', `${world.ipv4}/32`, '--dst', 'app=web', '--dport', '80/TCP']);
      assert.match(cidr.stdout, /deny/i);
      const open = await node.cli(['policy', 'trace', '--src', 'app=web', '--dst', 'role=frontend', '--dport', '80/TCP']);
      assert.match(open.stdout, /no rule selects the destination: default allow/);
    } finally {
      await clearPolicies();
    }
  });

  test('an egress policy limits what a pod may open', async () => {
    await importPolicy(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: frontend-out }
spec:
  endpointSelector: { matchLabels: { role: frontend } }
  egress:
  - toEndpoints: [ { matchLabels: { app: web } } ]
    toPorts:
    - ports: [ { port: "80", protocol: ANY } ]`);
    try {
      assert.deepEqual(await reach(good.netnsPath, [to(web, 80, 'tcp'), to(web, 80, 'udp'), to(web, 81, 'tcp'), to(bad, 80, 'tcp'), to(world, 80, 'tcp')]), [true, true, false, false, false]);
      assert.deepEqual(await reach(web.netnsPath, [to(good, 80, 'tcp')]), [true], 'replies to connections it did not open still leave the frontend');
    } finally {
      await clearPolicies();
    }
  });

  test('CIDR rules to and from an outside-world netns, with except, and the world entity', async () => {
    try {
      await importPolicy(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: frontend-to-docs }
spec:
  endpointSelector: { matchLabels: { role: frontend } }
  egress:
  - toCIDR: [ 203.0.113.0/24 ]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: web-from-docs }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
  - fromCIDRSet: [ { cidr: 203.0.113.0/24 } ]`);
      assert.deepEqual(await reach(good.netnsPath, [to(world, 80, 'tcp'), to(world, 80, 'udp'), to(web, 80, 'tcp')]), [true, true, false]);
      assert.deepEqual(await reach(world.netnsPath, [to(web, 80, 'tcp')]), [true]);
      assert.deepEqual(await reach(bad.netnsPath, [to(web, 80, 'tcp')]), [false], 'a CIDR rule does not select pods');

      await importPolicy(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: frontend-to-docs }
spec:
  endpointSelector: { matchLabels: { role: frontend } }
  egress:
  - toCIDRSet: [ { cidr: 203.0.113.0/24, except: [ ${world.ipv4}/32 ] } ]`);
      assert.deepEqual(await reach(good.netnsPath, [to(world, 80, 'tcp')]), [false], 'the except carves the world pod out');

      await importPolicy(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: frontend-ipblock, namespace: default }
spec:
  podSelector: {}
  policyTypes: [Egress]
  egress:
  - to: [ { ipBlock: { cidr: 203.0.113.0/24 } } ]`);
      const g = await reach(good.netnsPath, [to(world, 80, 'tcp')]);
      assert.deepEqual(g, [false], 'the namespaced NetworkPolicy does not select the un-namespaced frontend; the CNP except still holds');

      await clearPolicies();
      await importPolicy(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: frontend-world }
spec:
  endpointSelector: { matchLabels: { role: frontend } }
  egress:
  - toEntities: [ world ]`);
      assert.deepEqual(await reach(good.netnsPath, [to(world, 81, 'udp'), to(web, 80, 'tcp')]), [true, false]);
    } finally {
      await clearPolicies();
    }
  });

  test('deny rules win over allow rules', async () => {
    await importPolicy(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: web-all-but-intruder }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
  - fromEntities: [ all ]
  ingressDeny:
  - fromEndpoints: [ { matchLabels: { role: intruder } } ]
    toPorts:
    - ports: [ { port: "80", protocol: TCP } ]`);
    try {
      assert.deepEqual(await reach(good.netnsPath, [to(web, 80, 'tcp'), to(web, 81, 'tcp')]), [true, true]);
      assert.deepEqual(await reach(bad.netnsPath, [to(web, 80, 'tcp'), to(web, 81, 'tcp'), to(web, 80, 'udp')]), [false, true, true]);
      assert.deepEqual(await reach(world.netnsPath, [to(web, 80, 'tcp')]), [true]);
    } finally {
      await clearPolicies();
    }
  });

  test('a policy change keeps an open connection it still allows and cuts one it no longer allows', async () => {
    /** web-in admits the frontend on one TCP port ("0": every TCP port); same name, so each import replaces it. */
    const webIn = (port: string) => `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: web-in }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
  - fromEndpoints: [ { matchLabels: { role: frontend } } ]
    toPorts:
    - ports: [ { port: "${port}", protocol: TCP } ]`;
    await importPolicy(webIn('0'));
    const stream = topo.spawnIn(good.netnsPath, [process.execPath, PROBE_TOOL, 'stream', web.ipv4, '81']);
    let out = '';
    stream.stdout!.on('data', (d: Buffer) => (out += d));
    const echoes = () => (out.match(/^echo /gm) ?? []).length;
    try {
      await waitFor(() => echoes() >= 3, 'the stream to start echoing');
      await importPolicy(webIn('81')); // port 81 still allowed, by another rule
      const before = echoes();
      await sleep(800);
      assert.ok(echoes() >= before + 4, `the stream kept flowing (${before} -> ${echoes()})`);
      assert.doesNotMatch(out, /closed/);
      await importPolicy(webIn('80'));
      await waitFor(() => /closed/.test(out), 'the stream to be cut', 5000);
      assert.match(out, /closed: no echo for 1 s/);
    } finally {
      stream.kill('SIGKILL');
      await clearPolicies();
    }
  });

  test('a broken file applies nothing and leaves the previous policy in force', async () => {
    await importPolicy(WEB_FROM_FRONTEND);
    try {
      const goodFile = join(topo.dir, 'open.yaml');
      writeFileSync(goodFile, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: web-from-all }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
  - fromEntities: [ all ]`);
      const badFile = join(topo.dir, 'broken.yaml');
      writeFileSync(badFile, `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: fine }
spec:
  endpointSelector: {}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: broken }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress:
  - toPorts:
    - ports: [ { port: "70000", protocol: TCP } ]`);
      const before = (await node.cli(['policy', 'list', '-o', 'json'])).stdout;
      const r = await node.cli(['policy', 'import', goodFile, badFile]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      assert.match(r.stderr, /broken\.yaml/);
      assert.match(r.stderr, /document 2/);
      assert.match(r.stderr, /ports\[0\]\.port/);
      assert.equal((await node.cli(['policy', 'list', '-o', 'json'])).stdout, before, 'the policy list did not change');
      assert.deepEqual(await reach(bad.netnsPath, [to(web, 80, 'tcp')]), [false], 'the previous policy still holds');
      assert.deepEqual(await reach(good.netnsPath, [to(web, 80, 'tcp')]), [true]);
    } finally {
      await clearPolicies();
    }
  });

  test('policy list, get and delete', async () => {
    await importPolicy(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: one }
spec:
  endpointSelector: { matchLabels: { app: web } }
  ingress: [ { fromEntities: [ all ] } ]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: two, namespace: shop }
spec:
  podSelector: {}`);
    const list = await node.cli(['policy', 'list']);
    assert.equal(list.code, 0);
    assert.match(list.stdout, /one/);
    assert.match(list.stdout, /shop\/two/);
    const get = await node.cli(['policy', 'get', 'one', '-o', 'json']);
    assert.equal(get.code, 0, get.stderr);
    assert.match(get.stdout, /CiliumNetworkPolicy/);
    assert.equal((await node.cli(['policy', 'get', 'nope'])).code, 1);
    assert.equal((await node.cli(['policy', 'delete', 'shop/two'])).code, 0);
    assert.doesNotMatch((await node.cli(['policy', 'list'])).stdout, /shop\/two/);
    assert.equal((await node.cli(['policy', 'delete', 'two'])).code, 1, 'deleting what is gone is an error');
    await clearPolicies();
    assert.equal(JSON.parse((await node.cli(['policy', 'list', '-o', 'json'])).stdout).length, 0);
  });

  test('policy holds while the agent is down and after it restarts; identities keep their numbers', async () => {
    await importPolicy(WEB_FROM_FRONTEND);
    try {
      const identitiesBefore = (await node.cli(['identity', 'list', '-o', 'json'])).stdout;
      await node.agent!.kill('SIGKILL');
      assert.deepEqual(await reach(good.netnsPath, [to(web, 80, 'tcp')]), [true], 'allowed with no agent running');
      assert.deepEqual(await reach(bad.netnsPath, [to(web, 80, 'tcp')]), [false], 'denied with no agent running');
      await node.startAgent();
      assert.match((await node.cli(['policy', 'list'])).stdout, /web-from-frontend/);
      assert.deepEqual(await reach(good.netnsPath, [to(web, 80, 'tcp')]), [true]);
      assert.deepEqual(await reach(bad.netnsPath, [to(web, 80, 'tcp')]), [false]);
      assert.equal((await node.cli(['identity', 'list', '-o', 'json'])).stdout, identitiesBefore);
    } finally {
      await clearPolicies();
    }
  });

  test('identities: one per label set, shared, reserved ones listed; identity get', async () => {
    const twin = await topo.addPod(node, 'web2', 'app=web');
    const eps = JSON.parse((await node.cli(['endpoint', 'list', '-o', 'json'])).stdout) as Array<{ id: number; identity: number }>;
    const idOf = (id: number) => eps.find((e) => e.id === id)!.identity;
    assert.equal(idOf(twin.id), idOf(web.id), 'same labels, same identity');
    assert.notEqual(idOf(good.id), idOf(web.id));
    assert.ok(idOf(web.id) >= 256);
    const list = await node.cli(['identity', 'list']);
    assert.equal(list.code, 0);
    assert.match(list.stdout, /reserved:host/);
    assert.match(list.stdout, /reserved:world/);
    assert.match(list.stdout, /app=web/);
    const one = JSON.parse((await node.cli(['identity', 'get', String(idOf(good.id)), '-o', 'json'])).stdout) as { id: number; labels: Record<string, string> };
    assert.deepEqual(one.labels, { role: 'frontend' });
    assert.equal((await node.cli(['identity', 'get', '99999'])).code, 1);
    assert.equal((await node.cli(['endpoint', 'delete', String(twin.id)])).code, 0);
  });

  test('endpoint label: a pod moves to the identity of its new labels and policy follows at once', async () => {
    await clearPolicies();
    await importPolicy(WEB_FROM_FRONTEND_TCP80);
    const idOf = async (id: number) => (JSON.parse((await node.cli(['endpoint', 'get', String(id), '-o', 'json'])).stdout) as { identity: number; labels: Record<string, string> });
    const frontendIdentity = (await idOf(good.id)).identity;
    assert.deepEqual(await reach(bad.netnsPath, [to(web, 80, 'tcp')]), [false]);

    const r = await node.cli(['endpoint', 'label', String(bad.id), 'role=frontend', 'tier=edge']);
    assert.equal(r.code, 0, r.stderr);
    const relabelled = await idOf(bad.id);
    assert.deepEqual(relabelled.labels, { role: 'frontend', tier: 'edge' });
    assert.notEqual(relabelled.identity, frontendIdentity, 'a different label set, a different identity');
    assert.deepEqual(await reach(bad.netnsPath, [to(web, 80, 'tcp')]), [true], 'admitted as a frontend now');

    assert.equal((await node.cli(['endpoint', 'label', String(bad.id), '--remove', 'tier'])).code, 0);
    assert.equal((await idOf(bad.id)).identity, frontendIdentity, 'the same labels as the frontend pod: its identity');
    assert.equal((await node.cli(['endpoint', 'label', String(bad.id), 'role=intruder'])).code, 0);
    assert.deepEqual(await reach(bad.netnsPath, [to(web, 80, 'tcp')]), [false], 'denied again');

    // Bad input: one line and exit 1 (a usage error: exit 2 and the usage), nothing changed.
    const before = await idOf(bad.id);
    for (const [args, code] of [
      [['endpoint', 'label', String(bad.id), '--remove', 'nosuchkey'], 1],
      [['endpoint', 'label', String(bad.id), 'bad key!=x'], 2],
      [['endpoint', 'label', String(bad.id)], 2],
      [['endpoint', 'label', '9999', 'a=b'], 1],
    ] as const) {
      const bad2 = await node.cli([...args]);
      assert.equal(bad2.code, code, `${args.join(' ')}: ${bad2.stderr}`);
      if (code === 1) assert.equal(bad2.stderr.trim().split('\n').length, 1, bad2.stderr);
    }
    assert.deepEqual(await idOf(bad.id), before);
    await clearPolicies();
  });
});

async function waitFor(cond: () => boolean, what: string, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}
