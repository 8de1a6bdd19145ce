import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryKvstore } from './memory.js';
import type { KvEvent } from './kvstore.js';
import { TendrilError } from '../common/errors.js';

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-kv-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('MemoryKvstore gets, puts, lists by prefix in key order, and deletes', async (t) => {
  const kv = await MemoryKvstore.open(tempDir(t));
  assert.equal(await kv.get('a/x'), undefined);
  await kv.put('a/b/2', 'two');
  await kv.put('a/b/1', 'one');
  await kv.put('a/bc', 'other');
  await kv.put('z', 'zed');
  assert.equal(await kv.get('a/b/1'), 'one');
  assert.deepEqual([...(await kv.list('a/b/'))], [['a/b/1', 'one'], ['a/b/2', 'two']]);
  assert.deepEqual([...(await kv.list('a/b'))].map(([k]) => k), ['a/b/1', 'a/b/2', 'a/bc']);
  assert.equal((await kv.list('')).size, 4);
  assert.equal((await kv.list('nothing/')).size, 0);
  assert.equal(await kv.delete('a/b/1'), true);
  assert.equal(await kv.delete('a/b/1'), false);
  assert.deepEqual([...(await kv.list('a/b/')).keys()], ['a/b/2']);
  await kv.close();
});

test('MemoryKvstore createIfAbsent creates once and compareAndDelete deletes only the expected value', async (t) => {
  const kv = await MemoryKvstore.open(tempDir(t));
  const results = await Promise.all([kv.createIfAbsent('k', 'first'), kv.createIfAbsent('k', 'second')]);
  assert.deepEqual(results, [true, false]);
  assert.equal(await kv.get('k'), 'first');
  assert.equal(await kv.compareAndDelete('k', 'second'), false);
  assert.equal(await kv.get('k'), 'first');
  assert.equal(await kv.compareAndDelete('k', 'first'), true);
  assert.equal(await kv.compareAndDelete('k', 'first'), false);
  assert.equal(await kv.createIfAbsent('k', 'third'), true);
  await kv.close();
});

test('MemoryKvstore watch reports puts and deletes under its prefix, in order, until disposed', async (t) => {
  const kv = await MemoryKvstore.open(tempDir(t));
  const seen: KvEvent[] = [];
  const w = kv.watch('ids/', (e) => seen.push(e));
  await Promise.all([kv.put('ids/1', 'a'), kv.put('other/1', 'b'), kv.createIfAbsent('ids/2', 'c'), kv.createIfAbsent('ids/2', 'no')]);
  await kv.delete('ids/1');
  await kv.compareAndDelete('ids/2', 'c');
  await kv.delete('ids/404');
  assert.deepEqual(seen, [
    { type: 'put', key: 'ids/1', value: 'a' },
    { type: 'put', key: 'ids/2', value: 'c' },
    { type: 'delete', key: 'ids/1' },
    { type: 'delete', key: 'ids/2' },
  ]);
  w.dispose();
  await kv.put('ids/3', 'd');
  assert.equal(seen.length, 4);
  await kv.close();
});

test('MemoryKvstore tells watchers of a change before the call that made it resolves', async (t) => {
  const kv = await MemoryKvstore.open(tempDir(t));
  const seen: string[] = [];
  kv.watch('', (e) => seen.push(e.key));
  const done = kv.put('k', 'v').then(() => assert.deepEqual(seen, ['k']));
  assert.deepEqual(seen, [], 'not before the change is on disk');
  await done;
  await kv.close();
});

test('MemoryKvstore keeps watching when one listener throws', async (t) => {
  const kv = await MemoryKvstore.open(tempDir(t));
  const seen: string[] = [];
  kv.watch('', () => {
    throw new Error('listener bug');
  });
  kv.watch('', (e) => seen.push(e.key));
  const warned = new Promise((resolve) => process.once('warning', resolve));
  await kv.put('k', 'v');
  assert.deepEqual(seen, ['k']);
  assert.match(String(await warned), /listener bug/);
  await kv.close();
});

