/**
 * Unit tests of the service manager's control logic: ids, write order,
 * sharing and reference counts, terminating backends, persistence and
 * rollback. The datapath here is an in-memory fake of LbDatapath that checks,
 * after every write, that no lookup dangles; the real BPF maps behind the
 * same interface are tested with the datapath (src/datapath/lb-maps.ts).
 */
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TendrilError } from '../common/errors.js';
import type { BackendEntry, Frontend, FrontendEntry, FrontendScope, LbDatapath } from '../common/lb.js';
import { ServiceManager, type ServiceManagerOptions } from './manager.js';

class FakeDatapath implements LbDatapath {
  readonly maglevSize = 1021;
  readonly backends = new Map<number, BackendEntry>();
  readonly tables = new Map<number, Uint32Array>();
  readonly frontends = new Map<string, FrontendEntry>();
  readonly log: string[] = [];
  readonly connections = new Map<number, number>();
  /** Makes the next write whose log line matches throw, as a full map would (once). */
  failOn: RegExp | undefined;

  setBackend(b: BackendEntry): void {
    this.write(`setBackend ${b.id} ${b.address}:${b.port}/${b.protocol} ${b.state}`, () => this.backends.set(b.id, { ...b }));
  }
  deleteBackend(id: number): void {
    this.write(`deleteBackend ${id}`, () => this.backends.delete(id));
  }
  setMaglev(id: number, table: Uint32Array): void {
    assert.equal(table.length, this.maglevSize);
    this.write(`setMaglev ${id}`, () => this.tables.set(id, table.slice()));
  }
  deleteMaglev(id: number): void {
    this.write(`deleteMaglev ${id}`, () => this.tables.delete(id));
  }
  setFrontend(f: FrontendEntry): void {
    this.write(`setFrontend ${f.scope} ${fk(f.frontend)} svc ${f.serviceId} maglev ${f.maglevId} active ${f.activeBackends}`, () =>
      this.frontends.set(`${f.scope} ${fk(f.frontend)}`, structuredClone(f)),
    );
  }
  deleteFrontend(frontend: Frontend, scope: FrontendScope): void {
    this.write(`deleteFrontend ${scope} ${fk(frontend)}`, () => this.frontends.delete(`${scope} ${fk(frontend)}`));
  }
  backendConnections(): Map<number, number> {
    return new Map(this.connections);
  }

  /** Everything the maps hold, comparable with deepEqual. */
  contents() {
    return {
      backends: [...this.backends.entries()].sort(([a], [b]) => a - b),
      tables: [...this.tables.entries()].sort(([a], [b]) => a - b).map(([id, t]) => [id, Array.from(t)]),
      frontends: [...this.frontends.entries()].sort(([a], [b]) => (a < b ? -1 : 1)),
    };
  }

  private write(line: string, apply: () => void): void {
    if (this.failOn?.test(line)) {
      this.failOn = undefined;
      throw new Error(`fake datapath: ${line} failed`);
    }
    this.log.push(line);
    apply();
    this.checkNoDanglingLookup(line);
  }

  /** What the kernel relies on: a frontend names an existing table, a table names existing backends. */
  private checkNoDanglingLookup(after: string): void {
    for (const f of this.frontends.values()) assert.ok(this.tables.has(f.maglevId), `after "${after}": frontend ${fk(f.frontend)} names missing table ${f.maglevId}`);
    for (const [id, t] of this.tables)
      for (const b of new Set(t)) if (b !== 0) assert.ok(this.backends.has(b), `after "${after}": table ${id} names missing backend ${b}`);
  }
}

const fk = (f: Frontend) => `${f.address}:${f.port}/${f.protocol}`;

let dir: string;
let dp: FakeDatapath;
const managers: ServiceManager[] = [];

function manager(options: Partial<ServiceManagerOptions> = {}, datapath: LbDatapath = dp): ServiceManager {
  const m = new ServiceManager(datapath, { stateDir: dir, podCidrs: ['10.200.1.0/24', 'fd10:200:0:1::/64'], ...options });
  managers.push(m);
  return m;
}

