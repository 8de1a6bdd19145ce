import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CIDR_IDENTITY_MIN,
  IDENTITY_ANY,
  IDENTITY_CLASS_ENDPOINTS,
  IDENTITY_CLASS_WORLD,
  ReservedIdentity,
} from '../common/identity.js';
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP, portRangeToPrefixes, type PolicyMapEntry } from '../common/policy-entry.js';
import { referencedCidrs } from './cidr.js';
import type { IdentityLabels } from './identity-index.js';
import { lookupEntries } from './lookup.js';
import { parsePolicyFiles } from './parse.js';
import { PolicyResolver } from './resolver.js';
import { RuleTable, formatRuleRef } from './rule-table.js';
import { cidrIdentities, endpointIdentity, reservedIdentities } from './testdata/identities.js';
import { verdictOracle } from './testdata/oracle.js';

const NS = 'io.kubernetes.pod.namespace';
const tiefighter = endpointIdentity(300, { org: 'empire', class: 'tiefighter' }, 'x');
const deathstar = endpointIdentity(301, { org: 'empire', class: 'deathstar' }, 'x');
const xwing = endpointIdentity(302, { org: 'alliance', class: 'xwing' }, 'x');
const tiefighterY = endpointIdentity(303, { org: 'empire', class: 'tiefighter' }, 'y');
const outsider = endpointIdentity(304, { org: 'empire', class: 'probe' });
const endpoints = [tiefighter, deathstar, xwing, tiefighterY, outsider];
const identities: IdentityLabels[] = [...reservedIdentities(), ...endpoints];

const policies = (yaml: string) => parsePolicyFiles([{ file: 'policy.yaml', text: yaml }]);
const cnp = (spec: string, metadata = '{name: p, namespace: x}') =>
  `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: ${metadata}\nspec:\n${spec.replace(/^/gm, '  ')}\n`;
const knp = (spec: string, metadata = '{name: k, namespace: x}') =>
  `apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: ${metadata}\nspec:\n${spec.replace(/^/gm, '  ')}\n`;
/** The deathstar's entries in one direction, without the rule ids. */
function entries(yaml: string, direction: 'ingress' | 'egress' = 'ingress', ids = identities, subject = deathstar) {
  return new PolicyResolver(policies(yaml), ids)
    .entriesFor(subject)
    .filter((e) => e.direction === direction)
    .map(({ identity, protocol, port, portPrefixLen, verdict }) => ({ identity, protocol, port, portPrefixLen, verdict }));
}
const allPorts = (identity: number, verdict: 'allow' | 'deny' = 'allow') => ({ identity, protocol: 0, port: 0, portPrefixLen: 0, verdict });
const onePort = (identity: number, protocol: number, port: number, verdict: 'allow' | 'deny' = 'allow') => ({
  identity,
  protocol,
  port,
  portPrefixLen: 16,
  verdict,
});
const DEATHSTAR = 'endpointSelector: {matchLabels: {class: deathstar}}';

test('an endpoint no policy selects gets one allow-all entry per direction, rule 0', () => {
  const resolver = new PolicyResolver(policies(cnp(`${DEATHSTAR}\ningress: [{fromEntities: [all]}]`)), identities);
  assert.deepEqual(resolver.entriesFor(xwing), [
    { direction: 'egress', identity: IDENTITY_ANY, protocol: 0, port: 0, portPrefixLen: 0, verdict: 'allow', ruleId: 0 },
    { direction: 'ingress', identity: IDENTITY_ANY, protocol: 0, port: 0, portPrefixLen: 0, verdict: 'allow', ruleId: 0 },
  ]);
  assert.deepEqual(new PolicyResolver([], identities).entriesFor(deathstar).length, 2);
});

test('L3 only: the selected peers, every port and protocol; the other direction stays allow-all', () => {
  const yaml = cnp(`${DEATHSTAR}\ningress: [{fromEndpoints: [{matchLabels: {org: empire}}]}]`);
  assert.deepEqual(entries(yaml), [allPorts(300), allPorts(301)], 'org=empire in namespace x only');
  assert.deepEqual(entries(yaml, 'egress'), [allPorts(IDENTITY_ANY)]);
});

