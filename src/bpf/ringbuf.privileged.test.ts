import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { BpfError, BpfObject, RingBufferReader, bpfObjectPath } from './index.js';

/** struct selftest_record of ffi_selftest.c: seq, pkt_len, magic, then a tnd_event. */
const decode = (b: Buffer) => ({ seq: b.readUInt32LE(0), pktLen: b.readUInt32LE(4), magic: b.readBigUInt64LE(8), type: b[24] }); // tnd_event.type follows its u64 timestamp

describe('RingBufferReader', () => {
  let obj: BpfObject;
  before(() => {
    obj = BpfObject.open(bpfObjectPath('tests/ffi_selftest.o'));
    obj.load();
  });
  after(() => obj.close());

  const emit = (n: number) => {
    const data = Buffer.alloc(64);
    data[0] = n;
    assert.equal(obj.program('emit_events').testRun({ data }).retval, n);
  };

  it('delivers records written by a program, in order, without blocking the event loop', async () => {
    const got: ReturnType<typeof decode>[] = [];
    let done!: () => void;
    const all = new Promise<void>((res) => (done = res));
    const reader = new RingBufferReader(obj.map('selftest_events'), (rec) => {
      got.push(decode(rec));
      if (got.length === 8) done();
    });
    try {
      reader.start();
      // The event loop keeps turning while the reader waits.
      await new Promise((res) => setImmediate(res));
      emit(5);
      await new Promise((res) => setTimeout(res, 10));
      emit(3);
      await all;
    } finally {
      reader.close();
    }
    assert.deepEqual(got.map((r) => r.seq), [0, 1, 2, 3, 4, 0, 1, 2]);
    assert.ok(got.every((r) => r.pktLen === 64 && r.magic === 7n && r.type === 1));
  });

  it('delivers records written before start()', () => {
    const got: Buffer[] = [];
    emit(2);
    const reader = new RingBufferReader(obj.map('selftest_events'), (rec) => got.push(rec));
    try {
      reader.start();
      assert.equal(got.length, 2);
    } finally {
      reader.close();
    }
  });

  it('close() stops delivery, twice is fine, and nothing keeps the process alive', async () => {
    const got: Buffer[] = [];
    const reader = new RingBufferReader(obj.map('selftest_events'), (rec) => got.push(rec));
    reader.start();
    reader.close();
    reader.close();
    emit(4);
    await new Promise((res) => setTimeout(res, 20));
    assert.equal(got.length, 0);
    // drain what the closed reader left so the next test starts empty
    const drain = new RingBufferReader(obj.map('selftest_events'), () => {});
    drain.start();
    drain.close();
  });

  it('an exception in the callback stops the reader and reaches onError', async () => {
    const errors: Error[] = [];
    const reader = new RingBufferReader(
      obj.map('selftest_events'),
      () => {
        throw new Error('boom');
      },
      (err) => errors.push(err),
    );
    reader.start();
    emit(1);
    for (let i = 0; i < 100 && errors.length === 0; i++) await new Promise((res) => setTimeout(res, 10));
    reader.close();
    assert.equal(errors[0]?.message, 'boom');
  });

  it('refuses a map that is not a ring buffer', () => {
    assert.throws(() => new RingBufferReader(obj.map('selftest_hash'), () => {}), (e: unknown) => e instanceof BpfError && /not a ring buffer/.test(e.message));
  });
});
