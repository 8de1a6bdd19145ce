import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CidrIdentities } from './cidr.js';
import { CIDR_IDENTITY_MIN, ReservedIdentity } from '../common/identity.js';

const M = CIDR_IDENTITY_MIN;

test('CidrIdentities gives each named prefix an identity labelled with every named prefix containing it', () => {
  const cidr = new CidrIdentities();
  const u = cidr.update(['10.0.0.0/8', '10.1.0.0/16', '192.168.0.0/24', '2001:db8::/32']);
  assert.deepEqual(u.removed, []);
  assert.deepEqual(u.changed, []);
  assert.deepEqual(u.added, [
    { id: M, labels: { 'cidr:0.0.0.0/0': '', 'cidr:10.0.0.0/8': '', 'reserved:world': '' } },
    { id: M + 1, labels: { 'cidr:0.0.0.0/0': '', 'cidr:10.0.0.0/8': '', 'cidr:10.1.0.0/16': '', 'reserved:world': '' } },
    { id: M + 2, labels: { 'cidr:0.0.0.0/0': '', 'cidr:192.168.0.0/24': '', 'reserved:world': '' } },
    { id: M + 3, labels: { 'cidr:2001:db8::/32': '', 'cidr:::/0': '', 'reserved:world': '' } },
  ]);
  assert.equal(cidr.identityOf('10.1.0.0/16'), M + 1);
  assert.equal(cidr.identityOf('10.2.0.0/16'), undefined);
  assert.deepEqual(cidr.get(M + 3), u.added[3]);
  assert.deepEqual(cidr.prefixes(), [
    { prefix: '10.0.0.0/8', id: M },
    { prefix: '10.1.0.0/16', id: M + 1 },
    { prefix: '192.168.0.0/24', id: M + 2 },
    { prefix: '2001:db8::/32', id: M + 3 },
  ]);
});

test('CidrIdentities maps length 0 prefixes to the world, which names both defaults', () => {
  const cidr = new CidrIdentities();
  const u = cidr.update(['0.0.0.0/0', '::/0', '10.0.0.0/8']);
  assert.deepEqual(u.added.map((i) => i.id), [M]);
  assert.equal(cidr.identityOf('0.0.0.0/0'), ReservedIdentity.world);
  assert.equal(cidr.identityOf('::/0'), ReservedIdentity.world);
  assert.deepEqual(cidr.list(), [
    { id: ReservedIdentity.world, labels: { 'cidr:0.0.0.0/0': '', 'cidr:::/0': '', 'reserved:world': '' } },
    { id: M, labels: { 'cidr:0.0.0.0/0': '', 'cidr:10.0.0.0/8': '', 'reserved:world': '' } },
  ]);
  assert.deepEqual(cidr.get(ReservedIdentity.world), cidr.list()[0]);
  assert.deepEqual(cidr.prefixes(), [{ prefix: '10.0.0.0/8', id: M }]);
});

test('CidrIdentities keeps ids of prefixes that stay, frees the rest, relabels what a new prefix contains', () => {
  const cidr = new CidrIdentities();
  cidr.update(['10.1.0.0/16', '172.16.0.0/12']);
  const u = cidr.update(['10.1.0.0/16', '10.0.0.0/8', '2001:DB8::/32']);
  assert.deepEqual(u.removed, [{ id: M + 1, labels: { 'cidr:0.0.0.0/0': '', 'cidr:172.16.0.0/12': '', 'reserved:world': '' } }]);
  assert.deepEqual(u.changed, [{ id: M, labels: { 'cidr:0.0.0.0/0': '', 'cidr:10.0.0.0/8': '', 'cidr:10.1.0.0/16': '', 'reserved:world': '' } }]);
  // New ids move forward past the freed one; IPv6 text is canonical.
  assert.deepEqual(u.added.map((i) => i.id), [M + 2, M + 3]);
  assert.equal(cidr.identityOf('2001:db8::/32'), M + 3);
  assert.equal(cidr.get(M + 1), undefined);
  const same = cidr.update(['10.0.0.0/8', '10.1.0.0/16', '2001:db8::/32', '10.0.0.0/8']);
  assert.deepEqual(same, { added: [], removed: [], changed: [] });
  const shrink = cidr.update(['10.1.0.0/16']);
  assert.deepEqual(shrink.removed.map((i) => i.id), [M + 2, M + 3]);
  assert.deepEqual(shrink.changed, [{ id: M, labels: { 'cidr:0.0.0.0/0': '', 'cidr:10.1.0.0/16': '', 'reserved:world': '' } }]);
});

test('CidrIdentities rejects a malformed prefix and changes nothing', () => {
  const cidr = new CidrIdentities();
  cidr.update(['10.0.0.0/8']);
  assert.throws(() => cidr.update(['10.0.0.0/16', '10.0.0.1/8']), /"10\.0\.0\.1\/8" has host bits set; did you mean 10\.0\.0\.0\/8\?/);
  assert.throws(() => cidr.update(['nonsense']), /not a CIDR prefix/);
  assert.deepEqual(cidr.prefixes(), [{ prefix: '10.0.0.0/8', id: M }]);
});

test('CidrIdentities restores ids from before a restart and moves on past them', () => {
  const cidr = new CidrIdentities([
    { prefix: '10.0.0.0/8', id: M + 7 },
    { prefix: '10.1.0.0/16', id: M + 3 },
  ]);
  assert.deepEqual(cidr.get(M + 3)?.labels, { 'cidr:0.0.0.0/0': '', 'cidr:10.0.0.0/8': '', 'cidr:10.1.0.0/16': '', 'reserved:world': '' });
  const u = cidr.update(['10.0.0.0/8', '192.168.0.0/16']);
  assert.deepEqual(u.removed.map((i) => i.id), [M + 3]);
  assert.deepEqual(u.added.map((i) => i.id), [M + 8]);
  assert.equal(cidr.identityOf('10.0.0.0/8'), M + 7);
  assert.throws(() => new CidrIdentities([{ prefix: '10.0.0.0/8', id: 300 }]), /restored CIDR identity 300 of 10\.0\.0\.0\/8 is outside/);
  assert.throws(
    () => new CidrIdentities([{ prefix: '10.0.0.0/8', id: M }, { prefix: '11.0.0.0/8', id: M }]),
    /restored CIDR identity 16777216 or prefix 11\.0\.0\.0\/8 is given twice/,
  );
  assert.throws(() => new CidrIdentities([{ prefix: '::/0', id: M }]), /has length 0: it is the world/);
});

test('CidrIdentities labels thousands of nested prefixes quickly', () => {
  const cidr = new CidrIdentities();
  const prefixes = ['10.0.0.0/8'];
  for (let i = 0; i < 5000; i++) prefixes.push(`10.${i >> 8}.${i & 255}.0/24`, `fd10:${i.toString(16)}::/32`);
  const u = cidr.update(prefixes);
  assert.equal(u.added.length, 10_001);
  assert.deepEqual(Object.keys(cidr.get(cidr.identityOf('10.3.7.0/24')!)!.labels), ['cidr:0.0.0.0/0', 'cidr:10.0.0.0/8', 'cidr:10.3.7.0/24', 'reserved:world']);
});
