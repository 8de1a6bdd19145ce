/**
 * The node's services: ids, backends shared between services, Maglev tables
 * shared between services with the same active backends, persistence, and
 * the datapath writes that make them real.
 *
 * Every mutation is one transition of one service from its old form to its
 * new one. A transition writes in the order that never leaves a lookup
 * dangling (backends, then the Maglev table, then frontends; removals the
 * other way round) and keeps an undo step for each write, so a datapath
 * failure midway puts back what was there. Input is validated completely
 * before the first write: bad input changes nothing.
 *
 * Backend ids are node-wide: one per "address:port/protocol" while any
 * service references it (counted), never handed out again soon after, since
 * conntrack and affinity entries may still name a freed one. Maglev tables
 * are keyed by their sorted active backend keys and counted too, so 100,000
 * services in front of the same backends share one table.
 *
 * A removed backend turns "terminating": it leaves the service's Maglev table
 * (no new flows) but keeps its backend entry so open flows drain, until the
 * drain timeout, or a second removal, deletes it.
 */
import { TendrilError, conflict, invalid, notFound } from '../common/errors.js';
import { formatHostPort, formatIP, parseIP, parsePrefix, type Prefix } from '../common/ip.js';
import type { BackendEntry, BackendState, Frontend, FrontendEntry, FrontendScope, LbDatapath, LbMode, LbProtocol, PortMap, ServiceType } from '../common/lb.js';
import { buildMaglevTable, isPrime } from '../common/maglev.js';
import { Mutex } from '../common/mutex.js';
import {
  backendKey,
  formatFrontend,
  validateChanges,
  validateService,
  type BackendAddress,
  type ServiceChanges,
  type ServiceSpec,
  type ServiceView,
} from './service.js';
import { ServiceStore, type StoreChange } from './service-store.js';

export interface ServiceManagerOptions {
  /** The agent's state dir: services.json and services.journal live there. */
  stateDir: string;
  /** The node's pod CIDRs ("10.200.1.0/24", "fd10:200:0:1::/64"): no frontend may be inside them. */
  podCidrs: readonly string[];
  /** How long a removed backend keeps draining its open flows; default 60 s. */
  drainTimeoutMs?: number;
}

export interface ServiceRestoreReport {
  services: number;
  backends: number;
  maglevTables: number;
  /** Terminating backends whose drain time ran out while no agent ran. */
  drained: number;
}

export interface ServiceStats {
  services: number;
  backends: number;
  maglevTables: number;
}

interface StoredBackend {
  address: string;
  port: number;
  state: BackendState;
  /** When it turned terminating (ms since the epoch). */
  terminatingSince?: number;
  /** Its node-wide id, in saved records only (so ids survive a restart). */
  id?: number;
}

interface StoredService {
  id: number;
  type: ServiceType;
  frontend: Frontend;
  nodePort?: number;
  mode: LbMode;
  affinityTimeoutSec: number;
  /** The Maglev table its frontends point to (shared by services with the same active backends). */
  maglevId: number;
  backends: StoredBackend[];
  /** Type HostPort: the endpoint whose port map this is; it lives and dies with that endpoint. */
  owner?: number;
}

/** A node-wide backend and how many services use it (terminating uses included). */
interface BackendRecord {
  id: number;
  address: string;
  port: number;
  protocol: LbProtocol;
  refs: number;
  activeRefs: number;
}

interface TableRecord {
  id: number;
  /** Sorted active backend keys, joined: equal sets share the record. */
  key: string;
  refs: number;
}

const MAX_ID = 0xffffffff;
const DEFAULT_DRAIN_TIMEOUT_MS = 60_000;

export class ServiceManager {
  private readonly services = new Map<number, StoredService>();
  private readonly backends = new Map<string, BackendRecord>();
  /** Backend ids in use, so allocation needs no scan. */
  private readonly backendIdsInUse = new Set<number>();
  private readonly tables = new Map<string, TableRecord>();
  /** "scope address:port/proto" -> service id. */
  private readonly frontendOwners = new Map<string, number>();
  private readonly freeMaglevIds: number[] = [];
  private nextMaglevId = 1;
  private nextServiceId = 1;
  private nextBackendId = 1;

