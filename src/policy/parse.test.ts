import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IDENTITY_ANY, IDENTITY_CLASS_ENDPOINTS, IDENTITY_CLASS_WORLD, ReservedIdentity } from '../common/identity.js';
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP } from '../common/policy-entry.js';
import { selectorMatches } from '../common/selector.js';
import { referencedCidrs } from './cidr.js';
import type { Peer, PeerRule, Policy } from './model.js';
import { parsePolicyFiles } from './parse.js';

const parseYaml = (text: string) => parsePolicyFiles([{ file: 'policy.yaml', text }]);
const one = (text: string): Policy => {
  const policies = parseYaml(text);
  assert.equal(policies.length, 1);
  return policies[0]!;
};
const cnp = (spec: string, metadata = '{name: p, namespace: x}') =>
  one(`apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: ${metadata}\nspec:\n${spec.replace(/^/gm, '  ')}\n`);
const knp = (spec: string, metadata = '{name: k}') =>
  one(`apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: ${metadata}\nspec:\n${spec.replace(/^/gm, '  ')}\n`);
const rulesOf = (p: Policy): PeerRule[] => p.specs.flatMap((s) => [...s.rules]);
const identities = (peers: readonly Peer[]) => peers.map((p) => (p.kind === 'identity' ? p.identity : undefined));

test('a namespaced CiliumNetworkPolicy scopes its endpointSelector and fromEndpoints to its namespace', () => {
  const p = cnp('endpointSelector: {matchLabels: {class: deathstar}}\ningress:\n- fromEndpoints: [{matchLabels: {org: empire}}]');
  assert.equal(p.kind, 'CiliumNetworkPolicy');
  assert.equal(p.key, 'x/p');
  const spec = p.specs[0]!;
  assert.equal(spec.path, 'spec');
  assert.ok(selectorMatches(spec.subject, { class: 'deathstar', 'io.kubernetes.pod.namespace': 'x' }));
  assert.ok(!selectorMatches(spec.subject, { class: 'deathstar', 'io.kubernetes.pod.namespace': 'y' }));
  assert.ok(!selectorMatches(spec.subject, { class: 'deathstar' }));
  const peer = spec.rules[0]!.peers[0]!;
  assert.equal(peer.kind, 'endpoints');
  if (peer.kind !== 'endpoints') return;
  assert.ok(selectorMatches(peer.selector, { org: 'empire', 'io.kubernetes.pod.namespace': 'x' }));
  assert.ok(!selectorMatches(peer.selector, { org: 'empire', 'io.kubernetes.pod.namespace': 'y' }));
});

test('a peer selector naming the namespace, a namespace label or a reserved label is not scoped', () => {
  const p = cnp(
    [
      'endpointSelector: {}',
      'ingress:',
      "- fromEndpoints: [{matchLabels: {'k8s:io.kubernetes.pod.namespace': y, org: empire}}]",
      "- fromEndpoints: [{matchLabels: {'io.cilium.k8s.namespace.labels.team': red}}]",
      "- fromEndpoints: [{matchLabels: {'reserved:host': ''}}]",
    ].join('\n'),
  );
  const [a, b, c] = rulesOf(p).map((r) => r.peers[0]!);
  if (a?.kind !== 'endpoints' || b?.kind !== 'endpoints' || c?.kind !== 'endpoints') return assert.fail('endpoint peers expected');
  assert.ok(selectorMatches(a.selector, { org: 'empire', 'io.kubernetes.pod.namespace': 'y' }));
  assert.ok(selectorMatches(b.selector, { 'io.kubernetes.pod.namespace': 'z', 'io.cilium.k8s.namespace.labels.team': 'red' }));
  assert.ok(selectorMatches(c.selector, { 'reserved:host': '' }));
});

test('a cluster-wide CiliumNetworkPolicy selects in every namespace', () => {
  const p = cnp('endpointSelector: {matchLabels: {class: deathstar}}\ningress:\n- fromEndpoints: [{}]', '{name: p}');
  assert.equal(p.key, 'p');
  assert.equal(p.namespace, undefined);
  assert.ok(selectorMatches(p.specs[0]!.subject, { class: 'deathstar', 'io.kubernetes.pod.namespace': 'y' }));
  const peer = p.specs[0]!.rules[0]!.peers[0]!;
  assert.deepEqual(peer, { kind: 'endpoints', selector: { requirements: [] } });
});

