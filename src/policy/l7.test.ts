import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TendrilError } from '../common/errors.js';
import { IDENTITY_ANY } from '../common/identity.js';
import { PROTO_TCP } from '../common/policy-entry.js';
import type { IdentityLabels } from './identity-index.js';
import { lookupEntries } from './lookup.js';
import { parsePolicyFiles } from './parse.js';
import { PolicyResolver } from './resolver.js';
import { endpointIdentity, reservedIdentities } from './testdata/identities.js';
import { tracePolicy } from './trace.js';

const tiefighter = endpointIdentity(300, { org: 'empire', class: 'tiefighter' }, 'x');
const deathstar = endpointIdentity(301, { org: 'empire', class: 'deathstar' }, 'x');
const xwing = endpointIdentity(302, { org: 'alliance', class: 'xwing' }, 'x');
const identities: IdentityLabels[] = [...reservedIdentities(), tiefighter, deathstar, xwing];

const HEAD = 'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: rule1, namespace: x}\n';
const cnp = (spec: string) => `${HEAD}spec:\n${spec.replace(/^/gm, '  ')}\n`;
const DEATHSTAR = 'endpointSelector: {matchLabels: {org: empire, class: deathstar}}';
/** The seed's L7 policy: empire ships may only request landing. */
const LANDING = cnp(`${DEATHSTAR}
ingress:
- fromEndpoints: [{matchLabels: {org: empire}}]
  toPorts:
  - ports: [{port: "80", protocol: TCP}]
    rules:
      http:
      - {method: POST, path: /v1/request-landing}`);

const parse = (text: string) => parsePolicyFiles([{ file: 'l7.yaml', text }]);
const resolve = (text: string) => new PolicyResolver(parse(text), identities).resolve(deathstar);

function problem(text: string): string {
  try {
    parse(text);
  } catch (err) {
    assert.ok(err instanceof TendrilError && err.code === 'invalid-argument', String(err));
    assert.ok(!err.message.includes('\n'), err.message);
    return err.message;
  }
  return assert.fail('expected the policy to be refused');
}

test('toPorts rules.http is read into the port range, regexes and headers as written', () => {
  const [policy] = parse(
    cnp(`${DEATHSTAR}
ingress:
- toPorts:
  - ports: [{port: "80", protocol: TCP}, {port: "8080", endPort: 8081, protocol: TCP}]
    rules:
      http:
      - {method: "GET|HEAD", path: "/v1/.*", host: "deathstar(:80)?", headers: ["X-Token:  abc ", "X-Trace"]}
      - {}`),
  );
  const ports = policy!.specs[0]!.rules[0]!.ports!;
  assert.deepEqual(
    ports.map((p) => [p.protocol, p.first, p.last]),
    [
      [PROTO_TCP, 80, 80],
      [PROTO_TCP, 8080, 8081],
    ],
  );
  for (const p of ports)
    assert.deepEqual(p.http, [{ method: 'GET|HEAD', path: '/v1/.*', host: 'deathstar(:80)?', headers: ['X-Token: abc', 'X-Trace'] }, {}]);
});

test('an allow with HTTP rules becomes a redirect entry and hands its rules to the proxy', () => {
  const r = resolve(LANDING);
  const ingress = r.entries.filter((e) => e.direction === 'ingress');
  assert.deepEqual(
    ingress.map(({ identity, protocol, port, portPrefixLen, verdict }) => ({ identity, protocol, port, portPrefixLen, verdict })),
    [tiefighter.id, deathstar.id].map((identity) => ({ identity, protocol: PROTO_TCP, port: 80, portPrefixLen: 16, verdict: 'redirect' })),
  );
  // The deathstar itself is org=empire too, and selected as a peer.
  const peers = new Set(identities.filter((i) => i.labels.org === 'empire').map((i) => i.id));
  assert.deepEqual(
    r.l7.map((e) => ({ ...e, ruleId: 0 })),
    [...peers].sort((a, b) => a - b).map((identity) => ({
      direction: 'ingress',
      identity,
      firstPort: 80,
      lastPort: 80,
      rules: [{ method: 'POST', path: '/v1/request-landing' }],
      ruleId: 0,
    })),
  );
  assert.equal(lookupEntries(r.entries, 'ingress', tiefighter.id, PROTO_TCP, 80).verdict, 'redirect');
  assert.equal(lookupEntries(r.entries, 'ingress', tiefighter.id, PROTO_TCP, 81).verdict, 'deny');
  assert.equal(lookupEntries(r.entries, 'ingress', xwing.id, PROTO_TCP, 80).verdict, 'deny');
});

test('an L4 allow of the same peer and port wins over a redirect (every request allowed, no proxy)', () => {
  const both = `${LANDING}\n---\n${cnp(`${DEATHSTAR}\ningress:\n- fromEndpoints: [{matchLabels: {class: tiefighter}}]\n  toPorts: [{ports: [{port: "0", protocol: TCP}]}]`).replace('rule1', 'rule2')}`;
  const r = resolve(both);
  assert.equal(lookupEntries(r.entries, 'ingress', tiefighter.id, PROTO_TCP, 80).verdict, 'allow');
  assert.ok(!r.entries.some((e) => e.verdict === 'redirect' && e.identity === tiefighter.id), 'the covered redirect is pruned');
  // A broader allow (all, port 80) wins too, through the ANY entry.
  const classAllow = `${LANDING}\n---\n${cnp(`${DEATHSTAR}\ningress:\n- fromEntities: [all]\n  toPorts: [{ports: [{port: "80", protocol: TCP}]}]`).replace('rule1', 'rule2')}`;
  const c = resolve(classAllow);
  assert.ok(c.entries.some((e) => e.identity === IDENTITY_ANY && e.verdict === 'allow'));
  assert.ok(!c.entries.some((e) => e.verdict === 'redirect'));
  assert.equal(lookupEntries(c.entries, 'ingress', tiefighter.id, PROTO_TCP, 80).verdict, 'allow');
});

