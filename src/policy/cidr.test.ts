import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CIDR_IDENTITY_MIN, ReservedIdentity } from '../common/identity.js';
import { formatPrefix } from '../common/ip.js';
import { identityForAddress, ownPrefixOf, parseCidr, prefixWithin } from './cidr.js';
import { cidrIdentities, reservedIdentities } from './testdata/identities.js';

test('parseCidr normalises, clears host bits and takes a bare address as its host prefix', () => {
  assert.equal(formatPrefix(parseCidr('10.1.2.3/8')), '10.0.0.0/8');
  assert.equal(formatPrefix(parseCidr('203.0.113.9')), '203.0.113.9/32');
  assert.equal(formatPrefix(parseCidr('2001:DB8:0::1/32')), '2001:db8::/32');
  assert.equal(formatPrefix(parseCidr('::/0')), '::/0');
  assert.throws(() => parseCidr('10.0.0.0/33'), /"10\.0\.0\.0\/33" has an invalid prefix length \(0-32\)/);
  assert.throws(() => parseCidr('10.0.0.0/'), /invalid prefix length/);
  assert.throws(() => parseCidr('10.0.0/8'), /"10\.0\.0\/8" is not a CIDR prefix/);
});

test('prefixWithin: same family, at least as long, inside', () => {
  assert.ok(prefixWithin(parseCidr('10.1.0.0/16'), parseCidr('10.0.0.0/8')));
  assert.ok(prefixWithin(parseCidr('10.0.0.0/8'), parseCidr('10.0.0.0/8')));
  assert.ok(!prefixWithin(parseCidr('10.0.0.0/8'), parseCidr('10.1.0.0/16')));
  assert.ok(!prefixWithin(parseCidr('11.0.0.0/16'), parseCidr('10.0.0.0/8')));
  assert.ok(!prefixWithin(parseCidr('::/128'), parseCidr('0.0.0.0/0')));
});

test('a CIDR identity stands for its longest cidr: label; an address maps to the longest containing one, else world', () => {
  const identities = [...reservedIdentities(), ...cidrIdentities(['10.0.0.0/8', '10.1.0.0/16', 'fd10::/16'])];
  assert.equal(formatPrefix(ownPrefixOf(identities.find((i) => i.id === CIDR_IDENTITY_MIN + 1)!.labels)!), '10.1.0.0/16');
  assert.equal(identityForAddress(identities, '10.1.2.3'), CIDR_IDENTITY_MIN + 1);
  assert.equal(identityForAddress(identities, '10.2.0.1'), CIDR_IDENTITY_MIN);
  assert.equal(identityForAddress(identities, '10.0.0.0/12'), CIDR_IDENTITY_MIN);
  assert.equal(identityForAddress(identities, '10.0.0.0/7'), ReservedIdentity.world);
  assert.equal(identityForAddress(identities, 'fd10::1'), CIDR_IDENTITY_MIN + 2);
  assert.equal(identityForAddress(identities, '198.51.100.1'), ReservedIdentity.world);
});
