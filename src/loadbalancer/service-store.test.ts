import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ServiceStore } from './service-store.js';

interface Svc {
  id: number;
  name: string;
}

let dir: string;
beforeEach(() => (dir = mkdtempSync(join(tmpdir(), 'tendril-store-'))));
afterEach(() => rmSync(dir, { recursive: true, force: true }));

const counters = (n: number) => ({ nextServiceId: n, nextBackendId: 1 });

const reopen = () => new ServiceStore<Svc>(dir);

test('journal records replay over the snapshot: puts, deletes, counters', () => {
  const a = reopen();
  assert.equal(a.load(), undefined);
  a.compact([], counters(1));
  a.commit([{ put: { id: 1, name: 'a' } }, { put: { id: 2, name: 'b' } }], counters(3), () => []);
  a.commit([{ put: { id: 1, name: 'a2' } }, { del: 2 }], counters(3), () => []);
  a.close();
  assert.deepEqual(reopen().load(), { counters: counters(3), services: [{ id: 1, name: 'a2' }] });
});

test('a torn last line is ignored; records a snapshot already holds are skipped', () => {
  const a = reopen();
  a.load();
  a.commit([{ put: { id: 1, name: 'a' } }], counters(2), () => []);
  a.close();
  appendFileSync(join(dir, 'services.journal'), '{"seq": 2, "coun');
  const b = reopen();
  assert.deepEqual(b.load()?.services, [{ id: 1, name: 'a' }]);
  // A snapshot written, then a crash before the journal was emptied: the old record must not win.
  b.compact([{ id: 1, name: 'newer' }], counters(2));
  b.close();
  appendFileSync(join(dir, 'services.journal'), '{"seq":1,"counters":{"nextServiceId":2,"nextBackendId":1},"put":{"id":1,"name":"a"}}\n');
  assert.deepEqual(reopen().load()?.services, [{ id: 1, name: 'newer' }]);
});

test('the journal is folded into a new snapshot once it outgrows it', () => {
  const a = reopen();
  a.load();
  a.compact([], counters(1));
  const all: Svc[] = [];
  const big = 'x'.repeat(1000);
  for (let i = 1; i <= 1200; i++) {
    all.push({ id: i, name: big });
    a.commit([{ put: { id: i, name: big } }], counters(i + 1), () => all);
  }
  a.close();
  const journal = statSync(join(dir, 'services.journal')).size;
  assert.ok(journal < 1.2 * (1 << 20), `journal emptied by a compaction (${journal} bytes)`);
  assert.ok(statSync(join(dir, 'services.json')).size > 900_000, 'the snapshot holds the services of the folded journal');
  const loaded = reopen().load()!;
  assert.equal(loaded.services.length, 1200);
  assert.deepEqual(loaded.counters, counters(1201));
});

test('commit before load is refused', () => {
  assert.throws(() => reopen().commit([], counters(1), () => []), /only after they were restored/);
});
