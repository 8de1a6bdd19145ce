import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BpfError, BpfMap, BpfObject, MapType, TypedMap, bpfObjectPath, u32, u64 } from './index.js';
import { TndEndpointInfo, TndEndpointKey } from './testdata/selftest-wire.js';
import { privateBpffs } from './testdata/fixtures.js';

const k = (n: number) => u32.encode(n);
const v = (n: number) => u64.encode(BigInt(n));
const sortByKey = (a: Array<[Buffer, Buffer]>) => a.sort(([x], [y]) => Buffer.compare(x, y));

describe('BpfMap', () => {
  let obj: BpfObject;
  let hash: BpfMap;
  before(() => {
    obj = BpfObject.open(bpfObjectPath('tests/ffi_selftest.o'));
    obj.load();
    hash = obj.map('selftest_hash');
  });
  after(() => obj.close());

  it('reports its type and sizes', () => {
    assert.equal(hash.type, MapType.HASH);
    assert.equal(hash.keySize, 4);
    assert.equal(hash.valueSize, 8);
    assert.equal(hash.maxEntries, 1024);
    assert.ok(hash.id > 0);
    assert.equal(hash.name, 'selftest_hash');
  });

  it('update, lookup, delete', () => {
    assert.equal(hash.lookup(k(1)), undefined);
    hash.update(k(1), v(10));
    assert.deepEqual(hash.lookup(k(1)), v(10));
    hash.update(k(1), v(11), 'exist');
    assert.deepEqual(hash.lookup(k(1)), v(11));
    assert.throws(() => hash.update(k(1), v(12), 'noexist'), (e: unknown) => e instanceof BpfError && e.code === 'EEXIST');
    assert.throws(() => hash.update(k(2), v(12), 'exist'), (e: unknown) => e instanceof BpfError && e.code === 'ENOENT');
    assert.equal(hash.delete(k(1)), true);
    assert.equal(hash.delete(k(1)), false);
  });

  it('rejects keys and values of the wrong size before the kernel does', () => {
    assert.throws(() => hash.lookup(Buffer.alloc(3)), /Key for map "selftest_hash" is 3 bytes, expected 4/);
    assert.throws(() => hash.update(k(1), Buffer.alloc(4)), /Value for map "selftest_hash" is 4 bytes, expected 8/);
  });

  it('keys() and entries() walk the whole map', () => {
    for (let i = 0; i < 50; i++) hash.update(k(i), v(i * 2));
    const entries = sortByKey([...hash.entries()]);
    assert.equal(entries.length, 50);
    for (const [key, value] of entries) assert.equal(u64.decode(value), BigInt(u32.decode(key) * 2));
    assert.equal([...hash.keys()].length, 50);
  });

  it('entries() tolerates keys deleted while walking', () => {
    const seen: number[] = [];
    for (const [key] of hash.entries()) {
      seen.push(u32.decode(key));
      hash.delete(key); // deleting the current key makes a hash map restart its walk
    }
    assert.equal(new Set(seen).size, seen.length, 'no key twice');
    assert.equal(seen.length, 50);
    assert.equal([...hash.keys()].length, 0);
  });

  it('updateBatch, lookupBatch, deleteBatch', () => {
    const entries: Array<[Buffer, Buffer]> = [];
    for (let i = 0; i < 300; i++) entries.push([k(i), v(i + 1)]);
    hash.updateBatch(entries);
    assert.deepEqual(sortByKey(hash.lookupBatch()), sortByKey(entries.slice()));
    hash.deleteBatch(entries.slice(0, 100).map(([key]) => key));
    assert.equal(hash.lookupBatch().length, 200);
    hash.deleteBatch(entries.slice(100).map(([key]) => key));
    assert.deepEqual(hash.lookupBatch(), []);
  });

  it('lookupBatch on an array returns every slot', () => {
    const arr = obj.map('selftest_array');
    arr.update(k(3), v(33));
    const all = arr.lookupBatch();
    assert.equal(all.length, 8);
    assert.deepEqual(all[3], [k(3), v(33)]);
  });

  it('a ring buffer has no keys: a clear error', () => {
    const rb = obj.map('selftest_events');
    assert.equal(rb.type, MapType.RINGBUF);
    assert.throws(() => [...rb.keys()], /has no keys to iterate/);
    assert.throws(() => rb.lookupBatch(), /has no keys to iterate/);
  });

  it('TypedMap encodes keys and values with codecs', () => {
    const eps = new TypedMap(obj.map('selftest_endpoints'), TndEndpointKey, TndEndpointInfo);
    const key = { addr: Buffer.from([10, 200, 0, 5]), family: 2 };
    const info = { ifindex: 7, identity: 1234, endpointId: 3, flags: 1, mac: Buffer.from('0a0000000005', 'hex'), routerMac: Buffer.from('0a00000000ff', 'hex') };
    eps.update(key, info);
    const got = eps.lookup(key);
    assert.ok(got);
    assert.equal(got.identity, 1234);
    assert.deepEqual(got.mac, info.mac);
    assert.deepEqual([...eps.entries()].map(([kk]) => kk.addr.subarray(0, 4)), [Buffer.from([10, 200, 0, 5])]);
    eps.updateBatch([[{ addr: Buffer.from([10, 200, 0, 6]), family: 2 }, info]]);
    assert.equal(eps.lookupBatch().length, 2);
    eps.deleteBatch([key]);
    assert.equal(eps.delete(key), false);
    assert.throws(() => new TypedMap(hash, TndEndpointKey, TndEndpointInfo), /Key codec of map "selftest_hash" is 20 bytes/);
  });

  describe('pinned', () => {
    let fs: ReturnType<typeof privateBpffs>;
    before(() => {
      fs = privateBpffs();
    });
    after(() => fs.cleanup());

    it('pin and openPinned: the same map, owning its own fd', () => {
      hash.update(k(9), v(99));
      hash.pin(`${fs.dir}/hash`);
      const again = BpfMap.openPinned(`${fs.dir}/hash`);
      try {
        assert.equal(again.id, hash.id);
        assert.equal(again.keySize, 4);
        assert.deepEqual(again.lookup(k(9)), v(99));
      } finally {
        again.close();
      }
      assert.throws(() => again.fd, /closed/);
    });

    it('openPinned of a missing path names it', () => {
      assert.throws(() => BpfMap.openPinned(`${fs.dir}/missing`), (e: unknown) => e instanceof BpfError && e.code === 'ENOENT' && e.message.includes(`${fs.dir}/missing`));
    });
  });
});
