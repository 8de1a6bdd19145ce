import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { bytesCodec, u16, u32, u64, u8 } from './codec.js';
import { TndCtEntry, TndEndpointKey, TndEvent, TndLxcConfig } from './generated/wire.js';

describe('primitive codecs', () => {
  it('round-trip little-endian integers of each size', () => {
    assert.deepEqual(u8.encode(0xab), Buffer.from([0xab]));
    assert.deepEqual(u16.encode(0x1234), Buffer.from([0x34, 0x12]));
    assert.deepEqual(u32.encode(0x01020304), Buffer.from([4, 3, 2, 1]));
    assert.equal(u32.decode(u32.encode(4_000_000_000)), 4_000_000_000);
    assert.equal(u64.decode(u64.encode(2n ** 64n - 1n)), 2n ** 64n - 1n);
    assert.throws(() => u16.encode(70000), RangeError);
  });

  it('bytesCodec insists on its size', () => {
    const c = bytesCodec(3);
    assert.deepEqual(c.decode(c.encode(Buffer.from([1, 2, 3]))), Buffer.from([1, 2, 3]));
    assert.throws(() => c.encode(Buffer.from([1])), /Expected 3 bytes, got 1/);
  });
});

describe('generated codecs', () => {
  it('TndEndpointKey: 20 bytes, short address zero-filled, padding omitted and zero', () => {
    assert.equal(TndEndpointKey.size, 20);
    const b = TndEndpointKey.encode({ addr: Buffer.from([10, 200, 0, 1]), family: 2 });
    assert.deepEqual(b, Buffer.from('0ac80001000000000000000000000000' + '02000000', 'hex'));
    const back = TndEndpointKey.decode(b);
    assert.deepEqual(Object.keys(back).sort(), ['addr', 'family']);
    assert.equal(back.addr.length, 16);
  });

  it('rejects a byte field longer than the C array, naming the field', () => {
    assert.throws(() => TndEndpointKey.encode({ addr: Buffer.alloc(17), family: 2 }), /tnd_endpoint_key\.addr holds 16 bytes, got 17/);
  });

  it('rejects a buffer shorter than the struct when decoding', () => {
    assert.throws(() => TndEvent.decode(Buffer.alloc(10)), /tnd_event needs \d+ bytes, got 10/);
  });

  it('__u64 fields are bigints and round-trip exactly', () => {
    const b = Buffer.alloc(TndCtEntry.size);
    b.writeBigUInt64LE(2n ** 63n + 5n, 0);
    const v = TndCtEntry.decode(b);
    assert.equal(v.createdNs, 2n ** 63n + 5n);
    assert.deepEqual(TndCtEntry.encode(v), b);
  });

  it('TndLxcConfig round-trips every field', () => {
    const cfg: TndLxcConfig = {
      endpointId: 7,
      flags: 3,
      identity: 4242,
      mac: Buffer.from('0a0000000007', 'hex'),
      routerMac: Buffer.from('0a00000000ff', 'hex'),
      ip4: Buffer.from([10, 200, 0, 7]),
      routerIp4: Buffer.from([10, 200, 0, 1]),
      ip6: Buffer.alloc(16, 1),
      routerIp6: Buffer.alloc(16, 2),
      maglevSize: 16381,
    };
    const back = TndLxcConfig.decode(TndLxcConfig.encode(cfg));
    for (const [k, v] of Object.entries(cfg)) assert.deepEqual((back as unknown as Record<string, unknown>)[k], v, k);
  });
});