/** A manager as the agent starts it: restored from the state dir first. */
async function started(options: Partial<ServiceManagerOptions> = {}, datapath: LbDatapath = dp): Promise<ServiceManager> {
  const m = manager(options, datapath);
  await m.restore();
  return m;
}

const stateFiles = () => ['services.json', 'services.journal'].map((f) => readFileSync(join(dir, f), 'utf8')).join('\n--\n');

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tendril-lb-'));
  dp = new FakeDatapath();
});
afterEach(() => {
  for (const m of managers.splice(0)) m.close();
  rmSync(dir, { recursive: true, force: true });
});

test('add writes backends, then the Maglev table, then the frontend', async () => {
  const m = await started();
  const svc = await m.add({ frontend: '10.96.0.10:80/TCP', backends: ['10.200.1.5:8080', '10.200.1.6:8080'] });
  assert.deepEqual(dp.log, [
    'setBackend 1 10.200.1.5:8080/TCP active',
    'setBackend 2 10.200.1.6:8080/TCP active',
    'setMaglev 1',
    'setFrontend cluster 10.96.0.10:80/TCP svc 1 maglev 1 active 2',
  ]);
  assert.deepEqual(new Set(dp.tables.get(1)), new Set([1, 2]));
  assert.deepEqual(svc, {
    id: 1,
    frontend: '10.96.0.10:80/TCP',
    type: 'ClusterIP',
    mode: 'snat',
    affinity: 'none',
    affinityTimeoutSec: 0,
    activeBackends: 2,
    backends: [
      { address: '10.200.1.5', port: 8080, state: 'active', connections: 0 },
      { address: '10.200.1.6', port: 8080, state: 'active', connections: 0 },
    ],
  });
  assert.deepEqual(m.get(1), svc);
  assert.deepEqual(m.list(), [svc]);
});

test('NodePort writes a cluster and a nodeport frontend; ExternalIP a cluster and an external one', async () => {
  const m = await started();
  await m.add({ frontend: '10.96.0.11:80', type: 'NodePort', nodePort: 30080, mode: 'dsr', affinity: 'client-ip', backends: ['10.200.2.5:8080'] });
  await m.add({ frontend: '[fd10:96::b]:80', type: 'NodePort', nodePort: 30080, backends: ['[fd10:200:0:2::5]:8080'] });
  await m.add({ frontend: '203.0.113.7:443/TCP', type: 'ExternalIP', backends: ['10.200.2.5:8443'] });
  const fe = (k: string) => dp.frontends.get(k);
  assert.equal(fe('cluster 10.96.0.11:80/TCP')?.mode, 'dsr');
  assert.equal(fe('cluster 10.96.0.11:80/TCP')?.affinityTimeoutSec, 10800);
  assert.equal(fe('nodeport 0.0.0.0:30080/TCP')?.serviceId, 1);
  assert.equal(fe('nodeport :::30080/TCP')?.serviceId, 2, 'the IPv6 node port is a frontend of its own');
  assert.equal(fe('cluster 203.0.113.7:443/TCP')?.serviceId, 3);
  assert.equal(fe('external 203.0.113.7:443/TCP')?.serviceId, 3);
  assert.equal(dp.frontends.size, 6);
  assert.equal(m.get(1).nodePort, 30080);
});

