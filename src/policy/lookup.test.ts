import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CIDR_IDENTITY_MIN, IDENTITY_ANY, IDENTITY_CLASS_ENDPOINTS, IDENTITY_CLASS_WORLD } from '../common/identity.js';
import { PROTO_TCP, PROTO_UDP, type PolicyMapEntry } from '../common/policy-entry.js';
import { finalizeEntries } from './entries.js';
import { lookupEntries } from './lookup.js';

const entry = (e: Partial<PolicyMapEntry> & Pick<PolicyMapEntry, 'identity'>): PolicyMapEntry => ({
  direction: 'ingress',
  protocol: 0,
  port: 0,
  portPrefixLen: 0,
  verdict: 'allow',
  ruleId: 1,
  ...e,
});
const verdict = (entries: PolicyMapEntry[], identity: number, protocol: number, port: number) =>
  lookupEntries(entries, 'ingress', identity, protocol, port).verdict;

test('no matching entry is a drop (default deny), with no deciding entry', () => {
  assert.deepEqual(lookupEntries([], 'ingress', 300, PROTO_TCP, 80), { verdict: 'deny', entry: undefined });
  const egressOnly = [entry({ identity: IDENTITY_ANY, direction: 'egress' })];
  assert.equal(verdict(egressOnly, 300, PROTO_TCP, 80), 'deny');
});

test('the exact identity, its class and ANY are all tried', () => {
  assert.equal(verdict([entry({ identity: 300 })], 300, PROTO_TCP, 80), 'allow');
  assert.equal(verdict([entry({ identity: 300 })], 301, PROTO_TCP, 80), 'deny');
  assert.equal(verdict([entry({ identity: IDENTITY_CLASS_ENDPOINTS })], 301, PROTO_TCP, 80), 'allow');
  assert.equal(verdict([entry({ identity: IDENTITY_CLASS_ENDPOINTS })], 2, PROTO_TCP, 80), 'deny', 'world is no endpoint');
  assert.equal(verdict([entry({ identity: IDENTITY_CLASS_WORLD })], 2, PROTO_TCP, 80), 'allow');
  assert.equal(verdict([entry({ identity: IDENTITY_CLASS_WORLD })], CIDR_IDENTITY_MIN + 5, PROTO_TCP, 80), 'allow');
  assert.equal(verdict([entry({ identity: IDENTITY_CLASS_WORLD })], 1, PROTO_TCP, 80), 'deny', 'host is not in the world class');
  assert.equal(verdict([entry({ identity: IDENTITY_ANY })], 1, PROTO_UDP, 53), 'allow');
});

test('ports match by prefix; protocol 0 entries match every protocol and port', () => {
  const entries = [entry({ identity: 300, protocol: PROTO_TCP, port: 8000, portPrefixLen: 13 })]; // 8000-8007
  assert.equal(verdict(entries, 300, PROTO_TCP, 7999), 'deny');
  assert.equal(verdict(entries, 300, PROTO_TCP, 8000), 'allow');
  assert.equal(verdict(entries, 300, PROTO_TCP, 8007), 'allow');
  assert.equal(verdict(entries, 300, PROTO_TCP, 8008), 'deny');
  assert.equal(verdict(entries, 300, PROTO_UDP, 8000), 'deny');
  assert.equal(verdict([entry({ identity: 300 })], 300, 1, 0), 'allow', 'ICMP under a protocol-0 entry');
});

test('a deny found for any of the three identities wins over an allow found for another', () => {
  const entries = [entry({ identity: 300 }), entry({ identity: IDENTITY_ANY, protocol: PROTO_TCP, port: 22, portPrefixLen: 16, verdict: 'deny', ruleId: 2 })];
  const denied = lookupEntries(entries, 'ingress', 300, PROTO_TCP, 22);
  assert.equal(denied.verdict, 'deny');
  assert.equal(denied.entry?.ruleId, 2);
  assert.equal(verdict(entries, 300, PROTO_TCP, 23), 'allow');
});

test('within one identity the longest match decides: a narrower deny inside an allow', () => {
  const entries = [entry({ identity: 300 }), entry({ identity: 300, protocol: PROTO_TCP, port: 22, portPrefixLen: 16, verdict: 'deny', ruleId: 2 })];
  assert.equal(verdict(entries, 300, PROTO_TCP, 22), 'deny');
  assert.equal(verdict(entries, 300, PROTO_TCP, 80), 'allow');
});

test('finalizeEntries drops allows inside a deny of the same or a broader identity, so the longest match is right', () => {
  const allowNarrow = entry({ identity: 300, protocol: PROTO_TCP, port: 80, portPrefixLen: 16, ruleId: 1 });
  const denyBroad = entry({ identity: 300, verdict: 'deny', ruleId: 2 });
  const denyAnyTcp = entry({ identity: IDENTITY_ANY, protocol: PROTO_TCP, verdict: 'deny', ruleId: 3 });
  const allowClass = entry({ identity: IDENTITY_CLASS_ENDPOINTS, protocol: PROTO_TCP, port: 443, portPrefixLen: 16, ruleId: 4 });
  const allowUdp = entry({ identity: 301, protocol: PROTO_UDP, port: 53, portPrefixLen: 16, ruleId: 5 });
  const out = finalizeEntries([allowNarrow, denyBroad, denyAnyTcp, allowClass, allowUdp]);
  assert.deepEqual(
    out.map((e) => e.ruleId),
    [3, 2, 5],
  );
  // Without pruning, the longest match for 300/TCP/80 would be the allow.
  assert.equal(verdict([allowNarrow, denyBroad], 300, PROTO_TCP, 80), 'allow');
  assert.equal(verdict(finalizeEntries([allowNarrow, denyBroad]), 300, PROTO_TCP, 80), 'deny');
});

test('finalizeEntries merges equal entries keeping the lowest rule id; an allow equal to a deny goes', () => {
  const out = finalizeEntries([entry({ identity: 300, ruleId: 7 }), entry({ identity: 300, ruleId: 3 }), entry({ identity: 301, ruleId: 4 }), entry({ identity: 301, verdict: 'deny', ruleId: 9 })]);
  assert.deepEqual(
    out.map((e) => [e.identity, e.verdict, e.ruleId]),
    [
      [300, 'allow', 3],
      [301, 'deny', 9],
    ],
  );
});
