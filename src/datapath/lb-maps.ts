/**
 * The load balancer's maps (bpf/lib/lb.h, bpf/lib/lb_sock.h): LbMaps is the
 * LbDatapath of src/common/lb.ts over the node's pinned maps, plus the
 * registry of the node's pod network namespaces the socket LB acts for.
 *
 * The maps are created by a throw-away load of sock.o (no program loaded)
 * and pinned under the node's map directory, then reused from the pins,
 * also by a restarted agent; NodeMaps (lxc.o's maps) is not involved. The
 * Maglev map is an array of maps: each table is an inner map whose one
 * value is M backend ids. M is fixed when the map is created (the inner
 * maps' value size) and recorded by an empty table at id 0, which no
 * service uses; it is read back from there afterwards, so every program of
 * the node agrees with it.
 */
import { htons, keyAddress } from '../common/wire-values.js';
import { isPrime } from '../common/maglev.js';
import { mkdirSync, unlinkSync } from 'node:fs';
import { invalid } from '../common/errors.js';
import { formatIP, parseIP, type Family } from '../common/ip.js';
import type { BackendEntry, Frontend, FrontendEntry, FrontendScope, LbDatapath, LbProtocol } from '../common/lb.js';
import { BpfError, BpfMap, BpfObject, MapType, TypedMap, bpfObjectPath, u32, u64 } from '../bpf/index.js';
import {
  TndFamily,
  TndLbBackend,
  TndLbBackendState,
  TndLbFrontend,
  TndLbNetns,
  TndLbNodeAddrKey,
  TndLbRevnatKey,
  TndLbScope,
  TndLbService,
  TndLbServiceFlags,
  TndLbServiceKey,
  TndSockConfig,
  tndLbSockStatNames,
} from '../bpf/generated/wire.js';
import type { PinPaths } from './paths.js';

/** The maps of bpf/lib/lb.h: every object that balances (sock.o, lxc.o, xdp.o) has them. */
export const LB_CORE_MAPS = [
  'tnd_lb_services',
  'tnd_lb_backends',
  'tnd_lb_maglev',
  'tnd_lb_affinity',
  'tnd_lb_revnat',
  'tnd_lb_backend_conns',
  'tnd_lb_nat',
  'tnd_lb_node_addrs',
] as const;

/** The LB maps by their names in sock.o: lb.h's and the socket LB's own. */
export const LB_MAPS = [
  ...LB_CORE_MAPS,
  'tnd_lb_netns',
  'tnd_lb_sock_revnat',
  'tnd_lb_sock_stats',
] as const;
export type LbMapName = (typeof LB_MAPS)[number];

/** The programs of sock.o, by C function name. */
export const SOCK_PROGRAMS = [
  'sock4_connect',
  'sock6_connect',
  'sock4_sendmsg',
  'sock6_sendmsg',
  'sock4_recvmsg',
  'sock6_recvmsg',
  'sock4_getpeer',
  'sock6_getpeer',
] as const;

export const MAGLEV_SIZE_DEFAULT = 16381;
/** Bounds of M: a table must have room for every backend many times over; 1M slots is 4 MiB a table. */
export const MAGLEV_SIZE_MIN = 7;
export const MAGLEV_SIZE_MAX = 1_048_573;

const IPPROTO = { TCP: 6, UDP: 17 } as const satisfies Record<LbProtocol, number>;
const SCOPE: Record<FrontendScope, number> = {
  cluster: TndLbScope.TND_LB_SCOPE_CLUSTER,
  nodeport: TndLbScope.TND_LB_SCOPE_NODEPORT,
  external: TndLbScope.TND_LB_SCOPE_EXTERNAL,
};
const U32_MAX = 0xffffffff;

export function checkMaglevSize(m: number): number {
  if (!isPrime(m) || m < MAGLEV_SIZE_MIN || m > MAGLEV_SIZE_MAX)
    throw invalid(`Maglev table size ${m} must be a prime from ${MAGLEV_SIZE_MIN} to ${MAGLEV_SIZE_MAX} (the default is ${MAGLEV_SIZE_DEFAULT})`);
  return m;
}