test('services with the same active backends share one table and the backend entries', async () => {
  const m = await started();
  const backends = ['10.200.2.5:8080', '10.200.2.6:8080', '10.200.2.7:8080'];
  const count = 10_000;
  // Concurrent adds: each is its own transition, and they share state-file writes.
  await Promise.all(Array.from({ length: count }, (_, i) => m.add({ frontend: `10.96.${i >> 8}.${i & 0xff}:80`, backends: [...backends].reverse() })));
  assert.deepEqual(m.stats(), { services: count, backends: 3, maglevTables: 1 });
  assert.equal(dp.log.filter((l) => l.startsWith('setMaglev')).length, 1, 'the shared table is built once');
  assert.equal(dp.log.filter((l) => l.startsWith('setBackend')).length, 3);
  assert.equal(dp.frontends.size, count);

  const other = await m.add({ frontend: '10.97.0.1:80', backends: backends.slice(0, 2) });
  assert.equal(m.stats().maglevTables, 2);
  // Its table follows its active set: with the third backend it joins the shared one.
  await m.update(other.id, { addBackends: [backends[2]!] });
  assert.equal(m.stats().maglevTables, 1);
  assert.deepEqual([...dp.tables.keys()], [1]);

  await Promise.all(Array.from({ length: count - 1 }, (_, i) => m.delete(i + 1)));
  assert.deepEqual(m.stats(), { services: 2, backends: 3, maglevTables: 1 });
  await m.delete(count);
  await m.delete(other.id);
  assert.deepEqual(m.stats(), { services: 0, backends: 0, maglevTables: 0 });
  assert.deepEqual(dp.contents(), { backends: [], tables: [], frontends: [] });
});

test('delete removes frontends first, then the table, then unshared backends', async () => {
  const m = await started();
  await m.add({ frontend: '10.96.0.10:80', backends: ['10.200.2.5:80', '10.200.2.6:80'] });
  await m.add({ frontend: '10.96.0.11:80', backends: ['10.200.2.6:80'] });
  dp.log.length = 0;
  const gone = await m.delete(1);
  assert.equal(gone.frontend, '10.96.0.10:80/TCP');
  assert.deepEqual(dp.log, ['deleteFrontend cluster 10.96.0.10:80/TCP', 'deleteMaglev 1', 'deleteBackend 1']);
  assert.ok(dp.backends.has(2), 'the backend service 2 still uses stays');
  assert.throws(() => m.get(1), (e: unknown) => e instanceof TendrilError && e.code === 'not-found' && /service 1 does not exist/.test(e.message));
});

test('a removed backend is terminating: out of the table, entry kept, deleted by a second removal', async () => {
  const m = await started();
  await m.add({ frontend: '10.96.0.10:80', backends: ['10.200.2.5:80', '10.200.2.6:80'] });
  dp.connections.set(1, 7);
  dp.log.length = 0;
  const svc = await m.update(1, { removeBackends: ['10.200.2.5:80'] });
  assert.equal(svc.activeBackends, 1);
  assert.deepEqual(svc.backends, [
    { address: '10.200.2.5', port: 80, state: 'terminating', connections: 7 },
    { address: '10.200.2.6', port: 80, state: 'active', connections: 0 },
  ]);
  // The new table is in place before the frontend moves to it; the backend turns terminating last.
  assert.deepEqual(dp.log, [
    'setMaglev 2',
    'setFrontend cluster 10.96.0.10:80/TCP svc 1 maglev 2 active 1',
    'deleteMaglev 1',
    'setBackend 1 10.200.2.5:80/TCP terminating',
  ]);
  assert.deepEqual(new Set(dp.tables.get(2)), new Set([2]));
  assert.equal(dp.backends.get(1)?.state, 'terminating');

  dp.log.length = 0;
  const again = await m.update(1, { removeBackends: ['10.200.2.5:80'] });
  assert.deepEqual(dp.log, ['setFrontend cluster 10.96.0.10:80/TCP svc 1 maglev 2 active 1', 'deleteBackend 1']);
  assert.deepEqual(again.backends.map((b) => b.address), ['10.200.2.6']);
});

test('a backend terminating in one service stays active node-wide while another uses it', async () => {
  const m = await started();
  await m.add({ frontend: '10.96.0.10:80', backends: ['10.200.2.5:80'] });
  await m.add({ frontend: '10.96.0.11:80', backends: ['10.200.2.5:80'] });
  await m.update(1, { backends: [] });
  assert.equal(m.get(1).backends[0]?.state, 'terminating');
  assert.equal(dp.backends.get(1)?.state, 'active');
  assert.equal(m.get(1).activeBackends, 0);
  assert.ok(dp.tables.get(dp.frontends.get('cluster 10.96.0.10:80/TCP')!.maglevId)!.every((x) => x === 0), 'no backend: an empty table');
});

