import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CIDR_IDENTITY_MIN, ReservedIdentity } from '../common/identity.js';
import { TendrilError } from '../common/errors.js';
import { PROTO_TCP, PROTO_UDP } from '../common/policy-entry.js';
import { parsePolicyFiles } from './parse.js';
import { PolicyResolver } from './resolver.js';
import { cidrIdentities, endpointIdentity, reservedIdentities } from './testdata/identities.js';
import { tracePolicy } from './trace.js';

const tiefighter = endpointIdentity(300, { org: 'empire', class: 'tiefighter' }, 'x');
const deathstar = endpointIdentity(301, { org: 'empire', class: 'deathstar' }, 'x');
const xwing = endpointIdentity(302, { org: 'alliance', class: 'xwing' }, 'x');
const prefixes = ['203.0.113.0/24', '203.0.113.128/25'];
const identities = [...reservedIdentities(), tiefighter, deathstar, xwing, ...cidrIdentities(prefixes)];

const yaml = `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow-web, namespace: x}
spec:
  endpointSelector: {matchLabels: {class: deathstar}}
  ingress:
  - fromEntities: [host]
  - fromEndpoints: [{matchLabels: {org: empire}}]
    toPorts: [{ports: [{port: "80", protocol: TCP}]}]
  - fromCIDRSet: [{cidr: 203.0.113.0/24, except: [203.0.113.128/25]}]
  ingressDeny:
  - fromEndpoints: [{matchLabels: {class: tiefighter}}]
    toPorts: [{ports: [{port: "80", endPort: 90, protocol: TCP}]}]
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: fighters-out, namespace: x}
specs:
- endpointSelector: {matchLabels: {class: tiefighter}}
  egress: [{toEndpoints: [{matchLabels: {class: deathstar}}]}]
`;
const resolver = new PolicyResolver(parsePolicyFiles([{ file: 'p.yaml', text: yaml }]), identities);

test('both sides allow: the deciding rules are named', () => {
  const xwingToDeathstar = tracePolicy(resolver, { source: { identity: 302 }, destination: { identity: 301 }, protocol: PROTO_TCP, port: 80 });
  assert.equal(xwingToDeathstar.verdict, 'deny', 'alliance is not empire');
  assert.equal(xwingToDeathstar.egress?.reason, 'no rule selects the source: default allow');
  assert.equal(xwingToDeathstar.ingress?.reason, 'selected by x/allow-web for ingress, no rule allows this: default deny');

  const hostToDeathstar = tracePolicy(resolver, { source: { identity: ReservedIdentity.host }, destination: { identity: 301 }, protocol: PROTO_UDP, port: 53 });
  assert.equal(hostToDeathstar.verdict, 'allow');
  assert.equal(hostToDeathstar.egress, undefined, 'the host is no endpoint: no egress policy');
  assert.equal(hostToDeathstar.ingress?.reason, 'allowed by x/allow-web ingress[0]');
  assert.deepEqual(hostToDeathstar.ingress?.rule, { policy: 'x/allow-web', path: 'spec.ingress[0]', direction: 'ingress', verdict: 'allow' });
  assert.ok(hostToDeathstar.ingress!.ruleId >= 1);
});

test('a deny rule decides over an allow, and trace says which', () => {
  const result = tracePolicy(resolver, { source: { identity: 300 }, destination: { identity: 301 }, protocol: PROTO_TCP, port: 80 });
  assert.equal(result.verdict, 'deny');
  assert.equal(result.egress?.verdict, 'allow');
  assert.equal(result.egress?.reason, 'allowed by x/fighters-out specs[0].egress[0]');
  assert.equal(result.ingress?.reason, 'denied by x/allow-web ingressDeny[0]');
  assert.deepEqual(result.lines, [
    'source: identity 300 (class=tiefighter,io.kubernetes.pod.namespace=x,org=empire)',
    'destination: identity 301 (class=deathstar,io.kubernetes.pod.namespace=x,org=empire), protocol 6 port 80',
    'egress of the source: allow (allowed by x/fighters-out specs[0].egress[0])',
    'ingress of the destination: deny (denied by x/allow-web ingressDeny[0])',
    'verdict: deny',
  ]);
});