  private readonly mutex = new Mutex();
  private readonly store: ServiceStore<StoredService>;
  /** Services changed since the last save. */
  private readonly dirty = new Set<number>();
  private restored = false;
  private readonly podRanges: Prefix[];
  private readonly drainTimeoutMs: number;
  private drainTimer: NodeJS.Timeout | undefined;
  private drainDue = Infinity;
  private pendingSave: Promise<void> | undefined;

  constructor(
    readonly datapath: LbDatapath,
    options: ServiceManagerOptions,
  ) {
    if (!isPrime(datapath.maglevSize)) throw new TendrilError('internal', `the datapath's Maglev table size ${datapath.maglevSize} is not a prime`);
    this.store = new ServiceStore(options.stateDir);
    this.podRanges = options.podCidrs.map(parsePrefix);
    this.drainTimeoutMs = options.drainTimeoutMs ?? DEFAULT_DRAIN_TIMEOUT_MS;
  }

  /** Most backends one service may have: every backend needs 2 Maglev slots. */
  get maxBackendsPerService(): number {
    return Math.floor(this.datapath.maglevSize / 2);
  }

  list(): ServiceView[] {
    const connections = this.datapath.backendConnections();
    return [...this.services.values()].sort((a, b) => a.id - b.id).map((s) => this.view(s, connections));
  }

  get(id: number): ServiceView {
    return this.view(this.stored(id), this.datapath.backendConnections());
  }

  stats(): ServiceStats {
    return { services: this.services.size, backends: this.backends.size, maglevTables: this.tables.size };
  }

  add(spec: ServiceSpec): Promise<ServiceView> {
    return this.mutate(() => {
      const config = validateService(spec, this.podRanges);
      const service: StoredService = {
        id: this.nextServiceId,
        type: config.type,
        frontend: config.frontend,
        ...(config.nodePort !== undefined ? { nodePort: config.nodePort } : {}),
        mode: config.mode,
        affinityTimeoutSec: config.affinityTimeoutSec,
        maglevId: 0,
        backends: config.backends.map((b) => ({ address: b.address, port: b.port, state: 'active' as const })),
      };
      if (service.id > MAX_ID) throw new TendrilError('exhausted', `service ids are used up (${MAX_ID}); remove services.json to start over`);
      this.checkFits(service);
      this.transition(undefined, service);
      this.nextServiceId++;
      return service.id;
    });
  }

  /**
   * Backends: `backends` replaces the set, `addBackends`/`removeBackends`
   * change it; a backend that leaves turns terminating and drains. Removing a
   * terminating backend again deletes it at once. Frontend, type and node
   * port do not change (delete and add the service instead).
   */
  update(id: number, changes: ServiceChanges): Promise<ServiceView> {
    return this.mutate(() => {
      const before = this.userOwned(id);
      const valid = validateChanges(before, changes);
      const now = Date.now();
      const same = (a: BackendAddress) => (b: StoredBackend) => a.address === b.address && a.port === b.port;
      let backends = before.backends.map((b) => ({ ...b }));
      const activate = (a: BackendAddress) => {
        const existing = backends.find(same(a));
        if (existing) {
          existing.state = 'active';
          delete existing.terminatingSince;
        } else {
          backends.push({ address: a.address, port: a.port, state: 'active' });
        }
      };
      const terminate = (b: StoredBackend) => {
        if (b.state === 'active') backends[backends.indexOf(b)] = { address: b.address, port: b.port, state: 'terminating', terminatingSince: now };
      };
      if (valid.backends) {
        for (const b of backends) if (!valid.backends.some((a) => same(a)(b))) terminate(b);
        valid.backends.forEach(activate);
      }
      for (const a of valid.addBackends) {
        if (backends.find(same(a))?.state === 'active') throw conflict(`backend ${formatHostPort(a.address, a.port)} is in service ${id} already`);
        activate(a);
      }
      for (const a of valid.removeBackends) {
        const b = backends.find(same(a));
        if (!b) throw notFound(`backend ${formatHostPort(a.address, a.port)} is not in service ${id}`);
        if (b.state === 'terminating') backends = backends.filter((x) => x !== b);
        else terminate(b);
      }
      const after: StoredService = { ...before, mode: valid.mode, affinityTimeoutSec: valid.affinityTimeoutSec, backends };
      this.checkFits(after);
      this.transition(before, after);
      return id;
    });
  }