test('re-adding a terminating backend makes it active again with its id', async () => {
  const m = await started();
  await m.add({ frontend: '10.96.0.10:80', backends: ['10.200.2.5:80', '10.200.2.6:80'] });
  await m.update(1, { removeBackends: ['10.200.2.5:80'] });
  const svc = await m.update(1, { addBackends: ['10.200.2.5:80'] });
  assert.equal(svc.activeBackends, 2);
  assert.deepEqual(dp.backends.get(1), { id: 1, address: '10.200.2.5', port: 80, protocol: 'TCP', state: 'active' });
  await assert.rejects(m.update(1, { addBackends: ['10.200.2.5:80'] }), /backend 10\.200\.2\.5:80 is in service 1 already/);
  await assert.rejects(m.update(1, { removeBackends: ['10.200.2.9:80'] }), /backend 10\.200\.2\.9:80 is not in service 1/);
});

test('replacing the backend set terminates the ones left out and adds the new ones', async () => {
  const m = await started();
  await m.add({ frontend: '10.96.0.10:80', backends: ['10.200.2.5:80', '10.200.2.6:80'] });
  const svc = await m.update(1, { backends: ['10.200.2.6:80', '10.200.2.7:80'] });
  assert.deepEqual(
    svc.backends.map((b) => `${b.address} ${b.state}`),
    ['10.200.2.5 terminating', '10.200.2.6 active', '10.200.2.7 active'],
  );
  assert.deepEqual(new Set(dp.tables.get(dp.frontends.get('cluster 10.96.0.10:80/TCP')!.maglevId)), new Set([2, 3]));
});

test('the drain timeout deletes terminating backends', async () => {
  const m = await started({ drainTimeoutMs: 30 });
  await m.add({ frontend: '10.96.0.10:80', backends: ['10.200.2.5:80', '10.200.2.6:80'] });
  await m.update(1, { removeBackends: ['10.200.2.5:80'] });
  assert.ok(dp.backends.has(1));
  await sleep(150);
  assert.ok(!dp.backends.has(1), 'drained backend deleted');
  assert.deepEqual(m.get(1).backends.map((b) => b.address), ['10.200.2.6']);
  m.close();
  const restored = await started({}, new FakeDatapath());
  assert.deepEqual(restored.get(1).backends.map((b) => b.address), ['10.200.2.6'], 'the drain is saved');
});

test('update changes mode and affinity in place', async () => {
  const m = await started();
  await m.add({ frontend: '10.96.0.10:80', type: 'NodePort', nodePort: 30001, backends: ['10.200.2.5:80'] });
  dp.log.length = 0;
  const svc = await m.update(1, { mode: 'dsr', affinity: 'client-ip', affinityTimeout: '10m' });
  assert.equal(svc.mode, 'dsr');
  assert.equal(svc.affinity, 'client-ip');
  assert.equal(svc.affinityTimeoutSec, 600);
  assert.deepEqual(dp.log.map((l) => l.split(' ').slice(0, 3).join(' ')), ['setFrontend cluster 10.96.0.10:80/TCP', 'setFrontend nodeport 0.0.0.0:30001/TCP']);
  assert.equal(dp.frontends.get('nodeport 0.0.0.0:30001/TCP')?.mode, 'dsr');
  assert.equal(dp.frontends.get('nodeport 0.0.0.0:30001/TCP')?.affinityTimeoutSec, 600);
});

test('a frontend or node port in use is a conflict naming the service', async () => {
  const m = await started();
  await m.add({ frontend: '10.96.0.10:80', type: 'NodePort', nodePort: 30080 });
  const conflict = (p: Promise<unknown>, pattern: RegExp) =>
    assert.rejects(p, (e: unknown) => e instanceof TendrilError && e.code === 'conflict' && pattern.test(e.message));
  await conflict(m.add({ frontend: '10.96.0.10:80/TCP' }), /frontend 10\.96\.0\.10:80\/TCP is used by service 1 already/);
  await conflict(m.add({ frontend: '10.96.0.12:80', type: 'NodePort', nodePort: 30080 }), /node port 30080\/TCP is used by service 1 already/);
  await conflict(m.add({ frontend: '10.96.0.10:80', type: 'ExternalIP' }), /used by service 1/);
  // Another protocol or port is another frontend.
  assert.equal((await m.add({ frontend: '10.96.0.10:80/UDP' })).id, 2);
  assert.equal((await m.add({ frontend: '10.96.0.12:80', type: 'NodePort', nodePort: 30080 + 1 })).id, 3);
});

