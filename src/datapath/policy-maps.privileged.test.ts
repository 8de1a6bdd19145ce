import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BpfMap } from '../bpf/index.js';
import { privateBpffs } from '../bpf/testdata/fixtures.js';
import { TendrilError } from '../common/errors.js';
import type { PolicyMapEntry } from '../common/policy-entry.js';
import { NodeMaps } from './node-maps.js';
import { PinPaths } from './paths.js';
import { POLICY_ENTRIES_MAX, allowAllEntries } from './policy-maps.js';
import { dumpMap, listMaps } from './map-views.js';

const sorted = (entries: PolicyMapEntry[]) => [...entries].sort((a, b) => JSON.stringify(a).localeCompare(JSON.stringify(b)));

/** n distinct entries, both directions, several identities, protocols and port blocks. */
function manyEntries(n: number): PolicyMapEntry[] {
  const out: PolicyMapEntry[] = [];
  for (let i = 0; i < n; i++) {
    out.push({
      direction: i % 2 ? 'ingress' : 'egress',
      identity: 256 + (i % 997),
      protocol: [6, 17, 132][i % 3]!,
      port: (Math.floor(i / 997) * 64) & 0xffff,
      portPrefixLen: 10,
      verdict: i % 7 ? 'allow' : 'deny',
      ruleId: i + 1,
    });
  }
  return out;
}