  /** Deletes a service: frontends first, then its table and the backends no other service uses. */
  delete(id: number): Promise<ServiceView> {
    return this.mutex
      .run(() => {
        this.checkRestored();
        const before = this.userOwned(id);
        const view = this.view(before, this.datapath.backendConnections());
        this.transition(before, undefined);
        return view;
      })
      .then(async (view) => {
        await this.save();
        return view;
      });
  }

  /**
   * Makes endpoint `owner`'s port maps real: one HostPort service per map
   * and pod address (one address per family), each a nodeport-scope
   * frontend at the host port with the pod's address:containerPort as its
   * one backend. Services of the owner that match stay as they are, others
   * go; a host port taken by another service or endpoint fails the whole
   * call and changes nothing. `maps` empty: the owner's services go.
   */
  setPortMaps(owner: number, maps: readonly PortMap[], addresses: readonly string[]): Promise<ServiceView[]> {
    return this.mutex
      .run(() => {
        this.checkRestored();
        const mine = [...this.services.values()].filter((s) => s.owner === owner);
        const wanted = portMapServices(owner, maps, addresses);
        const same = (a: StoredService, b: StoredService) =>
          formatFrontend(a.frontend) === formatFrontend(b.frontend) && a.backends[0]!.address === b.backends[0]!.address && a.backends[0]!.port === b.backends[0]!.port;
        const gone = mine.filter((s) => !wanted.some((w) => same(s, w)));
        const fresh = wanted.filter((w) => !mine.some((s) => same(s, w)));
        // Every check before the first write: a port freed by this owner's own gone services is free.
        const seen = new Set<string>();
        for (const w of fresh) {
          const key = frontendKey(w.frontend, 'nodeport');
          if (seen.has(key)) throw invalid(`host port ${w.frontend.port}/${w.frontend.protocol} is mapped twice`);
          seen.add(key);
          const holder = this.frontendOwners.get(key);
          if (holder !== undefined && !gone.some((g) => g.id === holder)) throw conflict(`host port ${w.frontend.port}/${w.frontend.protocol} is used by ${this.describe(holder)} already`);
        }
        if (this.nextServiceId + fresh.length - 1 > MAX_ID) throw new TendrilError('exhausted', `service ids are used up (${MAX_ID}); remove services.json to start over`);
        const done: Array<[StoredService | undefined, StoredService | undefined]> = [];
        const nextBefore = this.nextServiceId;
        try {
          for (const g of gone) {
            this.transition(g, undefined);
            done.push([g, undefined]);
          }
          for (const w of fresh) {
            w.id = this.nextServiceId;
            this.transition(undefined, w);
            done.push([undefined, w]);
            this.nextServiceId++;
          }
        } catch (err) {
          for (const [before, after] of done.reverse()) {
            try {
              this.transition(after, before);
            } catch {
              // Best effort, as in transition(): the next restore writes the saved state again.
            }
          }
          this.nextServiceId = nextBefore;
          throw err;
        }
        const connections = this.datapath.backendConnections();
        return [...this.services.values()].filter((s) => s.owner === owner).sort((a, b) => a.id - b.id).map((s) => this.view(s, connections));
      })
      .then(async (views) => {
        await this.save();
        return views;
      });
  }

  /** The port maps of endpoints not in `owners` go (endpoints removed while no agent ran); returns how many services went. */
  async prunePortMaps(owners: ReadonlySet<number>): Promise<number> {
    const orphans = new Set<number>();
    for (const s of this.services.values()) if (s.owner !== undefined && !owners.has(s.owner)) orphans.add(s.owner);
    let removed = 0;
    for (const owner of orphans) {
      removed += [...this.services.values()].filter((s) => s.owner === owner).length;
      await this.setPortMaps(owner, [], []);
    }
    return removed;
  }