/** A port as its network-order bytes read little-endian: what a __u16 "network byte order" field holds. */

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw invalid(`${what} port ${port} is not an integer from 1 to 65535`);
}

function checkId(id: number, what: string): void {
  if (!Number.isInteger(id) || id < 1 || id > U32_MAX) throw invalid(`${what} ${id} is not an integer from 1 to ${U32_MAX}`);
}

function protoOf(p: LbProtocol): number {
  const n = IPPROTO[p];
  if (n === undefined) throw invalid(`protocol "${String(p)}" is neither TCP nor UDP`);
  return n;
}

const wireFamily = (f: Family): number => (f === 4 ? TndFamily.TND_AF_INET : TndFamily.TND_AF_INET6);

function address(text: string, what: string): { family: Family; bytes: Buffer } {
  try {
    const { family, bytes } = parseIP(text);
    return { family, bytes: Buffer.from(bytes) };
  } catch {
    throw invalid(`${what} "${text}" is not an IPv4 or IPv6 address`);
  }
}

/** The tnd_lb_services key of a frontend in a scope. */
export function serviceKey(frontend: Frontend, scope: FrontendScope): TndLbServiceKey {
  const { family, bytes } = address(frontend.address, 'frontend address');
  checkPort(frontend.port, 'frontend');
  if (SCOPE[scope] === undefined) throw invalid(`scope "${String(scope)}" is not cluster, nodeport or external`);
  if (scope === 'nodeport' ? bytes.some((b) => b !== 0) : bytes.every((b) => b === 0))
    throw invalid(
      scope === 'nodeport'
        ? `a nodeport frontend's address is 0.0.0.0 or ::, got "${frontend.address}"`
        : `a ${scope} frontend needs an address, got "${frontend.address}"`,
    );
  return { addr: keyAddress(bytes), port: htons(frontend.port), proto: protoOf(frontend.protocol), family: wireFamily(family), scope: SCOPE[scope] };
}

/** The tnd_lb_services value of a frontend entry. */
export function serviceValue(f: FrontendEntry): TndLbService {
  checkId(f.serviceId, 'service id');
  checkId(f.maglevId, 'Maglev table id');
  if (!Number.isInteger(f.activeBackends) || f.activeBackends < 0) throw invalid(`activeBackends ${f.activeBackends} is not a count`);
  if (!Number.isInteger(f.affinityTimeoutSec) || f.affinityTimeoutSec < 0 || f.affinityTimeoutSec > U32_MAX)
    throw invalid(`affinity timeout ${f.affinityTimeoutSec} s is not a whole number of seconds`);
  if (f.mode !== 'snat' && f.mode !== 'dsr') throw invalid(`mode "${String(f.mode)}" is neither snat nor dsr`);
  let flags = 0;
  if (f.affinityTimeoutSec > 0) flags |= TndLbServiceFlags.TND_LB_F_AFFINITY;
  if (f.mode === 'dsr') flags |= TndLbServiceFlags.TND_LB_F_DSR;
  return {
    serviceId: f.serviceId,
    maglevId: f.maglevId,
    // The datapath only tests for zero: a larger count than 65535 is still "some".
    activeBackends: Math.min(f.activeBackends, 0xffff),
    flags,
    affinityTimeoutS: f.affinityTimeoutSec,
  };
}

export function backendValue(b: BackendEntry): TndLbBackend {
  checkId(b.id, 'backend id');
  const { family, bytes } = address(b.address, 'backend address');
  checkPort(b.port, 'backend');
  if (b.state !== 'active' && b.state !== 'terminating') throw invalid(`backend state "${String(b.state)}" is neither active nor terminating`);
  return {
    addr: keyAddress(bytes),
    port: htons(b.port),
    proto: protoOf(b.protocol),
    family: wireFamily(family),
    state: b.state === 'active' ? TndLbBackendState.TND_LB_BACKEND_ACTIVE : TndLbBackendState.TND_LB_BACKEND_TERMINATING,
  };
}

/** A Maglev table as the map's value: M little-endian __u32 backend ids. */
export function maglevValue(table: Uint32Array, m: number): Buffer {
  if (table.length !== m) throw invalid(`a Maglev table has ${m} slots, got ${table.length}`);
  const out = Buffer.alloc(m * 4);
  for (let i = 0; i < m; i++) out.writeUInt32LE(table[i]!, i * 4);
  return out;
}

