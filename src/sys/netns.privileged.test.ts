import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readlinkSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { SysError, currentNetnsCookie, netnsCookie } from './index.js';

describe('netnsCookie() on the real kernel', () => {
  const names = [0, 1].map(() => `tndck-${randomBytes(3).toString('hex')}`);
  for (const n of names) execFileSync('ip', ['netns', 'add', n]);
  after(() => {
    for (const n of names) spawnSync('ip', ['netns', 'del', n]);
  });

  it('gives two namespaces two cookies, and one namespace the same cookie each time', () => {
    const a = netnsCookie(`/run/netns/${names[0]}`);
    const b = netnsCookie(`/run/netns/${names[1]}`);
    assert.notEqual(a, b);
    assert.equal(netnsCookie(`/run/netns/${names[0]}`), a);
    assert.ok(a > 0n && b > 0n);
  });

  it('leaves the calling thread in its own namespace', () => {
    const before = readlinkSync('/proc/thread-self/ns/net');
    const own = currentNetnsCookie();
    const other = netnsCookie(`/run/netns/${names[0]}`);
    assert.equal(readlinkSync('/proc/thread-self/ns/net'), before);
    assert.equal(currentNetnsCookie(), own);
    assert.notEqual(other, own);
    // The namespace this process runs in is that of its own /proc entry.
    assert.equal(netnsCookie('/proc/self/ns/net'), own);
  });

  it('names the path it could not open, and stays home', () => {
    const before = readlinkSync('/proc/thread-self/ns/net');
    assert.throws(
      () => netnsCookie('/run/netns/tnd-no-such-ns'),
      (e: unknown) => e instanceof SysError && e.code === 'ENOENT' && /"\/run\/netns\/tnd-no-such-ns"/.test(e.message),
    );
    // A file that is no namespace: setns refuses it (EINVAL).
    assert.throws(() => netnsCookie('/proc/self/status'), (e: unknown) => e instanceof SysError && e.code === 'EINVAL');
    assert.equal(readlinkSync('/proc/thread-self/ns/net'), before);
  });
});
