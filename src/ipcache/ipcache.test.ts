import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ipcache, type IpcacheSink } from './ipcache.js';
import { ReservedIdentity } from '../common/identity.js';
import { formatIP, formatPrefix, maskBytes, parsePrefix, prefixContains } from '../common/ip.js';

const WORLD = ReservedIdentity.world;
const HOST = ReservedIdentity.host;
const C = 1 << 24;

/** The model of an LPM map: what it holds, and every call it got. */
class RecordingSink implements IpcacheSink {
  readonly map = new Map<string, number>();
  readonly calls: string[] = [];
  failOn: string | undefined;

  set(cidr: string, identity: number): void {
    if (cidr === this.failOn) throw new Error(`map is full: cannot add ${cidr}`);
    this.calls.push(`set ${cidr} ${identity}`);
    this.map.set(cidr, identity);
  }

  delete(cidr: string): void {
    this.calls.push(`delete ${cidr}`);
    this.map.delete(cidr);
  }

  entries(): Array<{ cidr: string; identity: number }> {
    return [...this.map].map(([cidr, identity]) => ({ cidr, identity }));
  }
}

function attached(): { cache: Ipcache; sink: RecordingSink } {
  const sink = new RecordingSink();
  const cache = new Ipcache(sink);
  cache.sync();
  sink.calls.length = 0;
  return { cache, sink };
}

test('Ipcache maps every address to the world until something claims it', () => {
  const cache = new Ipcache(new RecordingSink());
  assert.equal(cache.lookup('203.0.113.9'), WORLD);
  assert.equal(cache.lookup('2001:db8::9'), WORLD);
  assert.deepEqual(cache.entries(), [
    { cidr: '0.0.0.0/0', identity: WORLD, source: 'default', owner: 'default' },
    { cidr: '::/0', identity: WORLD, source: 'default', owner: 'default' },
  ]);
  assert.throws(() => cache.lookup('10.0.0.300'), /"10\.0\.0\.300" is not an IPv4 or IPv6 address/);
});

test('Ipcache looks addresses up by longest prefix: endpoint addresses, the host, nested CIDRs', () => {
  const { cache } = attached();
  cache.upsert('endpoint', 'ep1', '10.200.1.5', 300);
  cache.upsert('endpoint', 'ep1', 'fd10:200::5', 300);
  cache.upsert('host', 'node1', '10.200.1.1/32', HOST);
  cache.upsert('cidr', 'policy', '10.0.0.0/8', C);
  cache.upsert('cidr', 'policy', '10.1.0.0/16', C + 1);
  cache.upsert('cidr', 'policy', 'fd10::/16', C + 2);
  assert.equal(cache.lookup('10.200.1.5'), 300);
  assert.equal(cache.lookup('fd10:200::5'), 300);
  assert.equal(cache.lookup('fd10:200::6'), C + 2);
  assert.equal(cache.lookup('10.200.1.1'), HOST);
  assert.equal(cache.lookup('10.1.2.3'), C + 1);
  assert.equal(cache.lookup('10.2.0.1'), C);
  assert.equal(cache.lookup('11.0.0.1'), WORLD);
  assert.deepEqual(cache.entries().map((e) => e.cidr), ['0.0.0.0/0', '10.0.0.0/8', '10.1.0.0/16', '10.200.1.1/32', '10.200.1.5/32', '::/0', 'fd10::/16', 'fd10:200::5/128']);
});

test('Ipcache lets the strongest source win a prefix whatever the order, and falls back when it leaves', () => {
  const { cache, sink } = attached();
  cache.upsert('endpoint', 'ep1', '10.200.1.5/32', 300);
  cache.upsert('cidr', 'policy', '10.200.1.5/32', C);
  assert.equal(cache.lookup('10.200.1.5'), 300);
  cache.upsert('host', 'node1', '10.200.1.5/32', HOST);
  assert.equal(cache.lookup('10.200.1.5'), 300);
  assert.deepEqual(sink.calls, ['set 10.200.1.5/32 300'], 'weaker claims do not touch the map');
  cache.removeOwner('endpoint', 'ep1');
  assert.equal(cache.lookup('10.200.1.5'), HOST);
  cache.remove('host', 'node1', '10.200.1.5');
  assert.deepEqual(cache.entries().find((e) => e.cidr === '10.200.1.5/32'), { cidr: '10.200.1.5/32', identity: C, source: 'cidr', owner: 'policy' });
  cache.remove('cidr', 'policy', '10.200.1.5/32');
  assert.equal(cache.lookup('10.200.1.5'), WORLD);
  assert.deepEqual(sink.calls, ['set 10.200.1.5/32 300', `set 10.200.1.5/32 ${HOST}`, `set 10.200.1.5/32 ${C}`, 'delete 10.200.1.5/32']);
});

test('Ipcache lets the latest claim of one source win, and the earlier one stand when it goes', () => {
  const { cache } = attached();
  cache.upsert('endpoint', 'old', '10.200.1.5', 300);
  cache.upsert('endpoint', 'new', '10.200.1.5', 301);
  assert.equal(cache.lookup('10.200.1.5'), 301);
  cache.removeOwner('endpoint', 'new');
  assert.equal(cache.lookup('10.200.1.5'), 300);
  cache.remove('endpoint', 'nobody', '10.200.1.5');
  assert.equal(cache.lookup('10.200.1.5'), 300);
});