test('L4 only: every peer on the ports; ANY is TCP, UDP and SCTP', () => {
  assert.deepEqual(entries(cnp(`${DEATHSTAR}\ningress: [{toPorts: [{ports: [{port: "80"}]}]}]`)), [
    onePort(IDENTITY_ANY, PROTO_TCP, 80),
    onePort(IDENTITY_ANY, PROTO_UDP, 80),
    onePort(IDENTITY_ANY, PROTO_SCTP, 80),
  ]);
  assert.deepEqual(entries(cnp(`${DEATHSTAR}\ningress: [{toPorts: [{ports: [{protocol: UDP}]}]}]`)), [
    { identity: IDENTITY_ANY, protocol: PROTO_UDP, port: 0, portPrefixLen: 0, verdict: 'allow' },
  ]);
});

test('L3 and L4 together: every selected peer on every port', () => {
  const yaml = cnp(
    `${DEATHSTAR}\ningress:\n- fromEndpoints: [{matchLabels: {class: tiefighter}}, {matchLabels: {class: xwing}}]\n  toPorts: [{ports: [{port: "80", protocol: TCP}, {port: "443", protocol: TCP}]}]`,
  );
  assert.deepEqual(entries(yaml), [onePort(300, PROTO_TCP, 80), onePort(300, PROTO_TCP, 443), onePort(302, PROTO_TCP, 80), onePort(302, PROTO_TCP, 443)]);
});

test('port ranges become the fewest prefixes, edge values included', () => {
  const range = (first: number, last: number) =>
    portRangeToPrefixes(first, last).map(({ port, prefixLen }) => ({ identity: IDENTITY_ANY, protocol: PROTO_TCP, port, portPrefixLen: prefixLen, verdict: 'allow' }));
  const rule = (ports: string) => cnp(`${DEATHSTAR}\ningress: [{toPorts: [{ports: [${ports}]}]}]`);
  assert.deepEqual(entries(rule('{port: 8000, endPort: 8080, protocol: TCP}')), range(8000, 8080));
  assert.equal(range(8000, 8080).length, 3); // 8000-8063, 8064-8079, 8080
  assert.deepEqual(entries(rule('{port: 1, endPort: 65535, protocol: TCP}')), range(1, 65535));
  assert.equal(range(1, 65535).length, 16);
  assert.deepEqual(entries(rule('{port: 65535, protocol: TCP}')), [onePort(IDENTITY_ANY, PROTO_TCP, 65535)]);
  assert.deepEqual(entries(rule('{port: 1, protocol: TCP}')), [onePort(IDENTITY_ANY, PROTO_TCP, 1)]);
  assert.deepEqual(entries(rule('{port: 80, endPort: 80, protocol: TCP}')), [onePort(IDENTITY_ANY, PROTO_TCP, 80)]);
  assert.deepEqual(entries(rule('{port: "0", protocol: TCP}')), [{ identity: IDENTITY_ANY, protocol: PROTO_TCP, port: 0, portPrefixLen: 0, verdict: 'allow' }]);
  const resolved = new PolicyResolver(policies(rule('{port: 8000, endPort: 8080, protocol: TCP}')), identities).entriesFor(deathstar);
  for (const [port, expected] of [[7999, 'deny'], [8000, 'allow'], [8080, 'allow'], [8081, 'deny']] as const)
    assert.equal(lookupEntries(resolved, 'ingress', 300, PROTO_TCP, port).verdict, expected, `port ${port}`);
});