function familyAddress(text: string | undefined, family: Family, what: string): Buffer {
  if (text === undefined) return Buffer.alloc(family === 4 ? 4 : 16);
  const a = address(text, what);
  if (a.family !== family) throw invalid(`${what} "${text}" is not an IPv${family} address`);
  return a.bytes;
}

export function netnsValue(endpointId: number, ipv4?: string, ipv6?: string): TndLbNetns {
  checkId(endpointId, 'endpoint id');
  return { endpointId, addr4: familyAddress(ipv4, 4, 'pod IPv4 address'), addr6: familyAddress(ipv6, 6, 'pod IPv6 address') };
}

export interface LbMapsOptions {
  /** M for a node whose Maglev map does not exist yet; must agree with an existing one. Default 16381. */
  maglevSize?: number;
}

export class LbMaps implements LbDatapath, Disposable {
  readonly maglevSize: number;
  private readonly services: TypedMap<TndLbServiceKey, TndLbService>;
  private readonly backends: TypedMap<number, TndLbBackend>;
  private readonly revnat: TypedMap<TndLbRevnatKey, TndLbFrontend>;
  private readonly netns: TypedMap<bigint, TndLbNetns>;

  private constructor(
    readonly paths: PinPaths,
    readonly raw: ReadonlyMap<LbMapName, BpfMap>,
  ) {
    this.maglevSize = recordMaglevSize(raw.get('tnd_lb_maglev')!, undefined);
    this.services = new TypedMap(raw.get('tnd_lb_services')!, TndLbServiceKey, TndLbService);
    this.backends = new TypedMap(raw.get('tnd_lb_backends')!, u32, TndLbBackend);
    this.revnat = new TypedMap(raw.get('tnd_lb_revnat')!, TndLbRevnatKey, TndLbFrontend);
    this.netns = new TypedMap(raw.get('tnd_lb_netns')!, u64, TndLbNetns);
  }

  /**
   * Opens the node's pinned LB maps, creating and pinning any that are
   * missing. An existing Maglev map keeps its M: asking for another one is
   * an error (the tables would need rebuilding, and every program reloading).
   */
  static open(paths: PinPaths, options: LbMapsOptions = {}): LbMaps {
    mkdirSync(paths.maps, { recursive: true });
    const pinned = adoptMaglevPin(paths);
    if (pinned !== undefined && options.maglevSize !== undefined && options.maglevSize !== pinned)
      throw invalid(
        `the node's Maglev tables have ${pinned} slots (pinned at ${paths.maps}/tnd_lb_maglev), not ${options.maglevSize}: keep ${pinned}, or remove the node's LB pins to start over`,
      );
    const m = checkMaglevSize(pinned ?? options.maglevSize ?? MAGLEV_SIZE_DEFAULT);
    // Maps only: no program needs verifying to create them.
    const obj = BpfObject.open(bpfObjectPath('sock.o'), {
      constants: { CONFIG: TndSockConfig.encode({ maglevSize: m }) },
      innerValueSizes: { tnd_lb_maglev: m * 4 },
      pinMaps: { dir: paths.maps, names: [...LB_MAPS] },
      autoload: Object.fromEntries(SOCK_PROGRAMS.map((p) => [p, false])),
    });
    try {
      obj.load();
    } finally {
      obj.close();
    }
    const raw = new Map<LbMapName, BpfMap>();
    try {
      for (const name of LB_MAPS) raw.set(name, BpfMap.openPinned(`${paths.maps}/${name}`));
      recordMaglevSize(raw.get('tnd_lb_maglev')!, m);
    } catch (err) {
      for (const map of raw.values()) map.close();
      throw err;
    }
    return new LbMaps(paths, raw);
  }

  setBackend(b: BackendEntry): void {
    const value = backendValue(b);
    const old = this.backends.lookup(b.id);
    this.backends.update(b.id, value);
    // Counting starts when a backend appears (or moves to another address); a state change keeps it.
    const conns = this.raw.get('tnd_lb_backend_conns')!;
    const key = u32.encode(b.id);
    if (!old || !old.addr.equals(value.addr) || old.port !== value.port || conns.lookup(key) === undefined)
      conns.update(key, Buffer.alloc(conns.valueBufferSize));
  }