test('Ipcache replaceOwner withdraws what an owner no longer claims and changes only what differs', () => {
  const { cache, sink } = attached();
  cache.replaceOwner('cidr', 'policy', [
    { cidr: '10.0.0.0/8', identity: C },
    { cidr: '192.168.0.0/16', identity: C + 1 },
  ]);
  sink.calls.length = 0;
  cache.replaceOwner('cidr', 'policy', [
    { cidr: '10.0.0.0/8', identity: C },
    { cidr: '172.16.0.0/12', identity: C + 2 },
  ]);
  assert.deepEqual(sink.calls, ['delete 192.168.0.0/16', `set 172.16.0.0/12 ${C + 2}`]);
  cache.replaceOwner('cidr', 'policy', []);
  assert.deepEqual([...sink.map.keys()].sort(), ['0.0.0.0/0', '::/0']);
});

test('Ipcache stays detached until sync, which then makes the sink hold exactly the model', () => {
  const sink = new RecordingSink();
  // What a previous agent left in the map: one right, one wrong, one stale.
  sink.map.set('10.200.1.5/32', 300).set('10.200.1.6/32', 999).set('10.200.1.7/32', 302).set('0.0.0.0/0', WORLD);
  const cache = new Ipcache(sink);
  cache.upsert('endpoint', 'ep5', '10.200.1.5', 300);
  cache.upsert('endpoint', 'ep6', '10.200.1.6', 301);
  cache.upsert('cidr', 'policy', '10.200.1.6/32', C); // weaker: the endpoint keeps it
  assert.deepEqual(sink.calls, [], 'rebuilding the model leaves the map alone');
  assert.deepEqual(cache.sync(), { set: 2, deleted: 1 });
  assert.deepEqual(sink.calls, [`set ::/0 ${WORLD}`, 'set 10.200.1.6/32 301', 'delete 10.200.1.7/32']);
  assert.deepEqual(Object.fromEntries(sink.map), { '0.0.0.0/0': WORLD, '10.200.1.5/32': 300, '10.200.1.6/32': 301, '::/0': WORLD });
  sink.calls.length = 0;
  cache.upsert('endpoint', 'ep8', '10.200.1.8', 303);
  cache.upsert('endpoint', 'ep8', '10.200.1.8', 303);
  cache.removeOwner('endpoint', 'ep5');
  assert.deepEqual(sink.calls, ['set 10.200.1.8/32 303', 'delete 10.200.1.5/32'], 'attached: changes go through, repeats do not');
  assert.deepEqual(cache.sync(), { set: 0, deleted: 0 });
});

test('Ipcache sync with a sink that cannot list adds everything', () => {
  const calls: string[] = [];
  const cache = new Ipcache({ set: (c, i) => calls.push(`set ${c} ${i}`), delete: (c) => calls.push(`delete ${c}`) });
  cache.upsert('host', 'node1', '10.200.1.1', HOST);
  assert.deepEqual(cache.sync(), { set: 3, deleted: 0 });
  assert.deepEqual(calls.sort(), [`set 0.0.0.0/0 ${WORLD}`, `set 10.200.1.1/32 ${HOST}`, `set ::/0 ${WORLD}`]);
});

test('Ipcache changes nothing when the sink refuses a write or the input is bad', () => {
  const { cache, sink } = attached();
  cache.upsert('endpoint', 'ep1', '10.200.1.5', 300);
  const before = cache.entries();
  sink.failOn = '10.200.1.9/32';
  assert.throws(() => cache.upsert('endpoint', 'ep9', '10.200.1.9', 309), /map is full/);
  assert.deepEqual(cache.entries(), before);
  assert.equal(cache.lookup('10.200.1.9'), WORLD);
  assert.throws(() => cache.upsert('cidr', 'p', '10.0.0.1/8', C), /has host bits set/);
  assert.throws(() => cache.upsert('endpoint', 'ep2', '10.200.1.2', 0), /identity 0 for 10\.200\.1\.2\/32 is not an identity/);
  assert.throws(
    () => cache.replaceOwner('endpoint', 'ep1', [{ cidr: '10.200.1.6', identity: 300 }, { cidr: 'x', identity: 300 }]),
    /"x" is not an IPv4 or IPv6 address/,
  );
  assert.deepEqual(cache.entries(), before);
});

test('Ipcache lookup agrees with a brute-force longest-prefix match over random prefixes', () => {
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    return seed % n;
  };
  // Addresses from a small space (10.0.x.x, fd10::...), so prefixes nest and overlap.
  const address = (): Uint8Array => {
    const v4 = rand(2) === 0;
    const bytes = Uint8Array.from({ length: v4 ? 4 : 16 }, () => rand(4));
    bytes.set(v4 ? [10, 0] : [0xfd, 0x10]);
    return bytes;
  };
  const { cache } = attached();
  const latest = new Map<string, number>();
  for (let i = 0; i < 400; i++) {
    const bytes = address();
    const length = 1 + rand(bytes.length * 8);
    const cidr = formatPrefix({ family: bytes.length === 4 ? 4 : 6, bytes: maskBytes(bytes, length), length });
    cache.upsert('cidr', 'fuzz', cidr, 1000 + i);
    latest.set(cidr, 1000 + i);
  }
  const prefixes = [...latest].map(([cidr, identity]) => ({ p: parsePrefix(cidr), identity }));
  for (let i = 0; i < 2000; i++) {
    const bytes = address();
    let want: number = WORLD;
    let wantLen = -1;
    for (const { p, identity } of prefixes) {
      if (prefixContains(p, bytes) && p.length > wantLen) {
        want = identity;
        wantLen = p.length;
      }
    }
    assert.equal(cache.lookup(formatIP(bytes)), want, `lookup(${formatIP(bytes)})`);
  }
});