test('a deny wins over a redirect; an allow on another port leaves the redirect alone', () => {
  const deny = `${LANDING}\n---\n${cnp(`${DEATHSTAR}\ningressDeny:\n- fromEntities: [all]\n  toPorts: [{ports: [{port: "80", protocol: TCP}]}]`).replace('rule1', 'rule2')}`;
  const r = resolve(deny);
  assert.equal(lookupEntries(r.entries, 'ingress', tiefighter.id, PROTO_TCP, 80).verdict, 'deny');
  assert.ok(!r.entries.some((e) => e.verdict === 'redirect'));
  const other = `${LANDING}\n---\n${cnp(`${DEATHSTAR}\ningress:\n- fromEntities: [all]\n  toPorts: [{ports: [{port: "81", protocol: TCP}]}]`).replace('rule1', 'rule2')}`;
  const o = resolve(other);
  assert.equal(lookupEntries(o.entries, 'ingress', tiefighter.id, PROTO_TCP, 80).verdict, 'redirect');
  assert.equal(lookupEntries(o.entries, 'ingress', xwing.id, PROTO_TCP, 81).verdict, 'allow');
  assert.ok(o.entries.some((e) => e.identity === IDENTITY_ANY && e.port === 81));
});

test('egress HTTP rules redirect in the egress direction', () => {
  const text = cnp(`endpointSelector: {matchLabels: {class: tiefighter}}
egress:
- toEndpoints: [{matchLabels: {class: deathstar}}]
  toPorts: [{ports: [{port: "80", protocol: TCP}], rules: {http: [{method: GET}]}}]`);
  const r = new PolicyResolver(parse(text), identities).resolve(tiefighter);
  assert.equal(lookupEntries(r.entries, 'egress', deathstar.id, PROTO_TCP, 80).verdict, 'redirect');
  assert.deepEqual(
    r.l7.map((e) => [e.direction, e.identity, e.firstPort]),
    [['egress', deathstar.id, 80]],
  );
});

test('trace reports a redirect and the rule that sends the flow to the proxy', () => {
  const resolver = new PolicyResolver(parse(LANDING), identities);
  const t = tracePolicy(resolver, { source: { identity: tiefighter.id }, destination: { identity: deathstar.id }, protocol: PROTO_TCP, port: 80 });
  assert.equal(t.verdict, 'redirect');
  assert.equal(t.ingress?.verdict, 'redirect');
  assert.match(t.ingress!.reason, /through the L7 proxy/);
});

test('bad HTTP rules: one line naming the field, nothing parsed', () => {
  const at = 'l7.yaml: document 1 (CiliumNetworkPolicy "rule1"): spec.ingress[0].toPorts[0]';
  const withRules = (ports: string, rules: string) =>
    cnp(`${DEATHSTAR}\ningress:\n- toPorts: [{ports: [${ports}], rules: ${rules}}]`);
  const tcp80 = '{port: "80", protocol: TCP}';
  assert.equal(
    problem(withRules(tcp80, '{http: [{path: "/v1/(unclosed"}]}')),
    `${at}.rules.http[0].path: invalid regular expression "/v1/(unclosed": Unterminated group`,
  );
  assert.match(problem(withRules(tcp80, '{http: [{method: "*"}]}')), /rules\.http\[0\]\.method: invalid regular expression "\*"/);
  assert.equal(
    problem(withRules(tcp80, '{http: [{methods: GET}]}')),
    `${at}.rules.http[0].methods: unknown field (expected method, path, host, headers)`,
  );
  assert.equal(
    problem(withRules('{port: "80", protocol: UDP}', '{http: [{method: GET}]}')),
    `${at}.ports[0]: HTTP rules need protocol: TCP (this port is UDP)`,
  );
  assert.equal(
    problem(withRules('{port: "80"}', '{http: [{method: GET}]}')),
    `${at}.ports[0]: HTTP rules need protocol: TCP (this port is TCP, UDP, SCTP)`,
  );
  assert.equal(
    problem(withRules(tcp80, '{http: [{headers: [": abc"]}]}')),
    `${at}.rules.http[0].headers[0]: header ": abc" has no name (write "Name" or "Name: value")`,
  );
  assert.equal(
    problem(withRules(tcp80, '{http: [{headers: ["X Token: abc"]}]}')),
    `${at}.rules.http[0].headers[0]: header name "X Token" is not a valid HTTP header name`,
  );
  assert.equal(problem(withRules(tcp80, '{http: []}')), `${at}.rules.http: give at least one rule (an empty rule {} allows every request)`);
  assert.equal(problem(withRules(tcp80, '{}')), `${at}.rules: needs http (a list of HTTP rules)`);
  assert.equal(
    problem(withRules(tcp80, '{http: [{headerMatches: [{name: X}]}]}')),
    `${at}.rules.http[0].headerMatches: not supported: header matches (mismatch actions, secrets) are not implemented; list required headers in headers`,
  );
  assert.equal(
    problem(cnp(`${DEATHSTAR}\ningress:\n- toPorts: [{rules: {http: [{method: GET}]}}]`)),
    `${at}.rules: HTTP rules need ports (with protocol: TCP)`,
  );
  assert.equal(
    problem(cnp(`${DEATHSTAR}\ningressDeny:\n- toPorts: [{ports: [${tcp80}], rules: {http: [{method: GET}]}}]`)),
    'l7.yaml: document 1 (CiliumNetworkPolicy "rule1"): spec.ingressDeny[0].toPorts[0].rules: HTTP rules cannot be part of a deny rule (a deny applies to whole connections)',
  );
});