  deleteBackend(id: number): void {
    checkId(id, 'backend id');
    this.backends.delete(id);
    this.raw.get('tnd_lb_backend_conns')!.delete(u32.encode(id));
  }

  /**
   * Builds the table in a new inner map and swaps it in whole. Blocks for
   * an RCU grace period in the kernel (about 10 ms), as every write of a
   * map of maps does; setMaglevBatch() pays one for many tables.
   */
  setMaglev(id: number, table: Uint32Array): void {
    checkId(id, 'Maglev table id');
    const inner = newMaglevTable(maglevValue(table, this.maglevSize));
    try {
      this.raw.get('tnd_lb_maglev')!.setInner(u32.encode(id), inner);
    } finally {
      inner.close(); // the outer map holds it now; a replaced one goes with its last reader
    }
  }

  /** setMaglev() for many tables, with one grace period for all (a restore writes every table). */
  async setMaglevBatch(tables: Array<[number, Uint32Array]>): Promise<void> {
    const pairs: Array<[Buffer, BpfMap]> = [];
    try {
      for (const [id, table] of tables) {
        checkId(id, 'Maglev table id');
        pairs.push([u32.encode(id), newMaglevTable(maglevValue(table, this.maglevSize))]);
      }
      await this.raw.get('tnd_lb_maglev')!.setInnerBatchAsync(pairs);
    } finally {
      for (const [, inner] of pairs) inner.close();
    }
  }

  deleteMaglev(id: number): void {
    checkId(id, 'Maglev table id');
    this.raw.get('tnd_lb_maglev')!.delete(u32.encode(id));
  }

  /** The Maglev table `id` as written, or undefined. */
  maglev(id: number): Uint32Array | undefined {
    checkId(id, 'Maglev table id');
    return readMaglevTable(this.raw.get('tnd_lb_maglev')!, id);
  }

  setFrontend(f: FrontendEntry): void {
    const key = serviceKey(f.frontend, f.scope);
    const value = serviceValue(f);
    // Reverse NAT first, so that no reply of a new service finds no way back.
    if (f.scope === 'cluster')
      this.revnat.update(
        { serviceId: f.serviceId, family: key.family },
        { addr: key.addr, port: key.port, family: key.family, serviceId: f.serviceId },
      );
    this.services.update(key, value);
    this.syncXdpFrontends(key);
  }

  deleteFrontend(frontend: Frontend, scope: FrontendScope): void {
    const key = serviceKey(frontend, scope);
    const old = this.services.lookup(key);
    this.services.delete(key);
    this.syncXdpFrontends(key);
    if (scope !== 'cluster' || !old) return;
    // Only the reverse NAT this frontend wrote: another of the service's frontends may own it now.
    const rk = { serviceId: old.serviceId, family: key.family };
    const rv = this.revnat.lookup(rk);
    if (rv && rv.addr.equals(key.addr) && rv.port === key.port) this.revnat.delete(rk);
  }

  /** The frontend entry's value as the datapath sees it, or undefined. */
  frontend(frontend: Frontend, scope: FrontendScope): TndLbService | undefined {
    return this.services.lookup(serviceKey(frontend, scope));
  }

  backendConnections(): Map<number, number> {
    const out = new Map<number, number>();
    const map = this.raw.get('tnd_lb_backend_conns')!;
    const slot = Math.ceil(map.valueSize / 8) * 8;
    for (const [k, v] of map.lookupBatch()) {
      let sum = 0n;
      for (let at = 0; at + 8 <= v.length; at += slot) sum += v.readBigUInt64LE(at);
      out.set(k.readUInt32LE(0), Number(sum));
    }
    return out;
  }

  /**
   * The socket LB acts for sockets of this network namespace (a pod of this
   * node; its cookie from netnsCookie() of src/sys). The addresses are the
   * pod's, the client addresses of affinity; without one of a family its
   * affinity goes by the netns cookie.
   */
  registerPodNetns(cookie: bigint, endpointId: number, ipv4?: string, ipv6?: string): void {
    if (typeof cookie !== 'bigint' || cookie <= 0n) throw invalid(`netns cookie ${String(cookie)} is not a positive 64-bit number`);
    this.netns.update(cookie, netnsValue(endpointId, ipv4, ipv6));
  }

