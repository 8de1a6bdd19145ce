import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BpfError, BpfMap, BpfObject, MapFlag, MapType, TypedMap, bpfObjectPath, u32, u64 } from './index.js';
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

  describe('standalone maps and maps of maps', () => {
    /** An LPM key: prefixlen, then 4 bytes matched bit by bit. */
    const lpmKey = (prefixlen: number, a: number[]) => Buffer.concat([u32.encode(prefixlen), Buffer.from(a)]);
    const lpm = () => BpfMap.create({ type: MapType.LPM_TRIE, name: 'test_lpm', keySize: 8, valueSize: 8, maxEntries: 16, flags: MapFlag.NO_PREALLOC });

    it('create() makes a map of its own that close() frees', () => {
      const m = lpm();
      let id: number;
      try {
        id = m.id;
        assert.equal(m.type, MapType.LPM_TRIE);
        assert.equal(m.name, 'test_lpm');
        assert.equal(m.keySize, 8);
        assert.equal(m.maxEntries, 16);
        m.update(lpmKey(16, [10, 1, 0, 0]), v(1));
        m.update(lpmKey(24, [10, 1, 2, 0]), v(2));
        assert.deepEqual(m.lookup(lpmKey(32, [10, 1, 2, 3])), v(2), 'longest prefix');
        assert.deepEqual(m.lookup(lpmKey(32, [10, 1, 9, 9])), v(1));
        assert.equal(m.lookup(lpmKey(32, [10, 2, 0, 0])), undefined);
        // LPM tries have no batch ops: updateBatch falls back to single updates.
        m.updateBatch([[lpmKey(8, [10, 0, 0, 0]), v(3)]]);
        assert.deepEqual(m.lookup(lpmKey(32, [10, 9, 9, 9])), v(3));
        assert.equal([...m.keys()].length, 3);
      } finally {
        m.close();
      }
      assert.throws(() => m.fd, /closed/);
      assert.throws(() => BpfMap.openById(id), (e: unknown) => e instanceof BpfError && e.code === 'ENOENT' && /map id \d+/.test(e.message));
    });

    it('create() says what it was asked for when the kernel refuses', () => {
      // An LPM trie without NO_PREALLOC is refused by the kernel.
      assert.throws(
        () => BpfMap.create({ type: MapType.LPM_TRIE, name: 'bad', keySize: 8, valueSize: 8, maxEntries: 16 }),
        (e: unknown) => e instanceof BpfError && e.code === 'EINVAL' && /Cannot create map "bad" \(type 11, key 8 B, value 8 B, 16 entries, flags 0x0\)/.test(e.message),
      );
      assert.throws(() => BpfMap.create({ type: MapType.HASH, name: 'a name that is too long', keySize: 4, valueSize: 4, maxEntries: 1 }), /at most 15 characters/);
    });

    it('a hash of maps holds inner maps by fd, reports them by id, and swaps one in with one update', () => {
      const template = lpm();
      const outer = BpfMap.create({ type: MapType.HASH_OF_MAPS, name: 'test_outer', keySize: 4, valueSize: 4, maxEntries: 8, innerMap: template });
      template.close(); // the outer map keeps what it needs of its template
      const first = lpm();
      const second = lpm();
      try {
        first.update(lpmKey(8, [10, 0, 0, 0]), v(1));
        second.update(lpmKey(8, [10, 0, 0, 0]), v(2));
        assert.equal(outer.innerId(k(5)), undefined);
        assert.equal(outer.openInner(k(5)), undefined);
        outer.setInner(k(5), first);
        assert.equal(outer.innerId(k(5)), first.id);
        outer.setInner(k(5), second);
        assert.equal(outer.innerId(k(5)), second.id);
        const inner = outer.openInner(k(5))!;
        try {
          assert.equal(inner.id, second.id);
          assert.deepEqual(inner.lookup(lpmKey(32, [10, 1, 1, 1])), v(2));
        } finally {
          inner.close();
        }
        assert.equal(outer.delete(k(5)), true);
        assert.equal(outer.innerId(k(5)), undefined);
        // An inner map that is not like the template is refused.
        const other = BpfMap.create({ type: MapType.HASH, name: 'test_hash', keySize: 8, valueSize: 8, maxEntries: 4 });
        try {
          assert.throws(() => outer.setInner(k(6), other), (e: unknown) => e instanceof BpfError && e.code === 'EINVAL');
        } finally {
          other.close();
        }
      } finally {
        first.close();
        second.close();
        outer.close();
      }
      assert.throws(() => hash.setInner(k(1), hash), /not a map of maps/);
    });

    it('setInnerAsync and deleteAsync do the same on a worker thread (a map of maps waits for a grace period)', async () => {
      const template = lpm();
      const outer = BpfMap.create({ type: MapType.HASH_OF_MAPS, name: 'test_outer', keySize: 4, valueSize: 4, maxEntries: 8, innerMap: template });
      const inner = lpm();
      try {
        await Promise.all([outer.setInnerAsync(k(1), inner), outer.setInnerAsync(k(2), inner)]);
        assert.equal(outer.innerId(k(1)), inner.id);
        assert.equal(outer.innerId(k(2)), inner.id);
        await assert.rejects(outer.setInnerAsync(k(1), inner, 'noexist'), (e: unknown) => e instanceof BpfError && e.code === 'EEXIST' && /Cannot update map "test_outer"/.test(e.message));
        assert.equal(await outer.deleteAsync(k(1)), true);
        assert.equal(await outer.deleteAsync(k(1)), false);
        await hash.updateAsync(k(77), v(7));
        assert.deepEqual(hash.lookup(k(77)), v(7));
      } finally {
        inner.close();
        outer.close();
        template.close();
      }
    });
  });
});
