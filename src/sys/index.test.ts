import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EpollWaiter, SysError, closeFd, describeErrno, errnoName, getuid, ifNameToIndex, isBpffs, libc } from './index.js';

describe('src/sys', () => {
  it('ifNameToIndex() finds lo and names a missing device', () => {
    assert.ok(ifNameToIndex('lo') > 0);
    assert.throws(
      () => ifNameToIndex('tnd-missing0'),
      (e: unknown) => e instanceof SysError && e.code === 'ENODEV' && /No network device "tnd-missing0"/.test(e.message),
    );
  });

  it('isBpffs() is false for a plain directory and for a missing path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'tnd-sys-'));
    try {
      assert.equal(isBpffs(dir), false);
      assert.equal(isBpffs(join(dir, 'missing')), false);
    } finally {
      rmSync(dir, { recursive: true });
    }
  });

  it('errno names and texts', () => {
    assert.equal(errnoName(2), 'ENOENT');
    assert.equal(errnoName(13), 'EACCES');
    assert.equal(describeErrno(13), 'Permission denied (EACCES)');
  });

  it('getuid() is a number', () => {
    assert.equal(getuid(), process.getuid?.());
  });

  it('EpollWaiter reports a readable fd off the main thread, and close() ends a pending wait', async () => {
    const efd = libc.eventfd(0, 0o2000000 | 0o4000) as number;
    assert.ok(efd >= 0);
    const waiter = new EpollWaiter([efd]);
    try {
      const ready = new Promise<boolean>((res, rej) => waiter.wait((err, r) => (err ? rej(err) : res(r))));
      const one = Buffer.alloc(8);
      one.writeBigUInt64LE(1n);
      setTimeout(() => libc.write(efd, one, 8), 5);
      assert.equal(await ready, true);
      libc.read(efd, Buffer.alloc(8), 8); // reset the counter: nothing readable now
      const closed = new Promise<boolean>((res) => waiter.wait((_err, r) => res(r)));
      waiter.close();
      assert.equal(await closed, false);
    } finally {
      waiter.close();
      closeFd(efd);
    }
  });
});