test('entities: all is ANY, world the world class, cluster the node side plus the endpoint class, host its id', () => {
  const rule = (entity: string) => entries(cnp(`${DEATHSTAR}\negress: [{toEntities: [${entity}]}]`), 'egress');
  assert.deepEqual(rule('all'), [allPorts(IDENTITY_ANY)]);
  assert.deepEqual(rule('world'), [allPorts(IDENTITY_CLASS_WORLD)]);
  assert.deepEqual(rule('host'), [allPorts(ReservedIdentity.host)]);
  assert.deepEqual(
    rule('cluster').map((e) => e.identity),
    [1, 3, 4, 5, 6, 7, 8, IDENTITY_CLASS_ENDPOINTS],
  );
  // "all" makes every other peer of the rule redundant.
  assert.deepEqual(rule('world, all, host'), [allPorts(IDENTITY_ANY)]);
});

test('CIDR peers select CIDR identities by their cidr: labels; except leaves the inner prefixes out', () => {
  const prefixes = ['10.0.0.0/8', '10.1.0.0/16', '10.2.0.0/16', '203.0.113.0/24', '2001:db8::/32'];
  const cidrs = cidrIdentities(prefixes);
  const id = (prefix: string) => CIDR_IDENTITY_MIN + prefixes.indexOf(prefix);
  const ids = [...identities, ...cidrs];
  const setRule = cnp(`${DEATHSTAR}\negress: [{toCIDRSet: [{cidr: 10.0.0.0/8, except: [10.1.0.0/16]}]}]`);
  assert.deepEqual(referencedCidrs(policies(setRule)), ['10.0.0.0/8', '10.1.0.0/16']);
  assert.deepEqual(entries(setRule, 'egress', ids), [allPorts(id('10.0.0.0/8')), allPorts(id('10.2.0.0/16'))]);
  assert.deepEqual(entries(cnp(`${DEATHSTAR}\negress: [{toCIDR: [10.0.0.0/8]}]`), 'egress', ids), [
    allPorts(id('10.0.0.0/8')),
    allPorts(id('10.1.0.0/16')),
    allPorts(id('10.2.0.0/16')),
  ]);
  assert.deepEqual(entries(cnp(`${DEATHSTAR}\negress: [{toCIDR: ["2001:db8::/32"]}]`), 'egress', ids), [allPorts(id('2001:db8::/32'))]);
  // 0.0.0.0/0 is world plus every IPv4 CIDR identity.
  assert.deepEqual(
    entries(cnp(`${DEATHSTAR}\negress: [{toCIDR: [0.0.0.0/0]}]`), 'egress', ids).map((e) => e.identity),
    [ReservedIdentity.world, id('10.0.0.0/8'), id('10.1.0.0/16'), id('10.2.0.0/16'), id('203.0.113.0/24')],
  );
  // A KNP ipBlock selects the same, and never an endpoint.
  assert.deepEqual(
    entries(knp('podSelector: {}\npolicyTypes: [Egress]\negress: [{to: [{ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]}]'), 'egress', ids),
    [allPorts(id('10.0.0.0/8')), allPorts(id('10.2.0.0/16'))],
  );
});

test('an empty endpoint selector: the endpoint class in a cluster-wide policy, the namespace in a namespaced one', () => {
  const clusterWide = cnp(`${DEATHSTAR}\ningress: [{fromEndpoints: [{}]}]`, '{name: p}');
  assert.deepEqual(entries(clusterWide), [allPorts(IDENTITY_CLASS_ENDPOINTS)]);
  const namespaced = cnp(`${DEATHSTAR}\ningress: [{fromEndpoints: [{}]}]`);
  assert.deepEqual(
    entries(namespaced).map((e) => e.identity),
    [300, 301, 302],
  );
});

test('selectors pick endpoint identities only, unless they name a reserved label', () => {
  const notIn = cnp(`${DEATHSTAR}\ningress: [{fromEndpoints: [{matchExpressions: [{key: org, operator: NotIn, values: [empire]}]}]}]`, '{name: p}');
  assert.deepEqual(
    entries(notIn).map((e) => e.identity),
    [302],
  );
  const host = cnp(`${DEATHSTAR}\ningress: [{fromEndpoints: [{matchLabels: {'reserved:host': ''}}]}]`);
  assert.deepEqual(entries(host), [allPorts(ReservedIdentity.host)]);
});