  /** The socket LB leaves the namespace's new sockets alone; true when it was registered. */
  unregisterPodNetns(cookie: bigint): boolean {
    return this.netns.delete(cookie);
  }

  /** Registered pod namespaces: cookie -> endpoint id. */
  podNetns(): Map<bigint, number> {
    return new Map(this.netns.lookupBatch().map(([k, v]) => [k, v.endpointId]));
  }

  /**
   * The node's own addresses (tnd_lb_node_addrs): NodePort frontends answer
   * packets sent to one of them. Makes the map hold exactly `addresses`;
   * what was there and is not any more goes.
   */
  setNodeAddresses(addresses: readonly string[]): { added: number; removed: number } {
    const map = this.raw.get('tnd_lb_node_addrs')!;
    const want = new Map<string, Buffer>();
    for (const text of addresses) {
      const { family, bytes } = address(text, 'node address');
      const key = TndLbNodeAddrKey.encode({ addr: keyAddress(bytes), family: wireFamily(family) });
      want.set(key.toString('hex'), key);
    }
    const all = new Map(want);
    if (want.size > map.maxEntries) throw invalid(`the node has ${want.size} addresses; NodePort serves at most ${map.maxEntries}`);
    let removed = 0;
    const gone: Buffer[] = [];
    for (const [k] of map.lookupBatch()) {
      if (want.has(k.toString('hex'))) want.delete(k.toString('hex'));
      else if (map.delete(k)) {
        removed++;
        gone.push(k);
      }
    }
    const one = u32.encode(1);
    for (const key of want.values()) map.update(key, one);
    // The XDP entries of every frontend at every address, also at those that
    // went, so that pins an older agent wrote (without them) catch up too.
    const addrs = [...all.values(), ...gone].map((k) => TndLbNodeAddrKey.decode(k));
    for (const [k] of this.raw.get('tnd_lb_services')!.lookupBatch()) {
      const sk = TndLbServiceKey.decode(k);
      if (sk.scope === TndLbScope.TND_LB_SCOPE_EXTERNAL) this.syncXdp(sk);
      if (sk.scope !== TndLbScope.TND_LB_SCOPE_NODEPORT) continue;
      for (const a of addrs) if (a.family === sk.family) this.syncXdp({ ...sk, addr: a.addr });
    }
    return { added: want.size, removed };
  }

  private isNodeAddress(addr: Buffer, family: number): boolean {
    return this.raw.get('tnd_lb_node_addrs')!.lookup(TndLbNodeAddrKey.encode({ addr, family })) !== undefined;
  }

  /**
   * The XDP load balancer's entries (scope TND_LB_SCOPE_XDP: one lookup per
   * packet finds either kind) that the EXTERNAL or NODEPORT entry `key`
   * decides: its own address, or every node address of its family.
   */
  private syncXdpFrontends(key: TndLbServiceKey): void {
    if (key.scope === TndLbScope.TND_LB_SCOPE_EXTERNAL) this.syncXdp(key);
    if (key.scope !== TndLbScope.TND_LB_SCOPE_NODEPORT) return;
    for (const [k] of this.raw.get('tnd_lb_node_addrs')!.lookupBatch()) {
      const a = TndLbNodeAddrKey.decode(k);
      if (a.family === key.family) this.syncXdp({ ...key, addr: a.addr });
    }
  }

  /** The XDP entry at key's address and port: the EXTERNAL frontend there, else NODEPORT's at a node address, else none. */
  private syncXdp(key: TndLbServiceKey): void {
    const at = (scope: number, addr = key.addr): TndLbServiceKey => ({ ...key, addr, scope });
    let value = this.services.lookup(at(TndLbScope.TND_LB_SCOPE_EXTERNAL));
    if (!value && this.isNodeAddress(key.addr, key.family)) {
      const np = this.services.lookup(at(TndLbScope.TND_LB_SCOPE_NODEPORT, Buffer.alloc(16)));
      if (np) value = { ...np, flags: np.flags | TndLbServiceFlags.TND_LB_F_NODEPORT };
    }
    if (value) this.services.update(at(TndLbScope.TND_LB_SCOPE_XDP), value);
    else this.services.delete(at(TndLbScope.TND_LB_SCOPE_XDP));
  }

