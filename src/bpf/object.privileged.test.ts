import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BpfError, BpfObject, BpfProgram, bpfObjectPath } from './index.js';
import { privateBpffs } from './testdata/fixtures.js';

const SELFTEST = bpfObjectPath('tests/ffi_selftest.o');
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};
const u64 = (n: bigint) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(n);
  return b;
};
const packet = () => Buffer.alloc(64, 0xaa);

describe('BpfObject', () => {
  it('lists programs and maps after open, before load', () => {
    using obj = BpfObject.open(SELFTEST);
    assert.deepEqual(obj.programNames().sort(), ['count_packets', 'emit_events', 'read_constants', 'rejected', 'xdp_count']);
    assert.ok(obj.mapNames().includes('selftest_hash'));
    assert.throws(() => obj.program('read_constants'), /not loaded yet/);
  });

  it('programs see the constants set at open (.rodata by variable name)', () => {
    using obj = BpfObject.open(SELFTEST, {
      constants: { selftest_magic: u32(4242), selftest_mac: Buffer.from([2, 0, 0, 0, 0, 9]) },
    });
    obj.load();
    const r = obj.program('read_constants').testRun({ data: packet() });
    assert.equal(r.retval, 4242);
    assert.deepEqual(r.data.subarray(0, 6), Buffer.from([2, 0, 0, 0, 0, 9]));
  });

  it('keeps the compiled-in value of constants not given', () => {
    using obj = BpfObject.open(SELFTEST);
    obj.load();
    assert.equal(obj.program('read_constants').testRun({ data: packet() }).retval, 7);
  });

  it('a constant of an enum type is set like any other', () => {
    using obj = BpfObject.open(SELFTEST, { constants: { selftest_state: u32(1) } });
    obj.load();
    assert.equal(obj.program('read_constants').testRun({ data: packet() }).retval, 1007);
  });

  it('rejects an unknown constant name, naming it and the known ones', () => {
    assert.throws(
      () => BpfObject.open(SELFTEST, { constants: { no_such: u32(1) } }),
      (e: unknown) => e instanceof BpfError && e.code === 'ENOENT' && /"no_such"/.test(e.message) && /selftest_magic/.test(e.message),
    );
  });

  it('rejects a constant of the wrong size, saying both sizes', () => {
    assert.throws(
      () => BpfObject.open(SELFTEST, { constants: { selftest_magic: Buffer.alloc(8) } }),
      (e: unknown) => e instanceof BpfError && e.code === 'EINVAL' && /4 bytes, got 8/.test(e.message),
    );
  });

  it('open() of a missing file fails naming the path', () => {
    assert.throws(() => BpfObject.open('/nonexistent/x.o'), (e: unknown) => e instanceof BpfError && e.code === 'ENOENT' && /\/nonexistent\/x\.o/.test(e.message));
  });

  it('a program the verifier rejects fails load() with the verifier log', () => {
    using obj = BpfObject.open(SELFTEST, { autoload: { rejected: true } });
    assert.throws(
      () => obj.load(),
      (e: unknown) => {
        assert.ok(e instanceof BpfError);
        assert.equal(e.code, 'EACCES');
        assert.equal(e.errno, 13);
        assert.match(e.message, /^Cannot load program "rejected" of ffi_selftest\.o: Permission denied \(EACCES\)/);
        assert.ok(e.verifierLog && e.verifierLog.length > 0);
        assert.match(e.verifierLog, /invalid access to packet/);
        assert.match(e.message, /invalid access to packet/); // the log's tail is in the message too
        return true;
      },
    );
  });

  it('program() and map() of unknown names say what exists', () => {
    using obj = BpfObject.open(SELFTEST);
    obj.load();
    assert.throws(() => obj.program('nope'), /No loaded program "nope" in ffi_selftest\.o \(has: .*read_constants/);
    assert.throws(() => obj.map('nope'), /No map "nope" in ffi_selftest\.o \(has: .*selftest_hash/);
    assert.throws(() => obj.program('rejected'), /No loaded program "rejected"/); // SEC("?tc"): not loaded
  });

  it('close() invalidates the programs and maps it handed out', () => {
    const obj = BpfObject.open(SELFTEST);
    obj.load();
    const map = obj.map('selftest_hash');
    const prog = obj.program('read_constants');
    map.close(); // no-op: the object owns it
    assert.equal(map.lookup(u32(1)), undefined);
    obj.close();
    assert.throws(() => map.fd, /closed/);
    assert.throws(() => prog.fd, /closed/);
    obj.close(); // twice is fine
  });

  describe('with a private bpffs', () => {
    let fs: ReturnType<typeof privateBpffs>;
    before(() => {
      fs = privateBpffs();
    });
    after(() => fs.cleanup());

    it('pinMaps: a second object reuses the pinned map and sees the first one\'s entries', () => {
      const pinMaps = { dir: `${fs.dir}/node1`, names: ['selftest_hash'] };
      using first = BpfObject.open(SELFTEST, { pinMaps });
      first.load();
      first.map('selftest_hash').update(u32(5), u64(55n));
      using second = BpfObject.open(SELFTEST, { pinMaps });
      second.load();
      assert.deepEqual(second.map('selftest_hash').lookup(u32(5)), u64(55n));
      assert.equal(second.map('selftest_hash').id, first.map('selftest_hash').id);
      // Not pinned: each object has its own.
      assert.notEqual(second.map('selftest_array').id, first.map('selftest_array').id);
    });

    it('pinMaps of an unknown map name fails naming it', () => {
      assert.throws(() => BpfObject.open(SELFTEST, { pinMaps: { dir: `${fs.dir}/x`, names: ['nope'] } }), /No map "nope"/);
    });

    it('program pin and openPinned give the same program', () => {
      using obj = BpfObject.open(SELFTEST);
      obj.load();
      const prog = obj.program('read_constants');
      prog.pin(`${fs.dir}/prog`);
      using again = BpfProgram.openPinned(`${fs.dir}/prog`);
      assert.equal(again.id, prog.id);
      assert.equal(again.testRun({ data: packet() }).retval, 7);
    });
  });

  it('pinMaps outside a bpf filesystem fails saying so', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tnd-notbpf-'));
    try {
      assert.throws(() => BpfObject.open(SELFTEST, { pinMaps: { dir, names: ['selftest_hash'] } }), /not on a bpf filesystem/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reuseMaps: two objects share one map', () => {
    using first = BpfObject.open(SELFTEST);
    first.load();
    using second = BpfObject.open(SELFTEST, { reuseMaps: { selftest_array: first.map('selftest_array') } });
    second.load();
    second.program('count_packets').testRun({ data: packet(), repeat: 3 });
    assert.deepEqual(first.map('selftest_array').lookup(u32(0)), u64(3n));
  });
});