test('a NetworkPolicy namespaceSelector and podSelector resolve to the endpoints of both', () => {
  const team = (id: number, ns: string, t: string, app: string) => endpointIdentity(id, { app, [`io.cilium.k8s.namespace.labels.team`]: t }, ns);
  const ids = [...identities, team(400, 'a', 'red', 'web'), team(401, 'a', 'red', 'db'), team(402, 'b', 'blue', 'web'), team(403, 'c', 'red', 'web')];
  const yaml = knp('podSelector: {matchLabels: {class: deathstar}}\ningress:\n- from: [{namespaceSelector: {matchLabels: {team: red}}, podSelector: {matchLabels: {app: web}}}]');
  assert.deepEqual(
    entries(yaml, 'ingress', ids).map((e) => e.identity),
    [400, 403],
  );
  const namespaceOnly = knp('podSelector: {}\ningress: [{from: [{namespaceSelector: {matchLabels: {"kubernetes.io/metadata.name": b}}}]}]');
  assert.deepEqual(
    entries(namespaceOnly, 'ingress', ids).map((e) => e.identity),
    [402],
  );
});

test('deny wins: covered allows are pruned, lookups deny', () => {
  const yaml = cnp(
    [
      DEATHSTAR,
      'ingress:',
      '- fromEndpoints: [{matchLabels: {org: empire}}]',
      '- fromEndpoints: [{matchLabels: {class: tiefighter}}]',
      '  toPorts: [{ports: [{port: "22", protocol: TCP}]}]',
      'ingressDeny:',
      '- fromEndpoints: [{matchLabels: {class: tiefighter}}]',
      '- toPorts: [{ports: [{port: "22", protocol: TCP}]}]',
    ].join('\n'),
  );
  assert.deepEqual(entries(yaml), [onePort(IDENTITY_ANY, PROTO_TCP, 22, 'deny'), allPorts(300, 'deny'), allPorts(301)]);
  const resolved = new PolicyResolver(policies(yaml), identities).entriesFor(deathstar);
  assert.equal(lookupEntries(resolved, 'ingress', 300, PROTO_TCP, 80).verdict, 'deny');
  assert.equal(lookupEntries(resolved, 'ingress', 301, PROTO_TCP, 22).verdict, 'deny');
  assert.equal(lookupEntries(resolved, 'ingress', 301, PROTO_TCP, 80).verdict, 'allow');
});

test('a deny in one policy beats an allow in another', () => {
  const allow = cnp(`${DEATHSTAR}\negress: [{toEntities: [world]}]`, '{name: allow, namespace: x}');
  const deny = cnp(`${DEATHSTAR}\negressDeny: [{toEntities: [world]}]`, '{name: deny, namespace: x}');
  assert.deepEqual(entries(`${allow}---\n${deny}`, 'egress'), [allPorts(IDENTITY_CLASS_WORLD, 'deny')]);
});

test('a selected direction with no rules or only empty rules stays empty: default deny', () => {
  for (const yaml of [
    cnp(`${DEATHSTAR}\ningress: []`),
    cnp(`${DEATHSTAR}\ningress: [{}]`),
    cnp(`${DEATHSTAR}\ningressDeny: []`),
    knp('podSelector: {matchLabels: {class: deathstar}}'),
    knp('podSelector: {}\npolicyTypes: [Ingress, Egress]\negress: [{ports: [{port: 53, protocol: UDP}]}]'),
  ]) {
    const resolved = new PolicyResolver(policies(yaml), identities).entriesFor(deathstar);
    assert.deepEqual(
      resolved.filter((e) => e.direction === 'ingress'),
      [],
      yaml,
    );
    assert.equal(lookupEntries(resolved, 'ingress', 300, PROTO_TCP, 80).verdict, 'deny');
  }
  // A NetworkPolicy rule {} allows everything.
  assert.deepEqual(entries(knp('podSelector: {}\ningress: [{}]')), [allPorts(IDENTITY_ANY)]);
});