  /** The node addresses NodePort frontends answer on, as written. */
  nodeAddresses(): string[] {
    const map = this.raw.get('tnd_lb_node_addrs')!;
    return map
      .lookupBatch()
      .map(([k]) => TndLbNodeAddrKey.decode(k))
      .map((k) => formatIP(k.family === TndFamily.TND_AF_INET ? k.addr.subarray(0, 4) : k.addr))
      .sort();
  }

  /** What the socket LB did, summed over CPUs, by enum tnd_lb_sock_stat name ("TND_LB_SOCK_TRANSLATED"). */
  sockStats(): Record<string, number> {
    const map = this.raw.get('tnd_lb_sock_stats')!;
    const out: Record<string, number> = {};
    for (const [slot, name] of Object.entries(tndLbSockStatNames)) {
      if (Number(slot) >= map.maxEntries) continue;
      const v = map.lookup(u32.encode(Number(slot)));
      let sum = 0n;
      for (let at = 0; v && at + 8 <= v.length; at += 8) sum += v.readBigUInt64LE(at);
      out[name] = Number(sum);
    }
    return out;
  }

  get(name: LbMapName): BpfMap {
    return this.raw.get(name)!;
  }

  close(): void {
    for (const map of this.raw.values()) map.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** A new inner map of tnd_lb_maglev holding one table (value: maglevValue()). */
function newMaglevTable(value: Buffer): BpfMap {
  const inner = BpfMap.create({ type: MapType.ARRAY, name: 'tnd_lb_mg_table', keySize: 4, valueSize: value.length, maxEntries: 1 });
  try {
    inner.update(u32.encode(0), value);
  } catch (err) {
    inner.close();
    throw err;
  }
  return inner;
}

function readMaglevTable(outer: BpfMap, id: number): Uint32Array | undefined {
  const inner = outer.openInner(u32.encode(id));
  if (!inner) return undefined;
  try {
    const v = inner.lookup(u32.encode(0))!;
    const out = new Uint32Array(v.length / 4);
    for (let i = 0; i < out.length; i++) out[i] = v.readUInt32LE(i * 4);
    return out;
  } finally {
    inner.close();
  }
}

/** The id whose table records M: no service has it (table ids start at 1). */
const MAGLEV_SIZE_RECORD = 0;

/**
 * M as the node's Maglev map records it (its table at id 0); when nothing
 * is recorded yet, records `m` (an empty table of m slots) and returns it.
 */
export function recordMaglevSize(outer: BpfMap, m: number | undefined): number {
  const recorded = readMaglevTable(outer, MAGLEV_SIZE_RECORD);
  if (recorded) return recorded.length;
  if (m === undefined) throw invalid(`the node's Maglev map (${outer.name}) records no table size at id ${MAGLEV_SIZE_RECORD}`);
  const inner = newMaglevTable(Buffer.alloc(m * 4));
  try {
    outer.setInner(u32.encode(MAGLEV_SIZE_RECORD), inner);
  } finally {
    inner.close();
  }
  return m;
}

/**
 * M of the node's pinned Maglev map, or undefined when none is pinned (or
 * it records none yet). The pin of an earlier layout (a hash map with the
 * tables as values) is removed so that the current one can be made: its M
 * is kept, the programs that still use it keep it until they are replaced,
 * and the agent's restore writes every table into the new map.
 */
export function adoptMaglevPin(paths: PinPaths): number | undefined {
  const path = `${paths.maps}/tnd_lb_maglev`;
  let map: BpfMap;
  try {
    map = BpfMap.openPinned(path);
  } catch (err) {
    if (err instanceof BpfError && err.code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    if (map.type !== MapType.ARRAY_OF_MAPS) {
      unlinkSync(path);
      return map.valueSize / 4;
    }
    return readMaglevTable(map, MAGLEV_SIZE_RECORD)?.length;
  } finally {
    map.close();
  }
}
