import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdentityAllocator, type IdentityChange } from './allocator.js';
import { MemoryKvstore } from '../kvstore/memory.js';
import type { Kvstore } from '../kvstore/kvstore.js';
import { subscription } from '../kvstore/kvstore.js';
import { TendrilError } from '../common/errors.js';
import { ReservedIdentity } from '../common/identity.js';

async function store(t: { after: (fn: () => Promise<void> | void) => void }): Promise<{ kv: MemoryKvstore; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-id-'));
  const kv = await MemoryKvstore.open(dir);
  t.after(async () => {
    await kv.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  });
  return { kv, dir };
}

const identityKeys = async (kv: Kvstore) => [...(await kv.list('tendril/identities/')).keys()];

test('IdentityAllocator gives one identity per label set, in any key order, from 256 upward', async (t) => {
  const { kv } = await store(t);
  const ids = await IdentityAllocator.open(kv, 'node1');
  const web = await ids.allocate({ app: 'web', env: 'prod' });
  const again = await ids.allocate({ env: 'prod', app: 'web' });
  const db = await ids.allocate({ app: 'db' });
  assert.equal(web.id, 256);
  assert.equal(again.id, 256);
  assert.equal(db.id, 257);
  assert.deepEqual(Object.keys(web.labels), ['app', 'env']);
  assert.deepEqual(ids.get(257), { id: 257, labels: { app: 'db' } });
  assert.equal(ids.users(256), 2);
  assert.deepEqual(await kv.list('tendril/identities/'), new Map([
    ['tendril/identities/id/256', 'app=web,env=prod'],
    ['tendril/identities/id/257', 'app=db'],
    ['tendril/identities/labels/app=db', '257'],
    ['tendril/identities/labels/app=web,env=prod', '256'],
    ['tendril/identities/refs/256/node1', '1'],
    ['tendril/identities/refs/257/node1', '1'],
  ]));
  ids.close();
});

test('IdentityAllocator frees an identity when its last local user releases it', async (t) => {
  const { kv } = await store(t);
  const ids = await IdentityAllocator.open(kv, 'node1');
  const changes: IdentityChange[] = [];
  ids.onChange((c) => changes.push(c));
  const a = await ids.allocate({ app: 'web' });
  await ids.allocate({ app: 'web' });
  assert.equal(await ids.release(a.id), false);
  assert.ok(ids.get(a.id));
  assert.equal(await ids.release(a.id), true);
  assert.equal(ids.get(a.id), undefined);
  assert.deepEqual(await identityKeys(kv), []);
  assert.deepEqual(changes.map((c) => `${c.type} ${c.identity.id}`), ['add 256', 'delete 256']);
  await assert.rejects(ids.release(a.id), (e: unknown) => e instanceof TendrilError && e.code === 'not-found');
  // The next allocation moves on rather than reusing the id at once.
  assert.equal((await ids.allocate({ app: 'web' })).id, 257);
  ids.close();
});

test('IdentityAllocator lists the reserved identities with their labels before the allocated ones', async (t) => {
  const { kv } = await store(t);
  const ids = await IdentityAllocator.open(kv, 'node1');
  await ids.allocate({ app: 'web' });
  const list = ids.list();
  assert.deepEqual(list.slice(0, 3), [
    { id: 1, labels: { 'reserved:host': '' } },
    { id: 2, labels: { 'cidr:0.0.0.0/0': '', 'cidr:::/0': '', 'reserved:world': '' } },
    { id: 3, labels: { 'reserved:unmanaged': '' } },
  ]);
  assert.equal(list.length, Object.keys(ReservedIdentity).length + 1);
  assert.deepEqual(list.at(-1), { id: 256, labels: { app: 'web' } });
  assert.deepEqual(ids.get(ReservedIdentity.health), { id: 4, labels: { 'reserved:health': '' } });
  await assert.rejects(ids.release(ReservedIdentity.host), /identity 1 is reserved/);
  ids.close();
});

