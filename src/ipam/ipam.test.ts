import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Ipam } from './ipam.js';
import { TendrilError } from '../common/errors.js';

const ranges = { ipv4: '10.200.1.0/24', ipv6: 'fd10:200:0:1::/64' };

test('Ipam reserves the router and hands out distinct addresses from both ranges', () => {
  const ipam = new Ipam(ranges);
  assert.equal(ipam.routerIPv4, '10.200.1.1');
  assert.equal(ipam.routerIPv6, 'fd10:200:0:1::1');
  const seen = new Set<string>();
  for (let i = 0; i < 253; i++) {
    const { ipv4, ipv6 } = ipam.allocate(`ep${i}`);
    assert.ok(!seen.has(ipv4) && !seen.has(ipv6), `duplicate ${ipv4} ${ipv6}`);
    assert.notEqual(ipv4, '10.200.1.1');
    assert.notEqual(ipv4, '10.200.1.255');
    seen.add(ipv4).add(ipv6);
  }
});

test('Ipam reports an exhausted IPv4 range with a clear error and changes nothing', () => {
  const ipam = new Ipam({ ipv4: '10.200.9.0/30', ipv6: 'fd10:200:0:9::/64' });
  assert.deepEqual(ipam.allocate('a'), { ipv4: '10.200.9.2', ipv6: 'fd10:200:0:9::2' });
  const before = ipam.snapshot();
  assert.throws(
    () => ipam.allocate('b'),
    (e: unknown) => e instanceof TendrilError && e.code === 'exhausted' && /10\.200\.9\.0\/30 is exhausted/.test(e.message),
  );
  assert.deepEqual(ipam.snapshot(), before);
});

test('Ipam releases addresses and reuses them only after moving past them', () => {
  const ipam = new Ipam({ ipv4: '10.200.9.0/29', ipv6: 'fd10:200:0:9::/64' });
  const a = ipam.allocate('a');
  ipam.allocate('b');
  ipam.release('a');
  ipam.release('a'); // a second release is harmless
  assert.equal(ipam.allocate('c').ipv4, '10.200.9.4');
  assert.equal(ipam.allocate('d').ipv4, '10.200.9.5');
  assert.equal(ipam.allocate('e').ipv4, '10.200.9.6');
  assert.equal(ipam.allocate('f').ipv4, a.ipv4, 'wraps around to the released address');
});

test('Ipam survives a restart through its snapshot', () => {
  const ipam = new Ipam(ranges);
  ipam.allocate('1');
  ipam.allocate('2');
  const restored = new Ipam(ranges, JSON.parse(JSON.stringify(ipam.snapshot())));
  assert.deepEqual(restored.snapshot(), ipam.snapshot());
  const next = restored.allocate('3');
  assert.equal(next.ipv4, '10.200.1.4');
  assert.throws(() => restored.allocate('1'), /already holds/);
});

test('Ipam rejects state outside its ranges and bad ranges', () => {
  assert.throws(() => new Ipam(ranges, { allocations: { x: ['10.9.9.9', 'fd10:200:0:1::5'] }, cursor4: null, cursor6: null }), /outside the node's ranges/);
  assert.throws(() => new Ipam({ ipv4: '10.200.1.0/32', ipv6: ranges.ipv6 }), /too small/);
  assert.throws(() => new Ipam({ ipv4: 'fd10::/64', ipv6: ranges.ipv6 }), /not an IPv4 prefix/);
  assert.throws(() => new Ipam({ ipv4: '10.200.1.7/24', ipv6: ranges.ipv6 }), /host bits set/);
});