test('specs is a list of rules, each with its own path', () => {
  const p = one(`
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
specs:
- endpointSelector: {matchLabels: {a: "1"}}
  description: first
  ingress: [{fromEntities: [host]}]
- endpointSelector: {matchLabels: {b: "2"}}
  egress: [{toEntities: [world]}, {toEntities: [all]}]
  egressDeny: [{toEntities: [host]}]
`);
  assert.deepEqual(
    rulesOf(p).map((r) => [r.path, r.direction, r.verdict]),
    [
      ['specs[0].ingress[0]', 'ingress', 'allow'],
      ['specs[1].egress[0]', 'egress', 'allow'],
      ['specs[1].egress[1]', 'egress', 'allow'],
      ['specs[1].egressDeny[0]', 'egress', 'deny'],
    ],
  );
  assert.deepEqual(
    p.specs.map((s) => s.enforces),
    [
      { ingress: true, egress: false },
      { ingress: false, egress: true },
    ],
  );
});

test('a direction is enforced when its key is present, even empty; ingressDeny alone enforces ingress', () => {
  assert.deepEqual(cnp('endpointSelector: {}\ningress: []').specs[0]!.enforces, { ingress: true, egress: false });
  assert.deepEqual(cnp('endpointSelector: {}\ningress: [{}]').specs[0]!.enforces, { ingress: true, egress: false });
  assert.deepEqual(cnp('endpointSelector: {}\ningressDeny: [{fromEntities: [world]}]').specs[0]!.enforces, { ingress: true, egress: false });
  assert.deepEqual(cnp('endpointSelector: {}\negressDeny: []').specs[0]!.enforces, { ingress: false, egress: true });
  assert.deepEqual(cnp('endpointSelector: {}').specs[0]!.enforces, { ingress: false, egress: false });
});

test('toPorts: protocol defaults to ANY (TCP, UDP, SCTP); port "0" or none means every port', () => {
  const p = cnp(
    [
      'endpointSelector: {}',
      'ingress:',
      '- toPorts: [{ports: [{port: "80"}]}]',
      '- toPorts: [{ports: [{port: "0", protocol: TCP}, {protocol: UDP}]}]',
      '- toPorts: [{ports: [{port: 8000, endPort: 8080, protocol: SCTP}]}]',
      '- toPorts: [{ports: [{port: 53, protocol: UDP}]}, {ports: [{port: "53", protocol: TCP}]}]',
    ].join('\n'),
  );
  const [a, b, c, d] = rulesOf(p);
  assert.deepEqual(a!.ports, [
    { protocol: PROTO_TCP, first: 80, last: 80 },
    { protocol: PROTO_UDP, first: 80, last: 80 },
    { protocol: PROTO_SCTP, first: 80, last: 80 },
  ]);
  assert.deepEqual(b!.ports, [
    { protocol: PROTO_TCP, first: 0, last: 65535 },
    { protocol: PROTO_UDP, first: 0, last: 65535 },
  ]);
  assert.deepEqual(c!.ports, [{ protocol: PROTO_SCTP, first: 8000, last: 8080 }]);
  assert.deepEqual(d!.ports, [
    { protocol: PROTO_UDP, first: 53, last: 53 },
    { protocol: PROTO_TCP, first: 53, last: 53 },
  ]);
});

test('a rule with only toPorts admits every peer, one with only peers every port, {} nothing', () => {
  const p = cnp('endpointSelector: {}\ningress:\n- toPorts: [{ports: [{port: "80"}]}]\n- fromEntities: [host]\n- {}');
  const [portsOnly, peersOnly, empty] = rulesOf(p);
  assert.deepEqual(identities(portsOnly!.peers), [IDENTITY_ANY]);
  assert.deepEqual(identities(peersOnly!.peers), [ReservedIdentity.host]);
  assert.equal(peersOnly!.ports, undefined);
  assert.deepEqual(empty!.peers, []);
  assert.equal(empty!.ports, undefined);
});

test('entities map to reserved identities, the world class, ANY; cluster to the node side plus every endpoint', () => {
  const p = cnp('endpointSelector: {}\negress:\n- toEntities: [all]\n- toEntities: [world]\n- toEntities: [cluster]\n- toEntities: [kube-apiserver, remote-node]');
  const [all, world, cluster, named] = rulesOf(p).map((r) => identities(r.peers));
  assert.deepEqual(all, [IDENTITY_ANY]);
  assert.deepEqual(world, [IDENTITY_CLASS_WORLD]);
  assert.deepEqual(
    [...cluster!].sort((x, y) => x! - y!),
    [1, 3, 4, 5, 6, 7, 8, IDENTITY_CLASS_ENDPOINTS],
  );
  assert.deepEqual(named, [ReservedIdentity['kube-apiserver'], ReservedIdentity['remote-node']]);
});