describe('PolicyMaps and IpcacheMap on a node\'s pinned maps', () => {
  let fs: ReturnType<typeof privateBpffs>;
  let maps: NodeMaps;
  before(() => {
    fs = privateBpffs();
    maps = NodeMaps.open(new PinPaths(fs.dir, 'node1'));
  });
  after(() => {
    maps.close();
    fs.cleanup();
  });

  it('install() then entries() reads back what the kernel holds', () => {
    const entries: PolicyMapEntry[] = [
      ...allowAllEntries(),
      { direction: 'egress', identity: 300, protocol: 6, port: 8000, portPrefixLen: 13, verdict: 'deny', ruleId: 9 },
      { direction: 'ingress', identity: 0x7fff0002, protocol: 17, port: 53, portPrefixLen: 16, verdict: 'allow', ruleId: 4 },
      { direction: 'ingress', identity: 301, protocol: 6, port: 80, portPrefixLen: 16, verdict: 'redirect', ruleId: 11 },
    ];
    maps.policy.install(5, entries);
    assert.ok(maps.policy.has(5));
    assert.deepEqual(sorted(maps.policy.entries(5)), sorted(entries));
    assert.deepEqual(maps.policy.endpoints(), [5]);
  });

  it('install() replaces the whole policy with a new inner map in one swap', () => {
    maps.policy.install(6, manyEntries(50));
    const before = maps.policy.outer.innerId(Buffer.from([6, 0, 0, 0]))!;
    const next = [{ direction: 'ingress', identity: 7, protocol: 0, port: 0, portPrefixLen: 0, verdict: 'allow', ruleId: 1 }] satisfies PolicyMapEntry[];
    maps.policy.install(6, next);
    const after = maps.policy.outer.innerId(Buffer.from([6, 0, 0, 0]))!;
    assert.notEqual(after, before, 'a new inner map');
    assert.deepEqual(maps.policy.entries(6), next, 'nothing of the old policy is left');
    // Nothing holds the old map any more: the kernel freed it.
    assert.throws(() => BpfMap.openById(before), /ENOENT|No such file/);
    maps.policy.install(6, []);
    assert.deepEqual(maps.policy.entries(6), [], 'an empty policy denies everything');
    assert.ok(maps.policy.has(6));
  });

  it('installMany() swaps several endpoints\' policies in one batch, each entire', async () => {
    const a = manyEntries(30);
    const b = allowAllEntries();
    maps.policy.install(20, manyEntries(5));
    await maps.policy.installMany([
      [20, a],
      [21, b],
    ]);
    assert.deepEqual(sorted(maps.policy.entries(20)), sorted(a), 'replaced');
    assert.deepEqual(sorted(maps.policy.entries(21)), sorted(b), 'added');
    await maps.policy.installMany([]);
    maps.policy.remove(20);
    maps.policy.remove(21);
  });

  it('10,000 entries install and read back entire', () => {
    const entries = manyEntries(10_000);
    maps.policy.install(7, entries);
    assert.deepEqual(sorted(maps.policy.entries(7)), sorted(entries));
  });

  it('bad input changes nothing: a bad entry, conflicting duplicates, too many entries, a bad endpoint id', () => {
    const good = allowAllEntries();
    maps.policy.install(8, good);
    const bad = { ...good[0]!, port: 80 };
    assert.throws(() => maps.policy.install(8, [good[1]!, bad]), (e: unknown) => e instanceof TendrilError && e.code === 'invalid-argument' && /policy entry 1 of endpoint 8/.test(e.message));
    assert.throws(() => maps.policy.install(8, [good[0]!, { ...good[0]!, verdict: 'deny' }]), /has the key of entry 0/);
    assert.throws(() => maps.policy.install(8, [{ ...good[0]!, verdict: 'proxy' as 'allow' }]), /verdict "proxy" is not allow, deny or redirect/);
    assert.throws(() => maps.policy.install(8, manyEntries(POLICY_ENTRIES_MAX + 1)), /65537 entries; at most 65536 fit/);
    assert.throws(() => maps.policy.install(0, good), /endpoint id 0/);
    assert.deepEqual(sorted(maps.policy.entries(8)), sorted(good));
    // The same entry twice is one entry.
    maps.policy.install(8, [good[0]!, good[0]!]);
    assert.deepEqual(maps.policy.entries(8), [good[0]]);
  });

  it('installAsync() and removeAsync() do the same with the grace period waited for off the event loop', async () => {
    await Promise.all([maps.policy.installAsync(10, allowAllEntries()), maps.policy.installAsync(11, manyEntries(100))]);
    assert.deepEqual(sorted(maps.policy.entries(10)), sorted(allowAllEntries()));
    assert.deepEqual(sorted(maps.policy.entries(11)), sorted(manyEntries(100)));
    await assert.rejects(maps.policy.installAsync(10, [{ ...allowAllEntries()[0]!, verdict: 'maybe' as 'allow' }]), /verdict "maybe"/);
    assert.deepEqual(sorted(maps.policy.entries(10)), sorted(allowAllEntries()), 'unchanged');
    assert.equal(await maps.policy.removeAsync(10), true);
    assert.equal(await maps.policy.removeAsync(10), false);
    assert.equal(await maps.policy.removeAsync(11), true);
  });

  it('remove() takes the endpoint\'s policy out', () => {
    maps.policy.install(9, allowAllEntries());
    assert.equal(maps.policy.remove(9), true);
    assert.equal(maps.policy.remove(9), false);
    assert.equal(maps.policy.has(9), false);
    assert.deepEqual(maps.policy.entries(9), []);
  });

  it('bumpGeneration() counts up and wraps at 2^32', () => {
    const g = maps.policy.generation();
    assert.equal(maps.policy.bumpGeneration(), g + 1);
    assert.equal(maps.policy.generation(), g + 1);
    maps.raw.get('tnd_policy_gen')!.update(Buffer.alloc(4), Buffer.from([0xff, 0xff, 0xff, 0xff]));
    assert.equal(maps.policy.bumpGeneration(), 0);
  });

  it('IpcacheMap: prefixes and plain addresses, longest prefix first, delete', () => {
    maps.ipcache.set('10.1.0.0/16', 300);
    maps.ipcache.set('10.1.2.3', 301);
    maps.ipcache.set('fd10::/64', 302);
    maps.ipcache.set('fd10::1', 303);
    assert.equal(maps.ipcache.lookup('10.1.2.3'), 301);
    assert.equal(maps.ipcache.lookup('10.1.9.9'), 300);
    assert.equal(maps.ipcache.lookup('10.2.0.1'), undefined);
    assert.equal(maps.ipcache.lookup('fd10::2'), 302);
    assert.equal(maps.ipcache.lookup('fd10::1'), 303);
    assert.equal(maps.ipcache.lookup('fd11::1'), undefined);
    maps.ipcache.set('10.1.0.0/16', 310);
    assert.equal(maps.ipcache.lookup('10.1.9.9'), 310, 'set replaces');
    const byCidr = Object.fromEntries(maps.ipcache.entries().map((e) => [e.cidr, e.identity]));
    assert.deepEqual(byCidr, { '10.1.0.0/16': 310, '10.1.2.3/32': 301, 'fd10::/64': 302, 'fd10::1/128': 303 });
    assert.equal(maps.ipcache.delete('10.1.2.3/32'), true);
    assert.equal(maps.ipcache.delete('10.1.2.3'), false);
    assert.equal(maps.ipcache.lookup('10.1.2.3'), 310);
    assert.throws(() => maps.ipcache.set('10.1.0.1/16', 1), /host bits set/);
    assert.throws(() => maps.ipcache.set('10.9.0.0/16', 2 ** 32), /identity 4294967296/);
  });

  it('map list and map dump read the new maps: ipcache as cidr -> identity, policy per endpoint and entry', () => {
    const list = Object.fromEntries(listMaps(maps).map((m) => [m.name, m]));
    assert.equal(list.tnd_ipcache?.type, 'lpm_trie');
    assert.equal(list.tnd_policy?.type, 'hash_of_maps');
    assert.equal(list.tnd_policy?.entries, maps.policy.endpoints().length);
    assert.ok(dumpMap(maps, 'tnd_ipcache').some((r) => r.cidr === '10.1.0.0/16' && r.identity === 310));
    maps.policy.install(5, [
      { direction: 'egress', identity: 300, protocol: 6, port: 8000, portPrefixLen: 13, verdict: 'deny', ruleId: 9 },
      { direction: 'ingress', identity: 0, protocol: 0, port: 0, portPrefixLen: 0, verdict: 'allow', ruleId: 0 },
      { direction: 'ingress', identity: 301, protocol: 17, port: 53, portPrefixLen: 16, verdict: 'allow', ruleId: 4 },
    ]);
    const rows = dumpMap(maps, 'tnd_policy').filter((r) => r.endpoint === 5);
    assert.deepEqual(
      rows.sort((a, b) => Number(a.ruleId) - Number(b.ruleId)),
      [
        { endpoint: 5, direction: 'ingress', identity: 0, protocol: 'any', port: 'any', verdict: 'allow', ruleId: 0 },
        { endpoint: 5, direction: 'ingress', identity: 301, protocol: 'UDP', port: '53', verdict: 'allow', ruleId: 4 },
        { endpoint: 5, direction: 'egress', identity: 300, protocol: 'TCP', port: '8000-8007', verdict: 'deny', ruleId: 9 },
      ],
    );
    assert.deepEqual(dumpMap(maps, 'tnd_policy_gen'), [{ generation: maps.policy.generation() }]);
  });

  it('policies and the ipcache stay pinned across a re-open (an agent restart)', () => {
    const again = NodeMaps.open(maps.paths);
    try {
      assert.deepEqual(again.policy.endpoints(), maps.policy.endpoints());
      assert.deepEqual(sorted(again.policy.entries(7)), sorted(manyEntries(10_000)));
      assert.equal(again.ipcache.lookup('10.1.9.9'), 310);
      assert.equal(again.policy.generation(), maps.policy.generation());
    } finally {
      again.close();
    }
  });
});