test('bad input and conflicts change nothing: maps, services and state file', async () => {
  const m = await started();
  await m.add({ frontend: '10.96.0.10:80', backends: ['10.200.2.5:80'] });
  const before = { maps: dp.contents(), list: m.list(), file: stateFiles(), log: dp.log.length };
  const bad: Array<[() => Promise<unknown>, RegExp]> = [
    [() => m.add({ frontend: '10.200.1.7:80' }), /inside the node's pod range/],
    [() => m.add({ frontend: '10.96.0.20:80', backends: ['10.200.2.5:80', 'x:1'] }), /"x" is not an IPv4/],
    [() => m.add({ frontend: '10.96.0.20:80', backends: ['10.200.2.5:80', '10.200.2.5:80'] }), /listed twice/],
    [() => m.add({ frontend: '10.96.0.20:80', mode: 'dsr' }), /mode dsr/],
    [() => m.add({ frontend: '10.96.0.10:80' }), /used by service 1/],
    [() => m.add({ frontend: '10.96.0.20:80', backends: Array.from({ length: 511 }, (_, i) => `10.200.${2 + (i >> 8)}.${i & 0xff}:80`) }), /511 active backends; at most 510 fit a Maglev table of 1021 slots/],
    [() => m.update(1, { addBackends: ['[fd10::1]:80'] }), /is IPv6/],
    [() => m.update(1, { mode: 'dsr' }), /mode dsr/],
    [() => m.update(1, {}), /at least one change/],
    [() => m.update(1, { addBackends: ['10.200.2.5:80'] }), /already/],
    [() => m.update(7, { addBackends: ['10.200.2.9:80'] }), /service 7 does not exist/],
    [() => m.delete(7), /service 7 does not exist/],
  ];
  for (const [call, pattern] of bad) await assert.rejects(call(), pattern);
  assert.deepEqual({ maps: dp.contents(), list: m.list(), file: stateFiles(), log: dp.log.length }, before);
  assert.equal((await m.add({ frontend: '10.96.0.20:80' })).id, 2, 'refused adds took no id');
});

test('a datapath failure midway undoes the writes already made', async () => {
  const m = await started();
  await m.add({ frontend: '10.96.0.10:80', backends: ['10.200.2.5:80'] });
  const before = { maps: dp.contents(), list: m.list(), stats: m.stats() };
  dp.failOn = /^setFrontend/;
  await assert.rejects(m.add({ frontend: '10.96.0.11:80', backends: ['10.200.2.6:80', '10.200.2.7:80'] }), /setFrontend cluster 10\.96\.0\.11:80\/TCP .* failed/);
  dp.failOn = /^deleteMaglev/;
  await assert.rejects(m.update(1, { backends: ['10.200.2.8:80'] }), /deleteMaglev 1 failed/);
  assert.deepEqual({ maps: dp.contents(), list: m.list(), stats: m.stats() }, before);
  // The next add works and the ids the failed one took are free again.
  const svc = await m.add({ frontend: '10.96.0.11:80', backends: ['10.200.2.6:80'] });
  assert.equal(svc.id, 2);
  assert.ok(dp.backends.has(2));
});

test('ids: services count up and are never reused; backends keep their id while referenced', async () => {
  const m = await started();
  await m.add({ frontend: '10.96.0.10:80', backends: ['10.200.2.5:80'] });
  await m.add({ frontend: '10.96.0.11:80', backends: ['10.200.2.5:80', '10.200.2.6:80'] });
  await m.delete(2);
  assert.equal((await m.add({ frontend: '10.96.0.11:80', backends: ['10.200.2.6:80'] })).id, 3);
  assert.deepEqual(
    [...dp.backends.values()].map((b) => `${b.id} ${b.address}`),
    ['1 10.200.2.5', '3 10.200.2.6'],
    'a freed backend id (2) is not handed out again at once',
  );
});

test('zero backends: the service exists with 0 active and an all-zero table shared by such services', async () => {
  const m = await started();
  const a = await m.add({ frontend: '10.96.0.10:80' });
  await m.add({ frontend: '10.96.0.11:80' });
  assert.equal(a.activeBackends, 0);
  assert.deepEqual(a.backends, []);
  assert.equal(m.stats().maglevTables, 1);
  const f = dp.frontends.get('cluster 10.96.0.10:80/TCP')!;
  assert.equal(f.activeBackends, 0);
  assert.ok(dp.tables.get(f.maglevId)!.every((x) => x === 0));
});

test('restore writes every entry again with the same ids, idempotently', async () => {
  const m = await started();
  await m.add({ frontend: '10.96.0.10:80', type: 'NodePort', nodePort: 30080, backends: ['10.200.2.5:80', '10.200.2.6:80'] });
  await m.add({ frontend: '[fd10:96::a]:53/UDP', backends: ['[fd10:200:0:2::5]:53'] });
  await m.add({ frontend: '10.96.0.12:80', backends: ['10.200.2.6:80', '10.200.2.5:80'] });
  await m.add({ frontend: '10.96.0.13:80', backends: ['10.200.2.7:80'] });
  await m.delete(4);
  await m.update(3, { removeBackends: ['10.200.2.5:80'] });
  m.close();

  // A new agent over empty maps (a reboot) gets the same entries.
  const fresh = new FakeDatapath();
  const restored = manager({}, fresh);
  assert.deepEqual(await restored.restore(), { services: 3, backends: 3, maglevTables: 3, drained: 0 });
  assert.deepEqual(fresh.contents(), dp.contents());
  assert.deepEqual(restored.list(), m.list());
  // Over the pinned maps (an agent restart): the same values again, nothing else.
  const again = manager({}, dp);
  const mapsBefore = dp.contents();
  await again.restore();
  assert.deepEqual(dp.contents(), mapsBefore);
  // Ids continue where they were.
  assert.equal((await restored.add({ frontend: '10.96.0.14:80', backends: ['10.200.2.9:80'] })).id, 5);
  assert.deepEqual(fresh.backends.get(5)?.address, '10.200.2.9');
});

test('restore drains terminating backends whose time ran out while no agent ran', async () => {
  const m = await started();
  await m.add({ frontend: '10.96.0.10:80', backends: ['10.200.2.5:80', '10.200.2.6:80'] });
  await m.update(1, { removeBackends: ['10.200.2.5:80'] });
  m.close();
  const fresh = new FakeDatapath();
  const restored = manager({ drainTimeoutMs: 0 }, fresh);
  const report = await restored.restore();
  assert.equal(report.drained, 1);
  assert.deepEqual([...fresh.backends.values()].map((b) => b.address), ['10.200.2.6']);
  assert.deepEqual(restored.get(1).backends.map((b) => b.state), ['active']);
});

test('changes before restore() are refused: they would hand out saved ids again', async () => {
  const m = manager();
  await assert.rejects(m.add({ frontend: '10.96.0.10:80' }), /only after restore\(\)/);
  await assert.rejects(m.delete(1), /only after restore\(\)/);
  assert.deepEqual(dp.log, []);
});

test('restore without a state file is an empty start; a newer version is refused', async () => {
  const m = manager();
  assert.deepEqual(await m.restore(), { services: 0, backends: 0, maglevTables: 0, drained: 0 });
  await assert.rejects(m.restore(), /restored already/);
  await m.add({ frontend: '10.96.0.10:80' });
  writeFileSync(join(dir, 'services.json'), JSON.stringify({ version: 2 }));
  await assert.rejects(manager({}, new FakeDatapath()).restore(), /services\.json has version 2; this agent reads version 1/);
});