  /**
   * Reads the saved services (services.json and its journal) and writes every map entry again (idempotent: the
   * same values the pinned maps hold), so the datapath matches the state
   * after a restart or a lost update. Call once, before the first mutation.
   */
  restore(): Promise<ServiceRestoreReport> {
    return this.mutex.run(async () => {
      if (this.restored) throw new TendrilError('internal', 'services were restored already');
      const saved = this.store.load();
      this.restored = true;
      const report: ServiceRestoreReport = { services: 0, backends: 0, maglevTables: 0, drained: 0 };
      if (saved) {
        this.nextServiceId = saved.counters.nextServiceId;
        this.nextBackendId = saved.counters.nextBackendId;
        for (const s of saved.services) this.adopt(s);
        await this.writeAll();
        report.drained = this.drainExpired(Date.now());
        Object.assign(report, { services: this.services.size, backends: this.backends.size, maglevTables: this.tables.size });
      }
      // A fresh snapshot: the journal starts empty (and loses a torn last line).
      this.dirty.clear();
      this.store.compact(this.allPersisted(), this.counters());
      return report;
    });
  }

  /** Stops the drain timer (the owner calls it on shutdown). */
  close(): void {
    this.armDrain(Infinity);
    this.store.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Runs one change under the mutex, arms the drain timer for it, and returns once it is saved. */
  private mutate(change: () => number): Promise<ServiceView> {
    return this.mutex
      .run(() => {
        this.checkRestored();
        const s = this.stored(change());
        this.scheduleDrain([s]);
        return this.view(s, this.datapath.backendConnections());
      })
      .then(async (view) => {
        await this.save();
        return view;
      });
  }

  private checkRestored(): void {
    // Changing services before reading the saved ones would hand out their ids again.
    if (!this.restored) throw new TendrilError('internal', 'the service manager changes services only after restore()');
  }

  private stored(id: number): StoredService {
    const s = this.services.get(id);
    if (!s) throw notFound(`service ${id} does not exist (see "tendril service list")`);
    return s;
  }

  /** A service users may change: not an endpoint's port map. */
  private userOwned(id: number): StoredService {
    const s = this.stored(id);
    if (s.owner !== undefined)
      throw conflict(
        `service ${id} is the port map ${s.frontend.port}:${s.backends[0]?.port}/${s.frontend.protocol} of endpoint ${s.owner}: it goes with the endpoint (tendril endpoint delete ${s.owner})`,
      );
    return s;
  }

  /** "service 3", or "endpoint 4's port map" for a HostPort service. */
  private describe(id: number): string {
    const owner = this.services.get(id)?.owner;
    return owner !== undefined ? `a port map of endpoint ${owner}` : `service ${id}`;
  }

  /** Checks what depends on other services: frontends in use, and the table's capacity. */
  private checkFits(s: StoredService): void {
    for (const e of frontendEntries(s, 0, 0)) {
      const owner = this.frontendOwners.get(frontendKey(e.frontend, e.scope));
      if (owner !== undefined && owner !== s.id) {
        const what = e.scope === 'nodeport' ? `node port ${e.frontend.port}/${e.frontend.protocol}` : `frontend ${formatFrontend(e.frontend)}`;
        throw conflict(`${what} is used by ${this.describe(owner)} already`);
      }
    }
    const active = s.backends.filter((b) => b.state === 'active').length;
    if (active > this.maxBackendsPerService)
      throw invalid(`service has ${active} active backends; at most ${this.maxBackendsPerService} fit a Maglev table of ${this.datapath.maglevSize} slots`);
  }

  /**
   * Moves one service from `before` to `after` (either may be absent) in
   * memory and in the datapath, in lookup-safe order; on a datapath error
   * every step done is undone and the error is rethrown.
   */
  private transition(before: StoredService | undefined, after: StoredService | undefined): void {
    const undo: Array<() => void> = [];
    const step = (apply: () => void, revert: () => void) => {
      apply();
      undo.push(revert);
    };
    try {
      const protocol = (after ?? before)!.frontend.protocol;
      const keysOf = (s: StoredService | undefined) => new Map((s?.backends ?? []).map((b) => [backendKey(b.address, b.port, protocol), b.state] as const));
      const beforeKeys = keysOf(before);
      const afterKeys = keysOf(after);

      // 1. Backends it gains or that turn active, before any table names them.
      const activeDelta = (key: string) => (afterKeys.get(key) === 'active' ? 1 : 0) - (beforeKeys.get(key) === 'active' ? 1 : 0);
      for (const key of afterKeys.keys()) {
        const gained = !beforeKeys.has(key);
        if (gained || activeDelta(key) > 0) this.changeBackendRefs(key, after!, { refs: gained ? 1 : 0, active: Math.max(0, activeDelta(key)) }, step);
      }
      // 2. The Maglev table of its active backends.
      if (after) {
        const table = this.acquireTable(after, protocol, step);
        const previousId = after.maglevId;
        step(
          () => (after.maglevId = table.id),
          () => (after.maglevId = previousId),
        );
      }
      // 3. Frontends now, then 4. frontends it no longer has.
      const afterEntries = after ? frontendEntries(after, after.maglevId, countActive(after)) : [];
      const beforeEntries = before ? frontendEntries(before, before.maglevId, countActive(before)) : [];
      for (const e of afterEntries) {
        const key = frontendKey(e.frontend, e.scope);
        const old = beforeEntries.find((b) => frontendKey(b.frontend, b.scope) === key);
        step(
          () => {
            this.datapath.setFrontend(e);
            this.frontendOwners.set(key, e.serviceId);
          },
          () => {
            if (old) this.datapath.setFrontend(old);
            else {
              this.frontendOwners.delete(key);
              this.datapath.deleteFrontend(e.frontend, e.scope);
            }
          },
        );
      }
      for (const e of beforeEntries) {
        const key = frontendKey(e.frontend, e.scope);
        if (afterEntries.some((a) => frontendKey(a.frontend, a.scope) === key)) continue;
        step(
          () => {
            this.datapath.deleteFrontend(e.frontend, e.scope);
            this.frontendOwners.delete(key);
          },
          () => {
            this.frontendOwners.set(key, e.serviceId);
            this.datapath.setFrontend(e);
          },
        );
      }
      // 5. The old table, once nothing points to it.
      if (before) this.releaseTable(tableKeyOf(before, protocol), step);
      // 6. Backends that turn terminating or that it no longer has, once no table of its names them.
      for (const key of afterKeys.keys()) if (activeDelta(key) < 0) this.changeBackendRefs(key, after!, { refs: 0, active: -1 }, step);
      for (const [key, was] of beforeKeys) {
        if (afterKeys.has(key)) continue;
        this.changeBackendRefs(key, before!, { refs: -1, active: was === 'active' ? -1 : 0 }, step);
      }
      // 7. The service itself.
      const id = (after ?? before)!.id;
      const previous = this.services.get(id);
      step(
        () => (after ? this.services.set(id, after) : this.services.delete(id)),
        () => (previous ? this.services.set(id, previous) : this.services.delete(id)),
      );
      this.dirty.add(id);
    } catch (err) {
      // Each revert restores memory before it writes the datapath, so memory
      // is whole again even if the datapath refuses the undo too.
      for (const revert of undo.reverse()) {
        try {
          revert();
        } catch {
          // Best effort: the restore at the next start writes the saved state again.
        }
      }
      throw err;
    }
  }

  private changeBackendRefs(
    key: string,
    owner: StoredService,
    delta: { refs: number; active: number },
    step: (apply: () => void, revert: () => void) => void,
  ): void {
    let rec = this.backends.get(key);
    if (!rec) {
      const b = owner.backends.find((x) => backendKey(x.address, x.port, owner.frontend.protocol) === key)!;
      const id = this.allocateBackendId();
      const fresh: BackendRecord = { id, address: b.address, port: b.port, protocol: owner.frontend.protocol, refs: 0, activeRefs: 0 };
      const nextBefore = this.nextBackendId;
      step(
        () => {
          this.putBackend(key, fresh);
          this.nextBackendId = id + 1 > MAX_ID ? 1 : id + 1;
        },
        () => {
          this.dropBackend(key, fresh);
          this.nextBackendId = nextBefore;
        },
      );
      rec = fresh;
    }
    const r = rec;
    const oldEntry = r.refs > 0 ? backendEntry(r) : undefined;
    step(
      () => {
        r.refs += delta.refs;
        r.activeRefs += delta.active;
      },
      () => {
        r.refs -= delta.refs;
        r.activeRefs -= delta.active;
      },
    );
    if (r.refs === 0) {
      step(
        () => {
          this.datapath.deleteBackend(r.id);
          this.dropBackend(key, r);
        },
        () => {
          this.putBackend(key, r);
          if (oldEntry) this.datapath.setBackend(oldEntry);
        },
      );
      return;
    }
    const newEntry = backendEntry(r);
    if (oldEntry && oldEntry.state === newEntry.state) return;
    step(
      () => this.datapath.setBackend(newEntry),
      () => (oldEntry ? this.datapath.setBackend(oldEntry) : this.datapath.deleteBackend(r.id)),
    );
  }

  private acquireTable(s: StoredService, protocol: LbProtocol, step: (apply: () => void, revert: () => void) => void): TableRecord {
    const key = tableKeyOf(s, protocol);
    const existing = this.tables.get(key);
    if (existing) {
      step(
        () => existing.refs++,
        () => existing.refs--,
      );
      return existing;
    }
    const id = this.allocateMaglevId();
    const rec: TableRecord = { id, key, refs: 1 };
    step(
      () => {
        this.datapath.setMaglev(id, this.buildTable(key));
        this.tables.set(key, rec);
      },
      () => {
        this.tables.delete(key);
        this.freeMaglevIds.push(id);
        this.datapath.deleteMaglev(id);
      },
    );
    return rec;
  }

  private releaseTable(key: string, step: (apply: () => void, revert: () => void) => void): void {
    const rec = this.tables.get(key)!;
    step(
      () => rec.refs--,
      () => rec.refs++,
    );
    if (rec.refs > 0) return;
    step(
      () => {
        this.datapath.deleteMaglev(rec.id);
        this.tables.delete(key);
        this.freeMaglevIds.push(rec.id);
      },
      () => {
        this.freeMaglevIds.splice(this.freeMaglevIds.indexOf(rec.id), 1);
        this.tables.set(key, rec);
        this.datapath.setMaglev(rec.id, this.buildTable(key));
      },
    );
  }

  /** Built from the key alone: the table is a function of the backend set (ids are fixed per key). */
  private buildTable(key: string): Uint32Array {
    const keys = key === '' ? [] : key.split(',');
    return buildMaglevTable(
      keys.map((k) => ({ id: this.backends.get(k)!.id, key: k })),
      this.datapath.maglevSize,
    );
  }

  /** Maglev ids are reused: the map holding the tables has a fixed size, and a freed id has no frontend pointing to it. */
  private allocateMaglevId(): number {
    return this.freeMaglevIds.pop() ?? this.nextMaglevId++;
  }

  /** Backend ids move forward (wrapping), skipping ids in use: a freed one may live on in conntrack. */
  private allocateBackendId(): number {
    if (this.backendIdsInUse.size >= MAX_ID) throw new TendrilError('exhausted', 'backend ids are used up');
    let id = this.nextBackendId;
    while (this.backendIdsInUse.has(id)) id = id + 1 > MAX_ID ? 1 : id + 1;
    return id;
  }

  private putBackend(key: string, r: BackendRecord): void {
    this.backends.set(key, r);
    this.backendIdsInUse.add(r.id);
  }

  private dropBackend(key: string, r: BackendRecord): void {
    this.backends.delete(key);
    this.backendIdsInUse.delete(r.id);
  }

  /** Takes a stored service into the indexes without writing the datapath (restore). */
  private adopt(s: StoredService): void {
    const protocol = s.frontend.protocol;
    for (const b of s.backends) {
      const key = backendKey(b.address, b.port, protocol);
      let rec = this.backends.get(key);
      if (!rec) {
        const saved = b.id;
        const id = saved !== undefined && !this.backendIdsInUse.has(saved) ? saved : this.allocateBackendId();
        rec = { id, address: b.address, port: b.port, protocol, refs: 0, activeRefs: 0 };
        this.putBackend(key, rec);
      }
      rec.refs++;
      if (b.state === 'active') rec.activeRefs++;
      delete b.id; // memory holds ids in the backend records only
    }
    const key = tableKeyOf(s, protocol);
    let table = this.tables.get(key);
    if (!table) {
      // Keep the saved id so frontends in the pinned map stay right; a clash (not expected) gets a new id.
      const taken = [...this.tables.values()].some((t) => t.id === s.maglevId);
      table = { id: s.maglevId > 0 && !taken ? s.maglevId : 0, key, refs: 0 };
      this.tables.set(key, table);
    }
    table.refs++;
    this.services.set(s.id, s);
    for (const e of frontendEntries(s, 0, 0)) this.frontendOwners.set(frontendKey(e.frontend, e.scope), s.id);
  }

  /** Restore's second half: ids for tables that lacked one, then every entry, in lookup-safe order. */
  private async writeAll(): Promise<void> {
    const used = new Set([...this.tables.values()].map((t) => t.id).filter((id) => id > 0));
    this.nextMaglevId = Math.max(0, ...used) + 1;
    for (let id = 1; id < this.nextMaglevId; id++) if (!used.has(id)) this.freeMaglevIds.push(id);
    for (const t of this.tables.values()) if (t.id === 0) t.id = this.allocateMaglevId();
    for (const r of this.backends.values()) this.datapath.setBackend(backendEntry(r));
    const tables: Array<[number, Uint32Array]> = [...this.tables.values()].map((t) => [t.id, this.buildTable(t.key)]);
    if (this.datapath.setMaglevBatch) await this.datapath.setMaglevBatch(tables);
    else for (const [id, table] of tables) this.datapath.setMaglev(id, table);
    for (const s of this.services.values()) {
      s.maglevId = this.tables.get(tableKeyOf(s, s.frontend.protocol))!.id;
      for (const e of frontendEntries(s, s.maglevId, countActive(s))) this.datapath.setFrontend(e);
    }
  }

  /** Deletes terminating backends whose drain time is over; returns how many. */
  private drainExpired(now: number): number {
    let drained = 0;
    for (const before of [...this.services.values()]) {
      const keep = before.backends.filter((b) => b.state === 'active' || (b.terminatingSince ?? 0) + this.drainTimeoutMs > now);
      if (keep.length === before.backends.length) continue;
      drained += before.backends.length - keep.length;
      this.transition(before, { ...before, backends: keep });
    }
    this.armDrain(Infinity);
    this.scheduleDrain(this.services.values());
    return drained;
  }

  /**
   * Arms the one drain timer for the earliest deadline among `services` if
   * that is sooner than the armed one. Only the changed service is scanned
   * per mutation; every service only when the timer fires.
   */
  private scheduleDrain(services: Iterable<StoredService>): void {
    let due = Infinity;
    for (const s of services)
      for (const b of s.backends) if (b.state === 'terminating') due = Math.min(due, (b.terminatingSince ?? 0) + this.drainTimeoutMs);
    if (due < this.drainDue) this.armDrain(due);
  }

  private armDrain(due: number): void {
    if (this.drainTimer) clearTimeout(this.drainTimer);
    this.drainTimer = undefined;
    this.drainDue = due;
    if (due === Infinity) return;
    this.drainTimer = setTimeout(() => this.onDrainTimer(), Math.min(0x7fffffff, Math.max(0, due - Date.now())));
    this.drainTimer.unref();
  }

  private onDrainTimer(): void {
    this.drainTimer = undefined;
    this.drainDue = Infinity;
    this.mutex
      .run(() => this.drainExpired(Date.now()))
      .then((n) => (n > 0 ? this.save() : undefined))
      .catch((err: unknown) => {
        // The datapath refused a write: try again in a second rather than spin.
        console.error(`loadbalancer: draining terminating backends failed: ${(err as Error).message}`);
        this.armDrain(Date.now() + 1000);
      });
  }

  /**
   * Saves every service changed until the write starts, in one journal
   * append: concurrent requests share one fsync instead of one each.
   */
  private save(): Promise<void> {
    this.pendingSave ??= new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
      this.pendingSave = undefined;
      const changes: Array<StoreChange<StoredService>> = [];
      for (const id of this.dirty) {
        const s = this.services.get(id);
        changes.push(s ? { put: this.persisted(s) } : { del: id });
      }
      if (changes.length > 0) this.store.commit(changes, this.counters(), () => this.allPersisted());
      this.dirty.clear(); // after the commit: a failed one is retried by the next save
    });
    return this.pendingSave;
  }

  private counters() {
    return { nextServiceId: this.nextServiceId, nextBackendId: this.nextBackendId };
  }

  /** A service as saved: with its backends' node-wide ids. */
  private persisted(s: StoredService): StoredService {
    const protocol = s.frontend.protocol;
    return { ...s, backends: s.backends.map((b) => ({ ...b, id: this.backends.get(backendKey(b.address, b.port, protocol))!.id })) };
  }

  private allPersisted(): StoredService[] {
    return [...this.services.values()].sort((a, b) => a.id - b.id).map((s) => this.persisted(s));
  }

  private view(s: StoredService, connections: Map<number, number>): ServiceView {
    const protocol = s.frontend.protocol;
    return {
      id: s.id,
      frontend: formatFrontend(s.frontend),
      type: s.type,
      mode: s.mode,
      affinity: s.affinityTimeoutSec > 0 ? 'client-ip' : 'none',
      affinityTimeoutSec: s.affinityTimeoutSec,
      ...(s.nodePort !== undefined ? { nodePort: s.nodePort } : {}),
      ...(s.owner !== undefined ? { name: `endpoint-${s.owner}`, endpoint: s.owner } : {}),
      activeBackends: countActive(s),
      backends: s.backends.map((b) => {
        const id = this.backends.get(backendKey(b.address, b.port, protocol))?.id;
        return { address: b.address, port: b.port, state: b.state, connections: (id !== undefined ? connections.get(id) : undefined) ?? 0 };
      }),
    };
  }
}