test('MemoryKvstore restores persistent keys after reopening, but not ephemeral ones', async (t) => {
  const dir = tempDir(t);
  const kv = await MemoryKvstore.open(dir);
  await kv.put('keep', '1');
  await kv.put('session', '2', { ephemeral: true });
  await kv.createIfAbsent('gone', '3');
  await kv.delete('gone');
  assert.equal(await kv.get('session'), '2');
  await kv.close();
  const again = await MemoryKvstore.open(dir);
  assert.deepEqual([...(await again.list(''))], [['keep', '1']]);
  await again.close();
});

test('MemoryKvstore makes a key persistent again when it is put without ephemeral', async (t) => {
  const dir = tempDir(t);
  const kv = await MemoryKvstore.open(dir);
  await kv.put('k', 'lease', { ephemeral: true });
  await kv.put('k', 'disk');
  await kv.close();
  const again = await MemoryKvstore.open(dir);
  assert.equal(await again.get('k'), 'disk');
  await again.put('k', 'lease', { ephemeral: true });
  await again.close();
  const third = await MemoryKvstore.open(dir);
  assert.equal(await third.get('k'), undefined, 'the ephemeral put replaced the persistent key');
  await third.close();
});

test('MemoryKvstore coalesces concurrent changes into one file write each resolved after it', async (t) => {
  const dir = tempDir(t);
  const kv = await MemoryKvstore.open(dir);
  const ops: Array<Promise<unknown>> = [];
  for (let i = 0; i < 10_000; i++) ops.push(kv.createIfAbsent(`k/${i}`, String(i)));
  assert.equal(kv.writeCount, 0);
  await Promise.all(ops);
  assert.equal(kv.writeCount, 1);
  const onDisk = JSON.parse(readFileSync(join(dir, 'kvstore.json'), 'utf8')) as { entries: Record<string, string> };
  assert.equal(Object.keys(onDisk.entries).length, 10_000);
  // Reads and no-op changes do not write.
  await Promise.all([kv.get('k/1'), kv.list('k/'), kv.delete('missing'), kv.createIfAbsent('k/1', 'x')]);
  assert.equal(kv.writeCount, 1);
  await kv.put('eph', 'x', { ephemeral: true });
  assert.equal(kv.writeCount, 1);
  await kv.close();
});

test('MemoryKvstore holds a read back until the pending change it sees is on disk', async (t) => {
  const kv = await MemoryKvstore.open(tempDir(t));
  const put = kv.put('k', 'v');
  const order: string[] = [];
  await Promise.all([kv.get('k').then((v) => order.push(`get ${v} after ${kv.writeCount} write`)), put]);
  assert.deepEqual(order, ['get v after 1 write']);
  await kv.close();
});

test('MemoryKvstore writes pending changes on close and refuses calls afterwards', async (t) => {
  const dir = tempDir(t);
  const kv = await MemoryKvstore.open(dir);
  const put = kv.put('k', 'v');
  await kv.close();
  await put;
  await assert.rejects(kv.get('k'), (e: unknown) => e instanceof TendrilError && e.code === 'unavailable');
  assert.throws(() => kv.watch('', () => {}), /kvstore is closed/);
  const again = await MemoryKvstore.open(dir);
  assert.equal(await again.get('k'), 'v');
  await again.close();
});

test('MemoryKvstore refuses a state file that is not a kvstore, naming it', async (t) => {
  const dir = tempDir(t);
  writeFileSync(join(dir, 'kvstore.json'), JSON.stringify({ version: 9 }));
  await assert.rejects(MemoryKvstore.open(dir), /kvstore file .*kvstore\.json is not a version 1 kvstore/);
  writeFileSync(join(dir, 'kvstore.json'), JSON.stringify({ version: 1, entries: { k: 1 } }));
  await assert.rejects(MemoryKvstore.open(dir), /non-string value at "k"/);
});

test('MemoryKvstore fails the calls of a write that could not be made, and every later call', async (t) => {
  const dir = tempDir(t);
  // A directory where the file should go makes the rename fail.
  const kv = await MemoryKvstore.open(dir, 'blocked');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(join(dir, 'blocked', 'x'), { recursive: true });
  await assert.rejects(kv.put('k', 'v'), (e: unknown) => e instanceof TendrilError && e.code === 'unavailable' && /could not write/.test(e.message));
  await assert.rejects(kv.get('k'), /could not write/);
  await kv.close().catch(() => undefined);
});