test('the source egress can deny on its own', () => {
  const result = tracePolicy(resolver, { source: { identity: 300 }, destination: { identity: 302 }, protocol: PROTO_TCP, port: 443 });
  assert.equal(result.egress?.verdict, 'deny');
  assert.equal(result.egress?.reason, 'selected by x/fighters-out for egress, no rule allows this: default deny');
  assert.equal(result.ingress?.reason, 'no rule selects the destination: default allow');
  assert.equal(result.verdict, 'deny');
});

test('an address source maps to the CIDR identity of its longest prefix, else to world', () => {
  const inside = tracePolicy(resolver, { source: { address: '203.0.113.7' }, destination: { identity: 301 }, protocol: PROTO_TCP, port: 22 });
  assert.equal(inside.source, CIDR_IDENTITY_MIN);
  assert.equal(inside.verdict, 'allow');
  assert.equal(inside.ingress?.reason, 'allowed by x/allow-web ingress[2]');
  const excepted = tracePolicy(resolver, { source: { address: '203.0.113.200' }, destination: { identity: 301 }, protocol: PROTO_TCP, port: 22 });
  assert.equal(excepted.source, CIDR_IDENTITY_MIN + 1);
  assert.equal(excepted.verdict, 'deny');
  const prefix = tracePolicy(resolver, { source: { address: '203.0.113.128/26' }, destination: { identity: 301 }, protocol: PROTO_TCP, port: 22 });
  assert.equal(prefix.source, CIDR_IDENTITY_MIN + 1);
  const elsewhere = tracePolicy(resolver, { source: { address: '198.51.100.1' }, destination: { identity: 301 }, protocol: PROTO_TCP, port: 22 });
  assert.equal(elsewhere.source, ReservedIdentity.world);
  assert.equal(elsewhere.verdict, 'deny');
  assert.equal(elsewhere.egress, undefined);
});

test('labels given by the caller stand for an identity the list lacks; an unknown endpoint identity is an error', () => {
  const result = tracePolicy(resolver, {
    source: { identity: 999, labels: { org: 'empire', class: 'probe', 'io.kubernetes.pod.namespace': 'x' } },
    destination: { identity: 301 },
    protocol: PROTO_TCP,
    port: 80,
  });
  assert.equal(result.verdict, 'deny', 'the entries name identities, and 999 has no entry');
  assert.throws(
    () => tracePolicy(resolver, { source: { identity: 999 }, destination: { identity: 301 }, protocol: PROTO_TCP, port: 80 }),
    (e: unknown) => e instanceof TendrilError && e.code === 'not-found' && e.message === 'source identity 999 is not known: give its labels or an identity that exists',
  );
  assert.throws(() => tracePolicy(resolver, { source: { address: 'nowhere' }, destination: { identity: 301 }, protocol: PROTO_TCP, port: 80 }), /"nowhere" is not a CIDR prefix/);
  assert.throws(() => tracePolicy(resolver, { source: { identity: 300 }, destination: { identity: 301 }, protocol: PROTO_TCP, port: 70000 }), /port 70000 is out of range 0-65535/);
});

test('an egress to the world is checked on the source side only', () => {
  const result = tracePolicy(resolver, { source: { identity: 300 }, destination: { address: '198.51.100.1' }, protocol: PROTO_TCP, port: 443 });
  assert.equal(result.destination, ReservedIdentity.world);
  assert.equal(result.ingress, undefined);
  assert.equal(result.egress?.verdict, 'deny');
  assert.equal(result.lines[3], 'ingress of the destination: not checked (not an endpoint: no ingress policy)');
});