/** The frontend entries of a service: its cluster frontend, plus the nodeport or external one. */
function frontendEntries(s: StoredService, maglevId: number, activeBackends: number): FrontendEntry[] {
  const entry = (frontend: Frontend, scope: FrontendScope): FrontendEntry => ({
    frontend,
    scope,
    serviceId: s.id,
    mode: s.mode,
    affinityTimeoutSec: s.affinityTimeoutSec,
    maglevId,
    activeBackends,
  });
  // A port map is reached from outside only: its frontend holds no address.
  if (s.type === 'HostPort') return [entry(s.frontend, 'nodeport')];
  const out = [entry(s.frontend, 'cluster')];
  if (s.type === 'NodePort') {
    const any = s.frontend.address.includes(':') ? '::' : '0.0.0.0';
    out.push(entry({ address: any, port: s.nodePort!, protocol: s.frontend.protocol }, 'nodeport'));
  }
  if (s.type === 'ExternalIP') out.push(entry(s.frontend, 'external'));
  return out;
}

function frontendKey(f: Frontend, scope: FrontendScope): string {
  return `${scope} ${formatFrontend(f)}`;
}

function tableKeyOf(s: StoredService, protocol: LbProtocol): string {
  return s.backends
    .filter((b) => b.state === 'active')
    .map((b) => backendKey(b.address, b.port, protocol))
    .sort()
    .join(',');
}

