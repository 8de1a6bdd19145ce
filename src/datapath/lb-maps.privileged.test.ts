import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { privateBpffs } from '../bpf/testdata/fixtures.js';
import { mkdirSync } from 'node:fs';
import { BpfMap, MapFlag, MapType, u32 } from '../bpf/index.js';
import { LbMaps, MAGLEV_SIZE_DEFAULT } from './lb-maps.js';
import { PinPaths } from './paths.js';

describe('LbMaps over pinned maps (real kernel)', () => {
  let fs: ReturnType<typeof privateBpffs>;
  before(() => (fs = privateBpffs()));
  after(() => fs?.cleanup());

  it('creates the maps with M fixed by the first open, and keeps it on reopen', () => {
    const paths = new PinPaths(fs.dir, 'm1');
    {
      using maps = LbMaps.open(paths, { maglevSize: 251 });
      assert.equal(maps.maglevSize, 251);
      assert.equal(maps.get('tnd_lb_maglev').type, MapType.ARRAY_OF_MAPS);
      assert.equal(maps.get('tnd_lb_backend_conns').type, MapType.PERCPU_HASH);
      maps.setMaglev(5, Uint32Array.from({ length: 251 }, (_, i) => (i % 2) + 1));
    }
    using again = LbMaps.open(paths);
    assert.equal(again.maglevSize, 251);
    assert.equal(again.maglev(5)!.length, 251);
    assert.equal(again.maglev(5)![3], 2, 'the table survived');
    assert.throws(() => LbMaps.open(paths, { maglevSize: 257 }), /have 251 slots .* not 257/);
    using def = LbMaps.open(new PinPaths(fs.dir, 'm2'));
    assert.equal(def.maglevSize, MAGLEV_SIZE_DEFAULT);
  });

  it('Maglev tables: each write swaps in a whole table; a batch writes many; a delete removes one', async () => {
    using maps = LbMaps.open(new PinPaths(fs.dir, 't1'), { maglevSize: 7 });
    const outer = maps.get('tnd_lb_maglev');
    maps.setMaglev(1, Uint32Array.from([1, 2, 1, 2, 1, 2, 1]));
    const first = outer.innerId(u32.encode(1));
    maps.setMaglev(1, Uint32Array.from([3, 3, 3, 3, 3, 3, 3]));
    assert.notEqual(outer.innerId(u32.encode(1)), first, 'a new inner map, not the old one written over');
    assert.deepEqual([...maps.maglev(1)!], [3, 3, 3, 3, 3, 3, 3]);
    await maps.setMaglevBatch([
      [2, Uint32Array.from([4, 4, 4, 4, 4, 4, 4])],
      [3, Uint32Array.from([5, 6, 5, 6, 5, 6, 5])],
    ]);
    assert.deepEqual([...maps.maglev(3)!], [5, 6, 5, 6, 5, 6, 5]);
    maps.deleteMaglev(2);
    assert.equal(maps.maglev(2), undefined);
    assert.throws(() => maps.setMaglev(4, Uint32Array.from([1, 2])), /7 slots, got 2/);
    assert.equal(maps.maglev(4), undefined, 'a bad table writes nothing');
    assert.throws(() => maps.maglev(0), /Maglev table id 0/, 'id 0 records M and is no table');
  });

  it("an earlier node's Maglev map (a hash map of tables) is replaced by the current layout, its M kept", () => {
    const paths = new PinPaths(fs.dir, 'old1');
    mkdirSync(paths.maps, { recursive: true });
    using legacy = BpfMap.create({ type: MapType.HASH, name: 'tnd_lb_maglev', keySize: 4, valueSize: 257 * 4, maxEntries: 16, flags: MapFlag.NO_PREALLOC });
    legacy.pin(`${paths.maps}/tnd_lb_maglev`);
    using maps = LbMaps.open(paths);
    assert.equal(maps.maglevSize, 257);
    assert.equal(maps.get('tnd_lb_maglev').type, MapType.ARRAY_OF_MAPS);
    assert.notEqual(maps.get('tnd_lb_maglev').id, legacy.id);
  });

  it('backends: counters start at the backend, survive a state change, go with it', () => {
    using maps = LbMaps.open(new PinPaths(fs.dir, 'b1'), { maglevSize: 251 });
    const conns = maps.get('tnd_lb_backend_conns');
    const b = { id: 42, address: '10.200.0.9', port: 80, protocol: 'TCP' as const, state: 'active' as const };
    maps.setBackend(b);
    assert.equal(maps.backendConnections().get(42), 0);
    // As the datapath counts: one CPU's slot goes up.
    const v = Buffer.alloc(conns.valueBufferSize);
    v.writeBigUInt64LE(3n, 0);
    v.writeBigUInt64LE(2n, conns.valueBufferSize - 8);
    conns.update(u32.encode(42), v);
    assert.equal(maps.backendConnections().get(42), 5);
    maps.setBackend({ ...b, state: 'terminating' });
    assert.equal(maps.backendConnections().get(42), 5, 'a state change keeps the count');
    maps.setBackend({ ...b, port: 81 });
    assert.equal(maps.backendConnections().get(42), 0, 'another address starts over');
    maps.deleteBackend(42);
    assert.equal(maps.backendConnections().has(42), false);
  });

  it('frontends: a cluster frontend writes its reverse NAT, and deleting it removes only its own', () => {
    using maps = LbMaps.open(new PinPaths(fs.dir, 'f1'), { maglevSize: 251 });
    const f = { address: '10.96.0.10', port: 80, protocol: 'TCP' as const };
    const e = { frontend: f, scope: 'cluster' as const, serviceId: 3, mode: 'snat' as const, affinityTimeoutSec: 0, maglevId: 1, activeBackends: 1 };
    maps.setFrontend(e);
    maps.setFrontend({ ...e, frontend: { ...f, address: '0.0.0.0', port: 30080 }, scope: 'nodeport' });
    assert.equal(maps.frontend(f, 'cluster')!.serviceId, 3);
    const revnat = maps.get('tnd_lb_revnat');
    assert.equal(revnat.lookupBatch().length, 1, 'nodeport frontends have no reverse NAT entry');
    maps.setFrontend({ ...e, frontend: { ...f, port: 8080 } });
    maps.deleteFrontend(f, 'cluster');
    assert.equal(revnat.lookupBatch().length, 1, 'port 8080 owns the reverse NAT now');
    maps.deleteFrontend({ ...f, port: 8080 }, 'cluster');
    assert.equal(revnat.lookupBatch().length, 0);
    assert.equal(maps.frontend(f, 'cluster'), undefined);
  });

  it('pod namespaces register and unregister by cookie', () => {
    using maps = LbMaps.open(new PinPaths(fs.dir, 'n1'), { maglevSize: 251 });
    maps.registerPodNetns(12345n, 7, '10.200.0.2');
    assert.deepEqual(maps.podNetns(), new Map([[12345n, 7]]));
    assert.equal(maps.unregisterPodNetns(12345n), true);
    assert.equal(maps.unregisterPodNetns(12345n), false);
    assert.throws(() => maps.registerPodNetns(0n, 7), /cookie 0/);
  });
});