test('IdentityAllocator refuses labels it cannot key or that only the agent may give', async (t) => {
  const { kv } = await store(t);
  const ids = await IdentityAllocator.open(kv, 'node1');
  await assert.rejects(ids.allocate({ 'reserved:host': '' }), /label "reserved:host" is reserved/);
  await assert.rejects(ids.allocate({ 'cidr:10.0.0.0/8': '' }), /reserved for identities the agent makes/);
  await assert.rejects(ids.allocate({ 'a,b': 'x' }), /label key "a,b" is invalid/);
  await assert.rejects(ids.allocate({ a: 'x,y' }), /label value "x,y" of "a" is invalid/);
  assert.deepEqual(await identityKeys(kv), []);
  await assert.rejects(IdentityAllocator.open(kv, 'a/b'), /node name "a\/b" is invalid/);
  ids.close();
});

test('IdentityAllocator shares identities between nodes and frees one only when no node holds it', async (t) => {
  const { kv } = await store(t);
  const n1 = await IdentityAllocator.open(kv, 'node1');
  const n2 = await IdentityAllocator.open(kv, 'node2');
  const seen: string[] = [];
  n2.onChange((c) => seen.push(`${c.type} ${c.identity.id}`));
  const a = await n1.allocate({ app: 'web' });
  assert.deepEqual(n2.get(a.id), a, 'node2 learns of node1 allocation through the watch');
  const b = await n2.allocate({ app: 'web' });
  assert.equal(b.id, a.id);
  assert.equal(await n1.release(a.id), true);
  assert.deepEqual(n1.get(a.id), a, 'node2 still holds it');
  assert.deepEqual(await identityKeys(kv), ['tendril/identities/id/256', 'tendril/identities/labels/app=web', 'tendril/identities/refs/256/node2']);
  assert.equal(await n2.release(a.id), true);
  assert.equal(n1.get(a.id), undefined);
  assert.deepEqual(seen, ['add 256', 'delete 256']);
  n1.close();
  n2.close();
});

test('IdentityAllocator nodes racing for the same new label set end with one identity', async (t) => {
  const { kv } = await store(t);
  const n1 = await IdentityAllocator.open(kv, 'node1');
  const n2 = await IdentityAllocator.open(kv, 'node2');
  const [a, b] = await Promise.all([n1.allocate({ app: 'web' }), n2.allocate({ app: 'web' })]);
  assert.equal(a.id, b.id);
  const keys = await identityKeys(kv);
  assert.deepEqual(keys.filter((k) => k.includes('/id/')), [`tendril/identities/id/${a.id}`], 'the losing candidate was given back');
  assert.deepEqual(keys.filter((k) => k.includes('/refs/')), [`tendril/identities/refs/${a.id}/node1`, `tendril/identities/refs/${a.id}/node2`]);
  n1.close();
  n2.close();
});

/** A store whose watch is silent: the allocator's cache lags, as it may behind etcd. */
function lagging(kv: Kvstore): Kvstore {
  return {
    get: (k) => kv.get(k),
    list: (p) => kv.list(p),
    put: (k, v, o) => kv.put(k, v, o),
    createIfAbsent: (k, v, o) => kv.createIfAbsent(k, v, o),
    delete: (k) => kv.delete(k),
    compareAndDelete: (k, v) => kv.compareAndDelete(k, v),
    watch: () => subscription(() => {}),
    close: () => kv.close(),
  };
}

