import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TndLbBackend, TndLbService, TndLbServiceKey, TndLbServiceFlags } from '../bpf/generated/wire.js';
import { isPrime } from '../common/maglev.js';
import { htons } from '../common/wire-values.js';
import { backendValue, checkMaglevSize, maglevValue, netnsValue, serviceKey, serviceValue } from './lb-maps.js';

const entry = { frontend: { address: '10.96.0.10', port: 80, protocol: 'TCP' as const }, scope: 'cluster' as const, serviceId: 9, mode: 'snat' as const, affinityTimeoutSec: 0, maglevId: 4, activeBackends: 2 };

describe('LB map values (lb-maps.ts)', () => {
  it('serviceKey() puts the port in network order and the family, protocol and scope in their bytes', () => {
    const b = TndLbServiceKey.encode(serviceKey(entry.frontend, 'cluster'));
    assert.equal(b.length, 24);
    assert.deepEqual([...b.subarray(0, 4)], [10, 96, 0, 10]);
    assert.ok(b.subarray(4, 16).every((x) => x === 0));
    assert.deepEqual([...b.subarray(16, 21)], [0, 80, 6, 2, 0]);
    const v6 = TndLbServiceKey.encode(serviceKey({ address: 'fd10:96::a', port: 0x1234, protocol: 'UDP' }, 'external'));
    assert.deepEqual([...v6.subarray(16, 21)], [0x12, 0x34, 17, 10, 2]);
  });

  it('serviceKey() wants a nodeport frontend on 0.0.0.0 or ::, and other scopes on an address', () => {
    assert.equal(serviceKey({ address: '0.0.0.0', port: 30080, protocol: 'TCP' }, 'nodeport').scope, 1);
    assert.throws(() => serviceKey({ address: '10.0.0.1', port: 30080, protocol: 'TCP' }, 'nodeport'), /0\.0\.0\.0 or ::/);
    assert.throws(() => serviceKey({ address: '::', port: 80, protocol: 'TCP' }, 'cluster'), /needs an address/);
    assert.throws(() => serviceKey({ address: '10.96.0.300', port: 80, protocol: 'TCP' }, 'cluster'), /"10\.96\.0\.300" is not an IPv4 or IPv6 address/);
    assert.throws(() => serviceKey({ address: '10.96.0.1', port: 0, protocol: 'TCP' }, 'cluster'), /port 0/);
    assert.throws(() => serviceKey({ address: '10.96.0.1', port: 80, protocol: 'SCTP' as 'TCP' }, 'cluster'), /"SCTP"/);
  });

  it('serviceValue() sets the affinity and DSR flags and round-trips through the codec', () => {
    const v = serviceValue({ ...entry, affinityTimeoutSec: 30, mode: 'dsr' });
    assert.equal(v.flags, TndLbServiceFlags.TND_LB_F_AFFINITY | TndLbServiceFlags.TND_LB_F_DSR);
    assert.deepEqual(TndLbService.decode(TndLbService.encode(v)), v);
    assert.equal(serviceValue(entry).flags, 0);
    assert.equal(serviceValue({ ...entry, activeBackends: 70000 }).activeBackends, 0xffff);
    assert.throws(() => serviceValue({ ...entry, serviceId: 0 }), /service id 0/);
    assert.throws(() => serviceValue({ ...entry, maglevId: 2 ** 32 }), /Maglev table id/);
  });

  it('backendValue() encodes state and address; a bad state is refused', () => {
    const b = TndLbBackend.encode(backendValue({ id: 1, address: '10.200.0.5', port: 8080, protocol: 'TCP', state: 'terminating' }));
    assert.deepEqual([...b.subarray(0, 4)], [10, 200, 0, 5]);
    assert.deepEqual([...b.subarray(16, 21)], [0x1f, 0x90, 6, 2, 1]);
    assert.throws(() => backendValue({ id: 1, address: '10.200.0.5', port: 8080, protocol: 'TCP', state: 'gone' as 'active' }), /"gone"/);
  });

  it('maglevValue() writes M little-endian ids and wants exactly M', () => {
    const b = maglevValue(Uint32Array.from([1, 2, 0x01020304, 0, 7, 7, 1]), 7);
    assert.equal(b.length, 28);
    assert.equal(b.readUInt32LE(8), 0x01020304);
    assert.throws(() => maglevValue(new Uint32Array(6), 7), /has 7 slots, got 6/);
  });

  it('M must be a prime in range', () => {
    assert.ok(isPrime(16381) && isPrime(65537) && !isPrime(16383) && !isPrime(1));
    assert.equal(checkMaglevSize(251), 251);
    assert.throws(() => checkMaglevSize(16383), /16383 must be a prime/);
    assert.throws(() => checkMaglevSize(5), /must be a prime from 7/);
  });

  it('netnsValue() takes each address in its own family', () => {
    const v = netnsValue(3, '10.200.0.2', 'fd10:200::2');
    assert.deepEqual([...v.addr4], [10, 200, 0, 2]);
    assert.equal(v.addr6[0], 0xfd);
    assert.deepEqual(netnsValue(3).addr4, Buffer.alloc(4));
    assert.throws(() => netnsValue(3, 'fd10::1'), /not an IPv4 address/);
  });

  it('htons() swaps the bytes of a port as the wire fields hold it', () => {
    assert.equal(htons(80), 0x5000);
    assert.equal(htons(0x1234), 0x3412);
  });
});
