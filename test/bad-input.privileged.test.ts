/**
 * Bad input gets one clear line, a non-zero exit, and changes nothing: the
 * agent's endpoints, addresses and links are the same before and after.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { Topology, AGENT_BIN, sh, must, type Node } from './harness/topology.js';

function assertOneLine(stderr: string, pattern: RegExp): void {
  assert.match(stderr, pattern);
  assert.ok(!/\n\s+at /.test(stderr), `stack trace in:\n${stderr}`);
}

describe('bad input to the agent and the CLI', () => {
  let topo: Topology;
  let node: Node;
  let snapshot: () => Promise<string>;

  before(async () => {
    // A /30 has room for exactly one pod: the second attach exhausts it.
    topo = Topology.create();
    node = await topo.addNode({ podCidr4: '10.200.9.0/30', podCidr6: 'fd10:200:0:9::/64' });
    snapshot = async () => {
      const eps = (await node.cli(['endpoint', 'list', '-o', 'json'])).stdout;
      // Link names only: carrier flags of a fresh link change on their own.
      const links = (await must(['ip', '-br', 'link', 'show'], { netns: node.netnsPath })).split('\n').map((l) => l.split(/\s+/)[0]);
      const map = (await node.cli(['map', 'dump', 'tnd_endpoints', '-o', 'json'])).stdout;
      return eps + links.join(' ') + map;
    };
  });
  after(async () => {
    await topo?.dispose();
  });

  test('unknown endpoint', async () => {
    for (const cmd of ['get', 'delete']) {
      const r = await node.cli(['endpoint', cmd, '4242']);
      assert.equal(r.code, 1);
      assertOneLine(r.stderr, /^tendril: endpoint 4242 does not exist/);
    }
  });

  test('a netns path that does not exist, or is not a netns', async () => {
    const before = await snapshot();
    let r = await node.cli(['endpoint', 'add', '--netns', '/run/netns/does-not-exist-' + topo.prefix]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /netns path "\/run\/netns\/does-not-exist-\w+" does not exist/);
    r = await node.cli(['endpoint', 'add', '--netns', '/etc/hostname']);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /"\/etc\/hostname" is not a network namespace/);
    r = await node.cli(['endpoint', 'add', '--netns', 'relative/path']);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /netns must be an absolute path/);
    assert.equal(await snapshot(), before);
  });

  test('a duplicate netns, then an exhausted IPAM range', async () => {
    const pod = await topo.addPod(node, 'pod-one');
    const before = await snapshot();
    let r = await node.cli(['endpoint', 'add', '--netns', pod.netnsPath]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, new RegExp(`netns "${pod.netnsPath}" is attached already as endpoint ${pod.id}`));
    const other = await topo.addNamespace('pod-two');
    r = await node.cli(['endpoint', 'add', '--netns', `/run/netns/${other}`]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /IPAM range 10\.200\.9\.0\/30 is exhausted/);
    assert.equal(await snapshot(), before);
    const links = await must(['ip', '-o', 'link', 'show'], { netns: `/run/netns/${other}` });
    assert.ok(!links.includes('eth0'), 'nothing was left in the pod netns');
  });

  test('malformed API requests', async () => {
    const before = await snapshot();
    await assert.rejects(node.client.call('POST', '/v1/endpoints', { netns: '/x', colour: 'red' }), /invalid endpoint: unknown field\(s\) "colour"/);
    await assert.rejects(node.client.call('POST', '/v1/endpoints', { netns: 42 }), /invalid endpoint field "netns"/);
    await assert.rejects(node.client.call('POST', '/v1/endpoints', { netns: '/x', labels: { 'bad key': 'v' } }), /label key "bad key" is invalid/);
    await assert.rejects(node.client.call('POST', '/v1/endpoints'), /needs a JSON body/);
    await assert.rejects(node.client.call('GET', '/v1/endpoints/abc'), /an endpoint id is a number/);
    await assert.rejects(node.client.call('GET', '/v1/nothing'), /no such API route/);
    await assert.rejects(node.client.call('PUT', '/v1/endpoints'), /PUT is not allowed/);
    await assert.rejects(node.client.call('GET', '/v1/maps/tnd_events'), /ring buffer/);
    await assert.rejects(node.client.call('GET', '/v1/monitor?type=everything'), /type must be drop, trace, policy or l7/);
    assert.equal(await snapshot(), before);
  });

  test('CLI usage errors exit 2 with the usage', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['endpoint', 'add'], /endpoint add needs --netns PATH/],
      [['endpoint', 'add', '--netns', '/x', '--labels', 'org'], /label "org" must be written key=value/],
      [['endpoint', 'get'], /missing argument/],
      [['endpoint', 'get', 'x1'], /endpoint ID must be a number/],
      [['endpoint', 'frobnicate'], /unknown endpoint command "frobnicate"/],
      [['status', '-o', 'yaml'], /unknown output format "yaml"/],
      [['monitor', '--type', 'everything'], /unknown event type "everything"/],
      [['bogus'], /unknown command "bogus"/],
      [['endpoint', 'list', '--colour'], /Unknown option '--colour'/],
    ];
    for (const [args, pattern] of cases) {
      const r = await node.cli(args);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, pattern);
      assert.match(r.stderr, /usage: tendril/);
    }
  });

  test('bad policy files: one line naming file, document and field; nothing changes', async () => {
    const cnp = (spec: string, name = 'p') => `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: { name: ${name} }\nspec:\n${spec}\n`;
    const ingress = (rule: string) => cnp(`  endpointSelector: { matchLabels: { app: web } }\n  ingress:\n  - ${rule}`);
    const cases: Array<[string, string, RegExp]> = [
      ['unknown field', cnp('  endpointSelector: {}\n  ingres: []'), /bad\.yaml: document 1 \(CiliumNetworkPolicy "p"\): spec.*ingres/],
      ['wrong type', cnp('  endpointSelector: {}\n  ingress: "everyone"'), /document 1 .*spec\.ingress/],
      ['invalid CIDR', ingress('fromCIDR: [ 10.0.0.300/8 ]'), /spec\.ingress\[0\]\.fromCIDR\[0\].*10\.0\.0\.300\/8/],
      ['port out of range', ingress('toPorts: [ { ports: [ { port: "70000", protocol: TCP } ] } ]'), /ports\[0\]\.port.*70000/],
      ['endPort below port', ingress('toPorts: [ { ports: [ { port: "90", endPort: 80, protocol: TCP } ] } ]'), /ports\[0\]\.endPort.*80/],
      ['unknown protocol', ingress('toPorts: [ { ports: [ { port: "80", protocol: QUIC } ] } ]'), /ports\[0\]\.protocol.*QUIC/],
      ['unknown entity', ingress('fromEntities: [ galaxy ]'), /fromEntities\[0\].*galaxy/],
      ['regex as label value', ingress('fromEndpoints: [ { matchLabels: { org: "emp.*" } } ]'), /fromEndpoints\[0\]\.matchLabels.*emp\.\*/],
      ['empty file', '', /bad\.yaml.*no (policy )?documents?/i],
      ['duplicate names', `${cnp('  endpointSelector: {}', 'twin')}---\n${cnp('  endpointSelector: {}', 'twin')}`, /twin.*(twice|duplicate)/i],
      ['YAML syntax', 'apiVersion: [unclosed', /bad\.yaml.*line 1/],
      ['unknown kind', 'apiVersion: v1\nkind: Pod\nmetadata: { name: x }\n', /document 1.*(apiVersion|kind)/],
      ['invalid HTTP path regex', ingress('toPorts: [ { ports: [ { port: "80", protocol: TCP } ], rules: { http: [ { path: "/v1/(" } ] } } ]'), /rules\.http\[0\]\.path: invalid regular expression "\/v1\/\("/],
      ['unknown key in rules.http', ingress('toPorts: [ { ports: [ { port: "80", protocol: TCP } ], rules: { http: [ { verb: GET } ] } } ]'), /rules\.http\[0\]\.verb: unknown field/],
      ['HTTP rules on a UDP port', ingress('toPorts: [ { ports: [ { port: "80", protocol: UDP } ], rules: { http: [ { method: GET } ] } } ]'), /ports\[0\]: HTTP rules need protocol: TCP/],
      ['header without a name', ingress('toPorts: [ { ports: [ { port: "80", protocol: TCP } ], rules: { http: [ { headers: [ ": token" ] } ] } } ]'), /headers\[0\]: header ": token" has no name/],
    ];
    const file = join(topo.dir, 'bad.yaml');
    const before = (await node.cli(['policy', 'list', '-o', 'json'])).stdout;
    const beforeMaps = await snapshot();
    for (const [what, text, pattern] of cases) {
      writeFileSync(file, text);
      const r = await node.cli(['policy', 'import', file]);
      assert.equal(r.code, 1, `${what}: exit ${r.code} ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${what}: one line, not:\n${r.stderr}`);
      assertOneLine(r.stderr, pattern);
    }
    const missing = await node.cli(['policy', 'import', join(topo.dir, 'no-such.yaml')]);
    assert.equal(missing.code, 1);
    assertOneLine(missing.stderr, /no-such\.yaml: cannot read it \(no such file\)/);
    assert.equal((await node.cli(['policy', 'import'])).code, 2, 'no file is a usage error');
    assert.equal((await node.cli(['policy', 'trace', '--src', 'app=x', '--dst', 'app=y', '--dport', '99999/TCP'])).code, 1);
    assert.equal((await node.cli(['policy', 'trace', '--src', 'not a thing', '--dst', '1', '--dport', '80'])).code, 1);
    assert.equal((await node.cli(['policy', 'list', '-o', 'json'])).stdout, before);
    assert.equal(await snapshot(), beforeMaps);
  });

  test('the CLI says when the agent cannot be reached', async () => {
    const r = await sh([process.execPath, join(AGENT_BIN, '..', 'tendril'), '--socket', join(topo.dir, 'nobody.sock'), 'status']);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /cannot reach the agent at .*nobody\.sock: is tendril-agent running\?/);
  });

  test('the agent refuses to start without root, without bpffs, or twice on one socket', async () => {
    const notBpf = join(topo.dir, 'not-bpffs');
    mkdirSync(notBpf);
    let r = await sh(['nsenter', `--net=${node.netnsPath}`, process.execPath, AGENT_BIN, ...node.agentArgs(), '--bpffs', notBpf]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, new RegExp(`${notBpf} is not a BPF filesystem: mount one with`));
    r = await sh(['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, AGENT_BIN, ...node.agentArgs()]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /must run as root/);
    r = await sh(['nsenter', `--net=${node.netnsPath}`, process.execPath, AGENT_BIN, ...node.agentArgs()]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr, /another agent is serving .*: stop it first/);
    r = await sh([process.execPath, AGENT_BIN, '--pod-cidr']);
    assert.equal(r.code, 2);
    r = await sh([process.execPath, AGENT_BIN, '--identity-linger', 'soon']);
    assert.equal(r.code, 2);
    assertOneLine(r.stderr, /--identity-linger "soon" is not a number of seconds/);
  });
});