test('IdentityAllocator trusts the kvstore over a lagging cache: skips taken ids, joins existing label sets', async (t) => {
  const { kv } = await store(t);
  const ids = await IdentityAllocator.open(lagging(kv), 'node1');
  // Another node, unseen: id 256 for one set, and a whole identity 300 for another.
  await kv.put('tendril/identities/id/256', 'app=other');
  await kv.put('tendril/identities/id/300', 'app=web');
  await kv.put('tendril/identities/labels/app=web', '300');
  assert.equal((await ids.allocate({ app: 'db' })).id, 257);
  assert.deepEqual(await ids.allocate({ app: 'web' }), { id: 300, labels: { app: 'web' } });
  assert.equal(await kv.get('tendril/identities/refs/300/node1'), '1');
  // A label index left pointing at an identity that is gone is not joined but replaced.
  await kv.put('tendril/identities/labels/app=ghost', '999');
  const ghost = await ids.allocate({ app: 'ghost' });
  assert.equal(ghost.id, 258);
  assert.equal(await kv.get('tendril/identities/labels/app=ghost'), '258');
  assert.equal(await kv.get('tendril/identities/refs/999/node1'), undefined, 'the ref on the ghost was taken back');
  ids.close();
});

test('IdentityAllocator after a restart gives restored label sets their ids and releases what nobody claimed', async (t) => {
  const { kv, dir } = await store(t);
  const before = await IdentityAllocator.open(kv, 'node1');
  const web = await before.allocate({ app: 'web' });
  await before.allocate({ app: 'web' });
  const db = await before.allocate({ app: 'db' });
  before.close();
  await kv.close();

  const kv2 = await MemoryKvstore.open(dir);
  t.after(() => kv2.close());
  const after = await IdentityAllocator.open(kv2, 'node1');
  assert.deepEqual(after.get(web.id), web);
  assert.equal(after.users(web.id), 0);
  const writes = kv2.writeCount;
  assert.deepEqual(await after.allocate({ app: 'web' }), web);
  assert.equal(kv2.writeCount, writes, 'claiming a restored hold writes nothing');
  assert.deepEqual(await after.finishRestore(), [db.id]);
  assert.equal(after.get(db.id), undefined);
  assert.equal(await kv2.get(`tendril/identities/id/${db.id}`), undefined);
  assert.equal(after.users(web.id), 1);
  assert.equal(await after.release(web.id), true);
  assert.deepEqual(await identityKeys(kv2), []);
  after.close();
});

test('IdentityAllocator releases a restored hold that an endpoint deleted during the restart gives up', async (t) => {
  const { kv } = await store(t);
  const before = await IdentityAllocator.open(kv, 'node1');
  const web = await before.allocate({ app: 'web' });
  before.close();
  const after = await IdentityAllocator.open(kv, 'node1');
  assert.equal(await after.release(web.id), true);
  assert.deepEqual(await after.finishRestore(), []);
  assert.deepEqual(await identityKeys(kv), []);
  after.close();
});

test('IdentityAllocator allocates 10,000 distinct label sets concurrently in a few writes, and releases them', async (t) => {
  const { kv } = await store(t);
  const ids = await IdentityAllocator.open(kv, 'node1');
  const started = performance.now();
  const all = await Promise.all(Array.from({ length: 10_000 }, (_, i) => ids.allocate({ app: `app${i}`, team: 'x' })));
  const allocMs = performance.now() - started;
  assert.equal(new Set(all.map((i) => i.id)).size, 10_000);
  assert.ok(kv.writeCount <= 4, `10,000 allocations took ${kv.writeCount} file writes`);
  const writes = kv.writeCount;
  const releaseStart = performance.now();
  const freed = await Promise.all(all.map((i) => ids.release(i.id)));
  const releaseMs = performance.now() - releaseStart;
  assert.ok(freed.every((f) => f));
  assert.deepEqual(await identityKeys(kv), []);
  t.diagnostic(`10,000 allocations: ${allocMs.toFixed(0)} ms, ${writes} writes; releases: ${releaseMs.toFixed(0)} ms, ${kv.writeCount - writes} writes`);
  ids.close();
});

test('IdentityAllocator refuses calls after close', async (t) => {
  const { kv } = await store(t);
  const ids = await IdentityAllocator.open(kv, 'node1');
  ids.close();
  await assert.rejects(ids.allocate({ app: 'web' }), /allocator is closed/);
});