test('policies selecting the same endpoint add up', () => {
  const a = cnp(`${DEATHSTAR}\ningress: [{fromEndpoints: [{matchLabels: {class: tiefighter}}]}]`, '{name: a, namespace: x}');
  const b = knp('podSelector: {matchLabels: {class: deathstar}}\ningress: [{ports: [{port: 443}]}]', '{name: b, namespace: x}');
  assert.deepEqual(entries(`${a}---\n${b}`), [onePort(IDENTITY_ANY, PROTO_TCP, 443), allPorts(300)]);
  const other = cnp(`${DEATHSTAR}\ningress: [{fromEntities: [host]}]`, '{name: c, namespace: y}');
  assert.deepEqual(entries(`${a}---\n${other}`), [allPorts(300)], 'a policy of namespace y does not select x');
});

test('the entry count does not grow with the identities a wildcard covers', () => {
  const yaml = cnp(
    `${DEATHSTAR}\ningress:\n- fromEntities: [all]\n- fromEntities: [world]\n  toPorts: [{ports: [{port: "80", protocol: TCP}]}]\negress:\n- toEntities: [cluster]\n- toEndpoints: [{}]\n  toPorts: [{ports: [{port: "53"}]}]`,
    '{name: p}',
  );
  const count = (n: number) => {
    const many = Array.from({ length: n }, (_, i) => endpointIdentity(1000 + i, { app: `a${i}` }, `ns${i % 7}`));
    const cidrs = cidrIdentities(Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`));
    return new PolicyResolver(policies(yaml), [...identities, ...many, ...cidrs]).entriesFor(deathstar).length;
  };
  assert.equal(count(10), count(2000));
  assert.equal(count(10), 1 + 1 + 8 + 3);
});

test('rule ids are >= 1, name their rule and stay the same when a table is shared', () => {
  const yaml = cnp(`${DEATHSTAR}\ningress:\n- fromEntities: [host]\n- fromEntities: [world]`, '{name: allow-web, namespace: x}');
  const table = new RuleTable();
  const resolver = new PolicyResolver(policies(yaml), identities, table);
  const byIdentity = new Map(resolver.entriesFor(deathstar).map((e) => [e.identity, e.ruleId]));
  const worldRule = byIdentity.get(IDENTITY_CLASS_WORLD)!;
  assert.ok(worldRule >= 1);
  assert.deepEqual(table.ref(worldRule), { policy: 'x/allow-web', path: 'spec.ingress[1]', direction: 'ingress', verdict: 'allow' });
  assert.equal(formatRuleRef(table.ref(worldRule)!), 'x/allow-web ingress[1]');
  // Another policy first does not renumber existing rules.
  const more = `${cnp(`${DEATHSTAR}\ningress: [{}]`, '{name: other, namespace: x}')}---\n${yaml}`;
  const again = new PolicyResolver(policies(more), identities, table).entriesFor(deathstar);
  assert.equal(again.find((e) => e.identity === IDENTITY_CLASS_WORLD)!.ruleId, worldRule);
});

test('endpoints with equal labels share one result, whatever the label order', () => {
  const resolver = new PolicyResolver(policies(cnp(`${DEATHSTAR}\ningress: [{fromEntities: [host]}]`)), identities);
  const reordered = { labels: Object.fromEntries(Object.entries(deathstar.labels).reverse()) };
  assert.equal(resolver.resolve(deathstar), resolver.resolve(reordered));
  assert.deepEqual(resolver.resolve(deathstar).enforcedBy, { ingress: ['x/p'], egress: [] });
  const entriesCopy: PolicyMapEntry[] = resolver.entriesFor(deathstar);
  entriesCopy.pop();
  assert.equal(resolver.entriesFor(deathstar).length, 2, 'callers get their own array');
});

test('an endpoint without a namespace label is selected by no namespaced policy', () => {
  const yaml = cnp(`endpointSelector: {}\ningress: [{fromEntities: [host]}]`);
  assert.equal(new PolicyResolver(policies(yaml), identities).resolve(outsider).enforcedBy.ingress.length, 0);
  assert.equal(new PolicyResolver(policies(yaml), identities).resolve({ labels: { ...outsider.labels, [NS]: 'x' } }).enforcedBy.ingress.length, 1);
});

test('random policies: every lookup of the resolved entries agrees with the semantics on labels', () => {
  let seed = 42;
  const random = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  const pick = <T>(items: readonly T[]): T => items[random(items.length)]!;
  const prefixes = ['10.0.0.0/8', '10.1.0.0/16', '10.1.2.0/24', '203.0.113.0/24'];
  const ids = [...identities, ...cidrIdentities(prefixes)];
  const peerKinds = [
    () => `fromEntities: [${pick(['all', 'world', 'cluster', 'host', 'health'])}]`,
    () => `fromEndpoints: [{matchLabels: {${pick(['org: empire', 'class: tiefighter', 'org: alliance'])}}}]`,
    () => `fromEndpoints: [{matchExpressions: [{key: org, operator: ${pick(['NotIn', 'In'])}, values: [empire]}]}]`,
    () => 'fromEndpoints: [{}]',
    () => `fromCIDR: [${pick(prefixes)}]`,
    () => `fromCIDRSet: [{cidr: 10.0.0.0/8, except: [${pick(['10.1.0.0/16', '10.1.2.0/24'])}]}]`,
  ];
  const portKinds = [
    () => '',
    () => `toPorts: [{ports: [{port: "${pick([22, 80, 8080])}", protocol: ${pick(['TCP', 'UDP', 'ANY'])}}]}]`,
    () => `toPorts: [{ports: [{port: "${pick([1, 79, 8000])}", endPort: ${pick([80, 8080, 65535])}, protocol: TCP}]}]`,
    () => 'toPorts: [{ports: [{protocol: UDP}]}]',
  ];
  const rule = () => {
    const parts = [...Array(random(3))].map(() => pick(peerKinds)()).concat(pick(portKinds)()).filter((p) => p !== '');
    // Drop duplicate keys (YAML forbids them).
    const byKey = new Map(parts.map((p) => [p.slice(0, p.indexOf(':')), p]));
    return `{${[...byKey.values()].join(', ')}}`;
  };
  const probes: Array<[number, number]> = [[PROTO_TCP, 22], [PROTO_TCP, 80], [PROTO_TCP, 8080], [PROTO_TCP, 65535], [PROTO_UDP, 80], [PROTO_UDP, 53], [PROTO_SCTP, 80], [1, 0]];
  const seen = { allow: 0, deny: 0, redirect: 0 };
  for (let round = 0; round < 60; round++) {
    const docs = [...Array(1 + random(3))].map((_, i) => {
      const lines = [`endpointSelector: {matchLabels: {org: empire}}`];
      for (const key of ['ingress', 'ingressDeny']) if (random(3)) lines.push(`${key}: [${[...Array(random(3))].map(rule).join(', ')}]`);
      return cnp(lines.join('\n'), `{name: r${i}${random(2) ? ', namespace: x' : ''}}`);
    });
    const yaml = docs.join('---\n');
    const parsed = policies(yaml);
    const resolver = new PolicyResolver(parsed, ids);
    for (const subject of [deathstar, tiefighterY]) {
      const resolved = resolver.entriesFor(subject);
      const expected = verdictOracle(parsed, subject.labels);
      for (const peer of ids)
        for (const [protocol, port] of probes) {
          const verdict = lookupEntries(resolved, 'ingress', peer.id, protocol, port).verdict;
          assert.equal(verdict, expected('ingress', peer, protocol, port), `${yaml}\npeer ${peer.id} ${protocol}/${port}`);
          seen[verdict]++;
        }
    }
  }
  assert.ok(seen.allow > 1000 && seen.deny > 1000, JSON.stringify(seen));
});
