import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BpfError, BpfObject, bpfObjectPath } from './index.js';

describe('BpfProgram.testRun', () => {
  let selftest: BpfObject;
  let passthrough: BpfObject;
  before(() => {
    selftest = BpfObject.open(bpfObjectPath('tests/ffi_selftest.o'), {
      constants: { selftest_mac: Buffer.from('020000000001', 'hex') },
    });
    selftest.load();
    passthrough = BpfObject.open(bpfObjectPath('tests/passthrough.o'));
    passthrough.load();
  });
  after(() => {
    selftest.close();
    passthrough.close();
  });

  it('passes exact bytes in and returns exact bytes out', () => {
    const data = Buffer.alloc(98);
    for (let i = 0; i < data.length; i++) data[i] = i;
    const r = selftest.program('read_constants').testRun({ data });
    const expected = Buffer.from(data);
    Buffer.from('020000000001', 'hex').copy(expected, 0); // the program rewrote the destination MAC
    assert.deepEqual(r.data, expected);
    assert.equal(r.retval, 7);
    assert.equal(typeof r.durationNs, 'number');
  });

  it('tc and XDP pass-through programs return their verdicts and the packet unchanged', () => {
    const data = Buffer.alloc(60, 0x5a);
    const tc = passthrough.program('tc_pass').testRun({ data, repeat: 10 });
    assert.equal(tc.retval, 0); // TC_ACT_OK
    assert.deepEqual(tc.data, data);
    const xdp = passthrough.program('xdp_pass').testRun({ data });
    assert.equal(xdp.retval, 2); // XDP_PASS
    assert.deepEqual(xdp.data, data);
  });

  it('repeat runs the program that many times', () => {
    const arr = selftest.map('selftest_array');
    const zero = Buffer.alloc(4);
    arr.update(zero, Buffer.alloc(8));
    selftest.program('xdp_count').testRun({ data: Buffer.alloc(60), repeat: 25 });
    assert.equal(arr.lookup(zero)?.readBigUInt64LE(0), 25n);
  });

  it('an output larger than dataSizeOut fails with ENOSPC and says so', () => {
    assert.throws(
      () => passthrough.program('tc_pass').testRun({ data: Buffer.alloc(100), dataSizeOut: 20 }),
      (e: unknown) => e instanceof BpfError && e.code === 'ENOSPC' && /larger than dataSizeOut 20/.test(e.message),
    );
  });

  it('a packet too short for the program type is refused with the errno', () => {
    assert.throws(() => passthrough.program('tc_pass').testRun({ data: Buffer.alloc(4) }), (e: unknown) => e instanceof BpfError && e.code === 'EINVAL');
  });

  it('passes a context in and returns it (__sk_buff)', () => {
    const ctx = Buffer.alloc(192); // struct __sk_buff
    ctx.writeUInt32LE(0x1234, 8); // mark
    const r = passthrough.program('tc_pass').testRun({ data: Buffer.alloc(60), ctx });
    assert.ok(r.ctx);
    assert.equal(r.ctx.readUInt32LE(8), 0x1234);
  });
});