test('CIDR peers are normalised; except lies inside; host bits are cleared', () => {
  const p = cnp(
    [
      'endpointSelector: {}',
      'egress:',
      '- toCIDR: [10.1.2.3/8, "2001:DB8:0:0::/32", 203.0.113.7]',
      '  toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16, 10.2.3.0/24]}]',
    ].join('\n'),
  );
  assert.deepEqual(rulesOf(p)[0]!.peers, [
    { kind: 'cidr', cidr: '10.0.0.0/8', except: [] },
    { kind: 'cidr', cidr: '2001:db8::/32', except: [] },
    { kind: 'cidr', cidr: '203.0.113.7/32', except: [] },
    { kind: 'cidr', cidr: '10.0.0.0/8', except: ['10.1.0.0/16', '10.2.3.0/24'] },
  ]);
  assert.deepEqual(referencedCidrs([p]), ['10.0.0.0/8', '10.1.0.0/16', '10.2.3.0/24', '2001:db8::/32', '203.0.113.7/32']);
});

test('referencedCidrs collects both formats and leaves the zero-length prefixes to world', () => {
  const policies = parseYaml(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: k}
spec:
  podSelector: {}
  egress: [{to: [{ipBlock: {cidr: 0.0.0.0/0, except: [192.168.0.0/16]}}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: c}
spec:
  endpointSelector: {}
  ingress: [{fromCIDR: ["::/0", "fd10::/16"]}]
`);
  assert.deepEqual(referencedCidrs(policies), ['192.168.0.0/16', 'fd10::/16']);
});

test('NetworkPolicy: namespace defaults to "default", podSelector {} selects the namespace, policyTypes defaults to Ingress', () => {
  const p = knp('podSelector: {}');
  assert.equal(p.key, 'default/k');
  assert.equal(p.kind, 'NetworkPolicy');
  const spec = p.specs[0]!;
  assert.deepEqual(spec.enforces, { ingress: true, egress: false });
  assert.deepEqual(spec.rules, []);
  assert.ok(selectorMatches(spec.subject, { 'io.kubernetes.pod.namespace': 'default' }));
  assert.ok(!selectorMatches(spec.subject, { 'io.kubernetes.pod.namespace': 'other' }));
  assert.ok(!selectorMatches(spec.subject, {}));
});

test('NetworkPolicy: spec.egress adds Egress to the default policyTypes; explicit policyTypes win', () => {
  assert.deepEqual(knp('podSelector: {}\negress: []').specs[0]!.enforces, { ingress: true, egress: true });
  assert.deepEqual(knp('podSelector: {}\npolicyTypes: [Egress]').specs[0]!.enforces, { ingress: false, egress: true });
  const p = knp('podSelector: {}\npolicyTypes: [Egress]\ningress: [{}]\negress: [{}]');
  assert.deepEqual(
    rulesOf(p).map((r) => r.path),
    ['spec.egress[0]'],
    'ingress rules of a type policyTypes leaves out are ignored',
  );
});

test('NetworkPolicy rules: no peers admit every peer, no ports every port, protocol defaults to TCP', () => {
  const p = knp('podSelector: {}\ningress:\n- {}\n- ports: [{port: 80}, {protocol: UDP}, {port: 5000, endPort: 5010, protocol: SCTP}]');
  const [all, ported] = rulesOf(p);
  assert.deepEqual(identities(all!.peers), [IDENTITY_ANY]);
  assert.equal(all!.ports, undefined);
  assert.deepEqual(identities(ported!.peers), [IDENTITY_ANY]);
  assert.deepEqual(ported!.ports, [
    { protocol: PROTO_TCP, first: 80, last: 80 },
    { protocol: PROTO_UDP, first: 0, last: 65535 },
    { protocol: PROTO_SCTP, first: 5000, last: 5010 },
  ]);
});

test('NetworkPolicy peers: podSelector in the namespace, namespaceSelector across namespaces, both, ipBlock', () => {
  const p = knp(
    [
      'podSelector: {matchLabels: {app: db}}',
      'ingress:',
      '- from:',
      '  - podSelector: {matchLabels: {app: web}}',
      '  - namespaceSelector: {matchLabels: {team: red}}',
      '  - namespaceSelector: {matchLabels: {team: blue}}',
      '    podSelector: {matchLabels: {app: web}}',
      '  - ipBlock: {cidr: 203.0.113.0/24, except: [203.0.113.128/25]}',
    ].join('\n'),
    '{name: k, namespace: x}',
  );
  const [pods, namespaces, both, block] = rulesOf(p)[0]!.peers;
  if (pods?.kind !== 'endpoints' || namespaces?.kind !== 'endpoints' || both?.kind !== 'endpoints') return assert.fail('endpoint peers expected');
  const ep = (app: string, ns: string | undefined, team?: string) => ({
    app,
    ...(ns === undefined ? {} : { 'io.kubernetes.pod.namespace': ns }),
    ...(team === undefined ? {} : { 'io.cilium.k8s.namespace.labels.team': team }),
  });
  assert.ok(selectorMatches(pods.selector, ep('web', 'x')));
  assert.ok(!selectorMatches(pods.selector, ep('web', 'y')));
  assert.ok(selectorMatches(namespaces.selector, ep('anything', 'y', 'red')));
  assert.ok(!selectorMatches(namespaces.selector, ep('anything', 'y', 'blue')));
  assert.ok(selectorMatches(both.selector, ep('web', 'z', 'blue')));
  assert.ok(!selectorMatches(both.selector, ep('db', 'z', 'blue')));
  assert.ok(!selectorMatches(both.selector, ep('web', 'z', 'red')));
  assert.deepEqual(block, { kind: 'cidr', cidr: '203.0.113.0/24', except: ['203.0.113.128/25'] });
});

test('an empty namespaceSelector selects pods of every namespace but never a pod without one', () => {
  const p = knp('podSelector: {}\ningress: [{from: [{namespaceSelector: {}}]}]');
  const peer = rulesOf(p)[0]!.peers[0]!;
  if (peer.kind !== 'endpoints') return assert.fail('endpoint peer expected');
  assert.ok(selectorMatches(peer.selector, { 'io.kubernetes.pod.namespace': 'anything' }));
  assert.ok(!selectorMatches(peer.selector, { app: 'web' }));
});

test('Lists: typed Lists, kind List, JSON arrays; items inherit a typed List kind', () => {
  const policies = parsePolicyFiles([
    {
      file: 'list.yaml',
      text: `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicyList
metadata: {resourceVersion: ""}
items:
- metadata: {name: a}
  spec: {endpointSelector: {}}
- apiVersion: cilium.io/v2
  kind: CiliumNetworkPolicy
  metadata: {name: b}
  spec: {endpointSelector: {}}
---
apiVersion: v1
kind: List
items:
- {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: c}, spec: {podSelector: {}}}
- {apiVersion: cilium.io/v2, kind: CiliumNetworkPolicy, metadata: {name: d}, spec: {endpointSelector: {}}}
`,
    },
    {
      file: 'array.json',
      text: JSON.stringify([
        { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicy', metadata: { name: 'e', namespace: 'y' }, spec: { podSelector: {} } },
        { apiVersion: 'networking.k8s.io/v1', kind: 'NetworkPolicyList', items: [{ metadata: { name: 'f' }, spec: { podSelector: {} } }] },
      ]),
    },
  ]);
  assert.deepEqual(
    policies.map((p) => [p.kind, p.key]),
    [
      ['CiliumNetworkPolicy', 'a'],
      ['CiliumNetworkPolicy', 'b'],
      ['NetworkPolicy', 'default/c'],
      ['CiliumNetworkPolicy', 'd'],
      ['NetworkPolicy', 'y/e'],
      ['NetworkPolicy', 'default/f'],
    ],
  );
  assert.deepEqual(policies[0]!.document, { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'a' }, spec: { endpointSelector: {} } });
});

test('JSON documents and multi-document YAML with empty documents both work', () => {
  const json = { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'j' }, spec: { endpointSelector: {}, ingress: [{}] } };
  const fromJson = parsePolicyFiles([{ file: 'p.json', text: JSON.stringify(json, null, '\t') }]);
  assert.deepEqual(fromJson[0]!.document, json);
  const yaml = `---\n# leading comment\n---\n${'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: a}\nspec: {endpointSelector: {}}\n'}---\n${'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: b}\nspec: {endpointSelector: {}}\n'}---\n`;
  assert.deepEqual(
    parseYaml(yaml).map((p) => p.name),
    ['a', 'b'],
  );
});

test('kubectl output imports: metadata bookkeeping and status are accepted and ignored', () => {
  const p = one(`
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: k
  namespace: x
  uid: 5c1b7e8a-0000-0000-0000-000000000000
  resourceVersion: "123"
  generation: 2
  creationTimestamp: "2024-01-01T00:00:00Z"
  labels: {team: red}
  annotations: {note: hello}
spec:
  podSelector: {}
status: {}
`);
  assert.equal(p.key, 'x/k');
});