function countActive(s: StoredService): number {
  let n = 0;
  for (const b of s.backends) if (b.state === 'active') n++;
  return n;
}

/** A backend is active node-wide while any service still sends it new flows. */
function backendEntry(r: BackendRecord): BackendEntry {
  return { id: r.id, address: r.address, port: r.port, protocol: r.protocol, state: r.activeRefs > 0 ? 'active' : 'terminating' };
}

/** The HostPort services of one endpoint's port maps (ids still 0): one per map and address. */
function portMapServices(owner: number, maps: readonly PortMap[], addresses: readonly string[]): StoredService[] {
  const out: StoredService[] = [];
  for (const m of maps) {
    for (const p of [m.hostPort, m.containerPort]) if (!Number.isInteger(p) || p < 1 || p > 65535) throw invalid(`port map ${m.hostPort}:${m.containerPort}/${m.protocol}: ${p} is not a port (1-65535)`);
    for (const text of addresses) {
      const { family, bytes } = parseIP(text);
      const address = formatIP(bytes);
      const any = family === 6 ? '::' : '0.0.0.0';
      out.push({
        id: 0,
        type: 'HostPort',
        frontend: { address: any, port: m.hostPort, protocol: m.protocol },
        mode: 'snat',
        affinityTimeoutSec: 0,
        maglevId: 0,
        backends: [{ address, port: m.containerPort, state: 'active' }],
        owner,
      });
    }
  }
  return out;
}
