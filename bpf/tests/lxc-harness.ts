/**
 * The set-up shared by the packet-level suites of bpf/lxc.c: two endpoints
 * (POD, whose programs are under test, and PEER, another endpoint of the
 * node), a loaded lxc.o with real maps, packet builders, and the event ring
 * read after every run.
 *
 * The programs name their device by the packet's ifindex, not by a constant:
 * BPF_PROG_TEST_RUN runs tc programs on the loopback, so events about POD
 * carry ifindex 1; CONFIG has no ifindex at all (the programs load before
 * their veth exists). PEER's ifindex comes from tnd_endpoints.
 *
 * The datapath is default-deny: a Datapath installs an allow-all policy for
 * both endpoints unless told otherwise, as the agent does for endpoints no
 * policy selects.
 */
import assert from 'node:assert/strict';
import { BpfMap, BpfObject, MapType, RingBufferReader, bpfObjectPath } from '../../src/bpf/index.js';
import {
  TndEndpointInfo,
  TndEndpointKey,
  TndEvent,
  TndEventType,
  TndFamily,
  TndLxcConfig,
  TndLxcFlags,
  TndCtEntry,
  TndCtKey,
  TndLbBackend,
  TndLbBackendState,
  TndLbNat,
  TndLbNatDir,
  TndLbScope,
  TndLbService,
  TndLbServiceFlags,
  TndLbServiceKey,
  tndDropReasonNames,
} from '../../src/bpf/generated/wire.js';
import { LXC_LB_MAPS, NODE_MAPS } from '../../src/datapath/node-maps.js';
import { IpcacheMap } from '../../src/datapath/ipcache-map.js';
import { PolicyMaps, allowAllEntries } from '../../src/datapath/policy-maps.js';
import { ProxyConfigMap, ProxyFlowMap } from '../../src/datapath/proxy-maps.js';
import * as P from './packets.js';

export const LXC = bpfObjectPath('lxc.o');
export const TC_ACT_OK = 0;
export const TC_ACT_SHOT = 2;
export const TC_ACT_REDIRECT = 7;

export interface Endpoint {
  id: number;
  ifindex: number;
  identity: number;
  mac: Buffer;
  routerMac: Buffer;
  ip4: Buffer;
  ip6: Buffer;
}

/** The device BPF_PROG_TEST_RUN runs a tc program on: the loopback. */
export const TEST_RUN_IFINDEX = 1;

/** The endpoint whose programs are under test. */
export const POD: Endpoint = {
  id: 101,
  ifindex: TEST_RUN_IFINDEX,
  identity: 1001,
  mac: P.mac('02:00:00:00:01:02'),
  routerMac: P.mac('02:00:00:00:01:01'),
  ip4: P.ip4('10.200.0.2'),
  ip6: P.ip6('fd10:200::2'),
};
/** Another endpoint on the node. */
export const PEER: Endpoint = {
  id: 102,
  ifindex: 12,
  identity: 1002,
  mac: P.mac('02:00:00:00:02:02'),
  routerMac: P.mac('02:00:00:00:02:01'),
  ip4: P.ip4('10.200.0.3'),
  ip6: P.ip6('fd10:200::3'),
};
export const ROUTER4 = P.ip4('10.200.0.1');
export const ROUTER6 = P.ip6('fd10:200::1');
export const POD_LL6 = P.ip6('fe80::2');
export const OUTSIDE4 = P.ip4('203.0.113.7');
export const OUTSIDE6 = P.ip6('2001:db8::7');
export const BROADCAST = P.mac('ff:ff:ff:ff:ff:ff');
export const ZERO_MAC = Buffer.alloc(6);

export const ALL = TndLxcFlags.TND_LXC_IPV4 | TndLxcFlags.TND_LXC_IPV6;

export type Prog = 'from_container' | 'to_container' | 'peer_from_container';

export interface RunResult {
  retval: number;
  data: Buffer;
  /** Trace and drop events, in order. */
  events: TndEvent[];
  /** Policy verdict events (TND_EVENT_POLICY), in order. */
  policy: TndEvent[];
  /** The __sk_buff after the run, when the run was given one. */
  ctx?: Buffer;
}

export interface DatapathOptions {
  flags?: number;
  /** tnd_endpoints flags of PEER. */
  peerFlags?: number;
  /** Install allow-all policies for POD and PEER (default true). */
  allowAll?: boolean;
  /** M of the Maglev map (CONFIG.maglev_size and the map's value size); default LB_M. */
  maglevSize?: number;
}

/** The Maglev table size the packet tests use: small, so a test writes whole tables. */
export const LB_M = 7;

/** One loaded lxc.o for POD, with PEER and POD in tnd_endpoints and the event ring read after each run. */
export class Datapath implements Disposable {
  readonly obj: BpfObject;
  readonly policy: PolicyMaps;
  readonly ipcache: IpcacheMap;
  readonly proxyConfig: ProxyConfigMap;
  readonly proxyFlows: ProxyFlowMap;
  private readonly reader: RingBufferReader;
  private readonly pending: TndEvent[] = [];
  private readonly peerFlags: number;
  private peer?: BpfObject;
  readonly maglevSize: number;
  /** The load balancer's maps, written as the agent's LbMaps would. */
  readonly lb: LbTables;

  constructor(o: DatapathOptions = {}) {
    this.peerFlags = o.peerFlags ?? 0;
    this.maglevSize = o.maglevSize ?? LB_M;
    this.obj = BpfObject.open(LXC, {
      constants: { CONFIG: lxcConfig(POD, o.flags ?? ALL, this.maglevSize) },
      innerValueSizes: { tnd_lb_maglev: this.maglevSize * 4 },
    });
    try {
      this.obj.load();
      this.reader = new RingBufferReader(this.obj.map('tnd_events'), (rec) => this.pending.push(TndEvent.decode(rec)));
      this.reader.start();
    } catch (err) {
      this.obj.close();
      throw err;
    }
    this.policy = new PolicyMaps(this.obj.map('tnd_policy'), this.obj.map('tnd_policy_gen'));
    this.ipcache = new IpcacheMap(this.obj.map('tnd_ipcache'));
    this.proxyConfig = new ProxyConfigMap(this.obj.map('tnd_proxy_config'));
    this.proxyFlows = new ProxyFlowMap(this.obj.map('tnd_proxy_flows'));
    this.lb = new LbTables(this.obj, this.maglevSize);
    this.addEndpoint(POD);
    this.addEndpoint(PEER);
    if (o.allowAll ?? true) {
      this.policy.install(POD.id, allowAllEntries());
      this.policy.install(PEER.id, allowAllEntries());
    }
  }

  addEndpoint(ep: Endpoint, identity = ep.identity): void {
    const info = TndEndpointInfo.encode({
      ifindex: ep.ifindex,
      identity,
      endpointId: ep.id,
      flags: ep === PEER ? this.peerFlags : 0,
      mac: ep.mac,
      routerMac: ep.routerMac,
    });
    const map = this.obj.map('tnd_endpoints');
    map.update(TndEndpointKey.encode({ addr: ep.ip4, family: TndFamily.TND_AF_INET }), info);
    map.update(TndEndpointKey.encode({ addr: ep.ip6, family: TndFamily.TND_AF_INET6 }), info);
  }

  /** PEER's own lxc.o on the same maps: PEER's packets leave through it (its replies to POD). */
  private peerObject(): BpfObject {
    if (!this.peer) {
      const reuseMaps = Object.fromEntries([...NODE_MAPS, ...LXC_LB_MAPS].map((n) => [n, this.obj.map(n)]));
      const peer = BpfObject.open(LXC, {
        constants: { CONFIG: lxcConfig(PEER, ALL, this.maglevSize) },
        innerValueSizes: { tnd_lb_maglev: this.maglevSize * 4 },
        reuseMaps,
      });
      try {
        peer.load();
      } catch (err) {
        peer.close();
        throw err;
      }
      this.peer = peer;
    }
    return this.peer;
  }

  run(prog: Prog, data: Buffer, ctx?: Buffer): RunResult {
    const program = prog === 'peer_from_container' ? this.peerObject().program('from_container') : this.obj.program(prog);
    const r = program.testRun(ctx ? { data, ctx } : { data });
    this.reader.consume();
    const all = this.pending.splice(0);
    const result: RunResult = {
      retval: r.retval,
      data: r.data,
      events: all.filter((e) => e.type !== TndEventType.TND_EVENT_POLICY),
      policy: all.filter((e) => e.type === TndEventType.TND_EVENT_POLICY),
    };
    if (r.ctx) result.ctx = r.ctx;
    return result;
  }

  ct(key: Omit<Parameters<typeof TndCtKey.encode>[0], 'dir'>, dir: number): ReturnType<typeof TndCtEntry.decode> | undefined {
    const v = this.obj.map('tnd_ct').lookup(TndCtKey.encode({ ...key, dir }));
    return v && TndCtEntry.decode(v);
  }

  ctCount(): number {
    return this.obj.map('tnd_ct').lookupBatch().length;
  }

  /** Sum over CPUs of one tnd_metrics slot. */
  metric(slot: number): { packets: bigint; bytes: bigint } {
    const key = Buffer.alloc(4);
    key.writeUInt32LE(slot);
    const v = this.obj.map('tnd_metrics').lookup(key)!;
    let packets = 0n;
    let bytes = 0n;
    for (let o = 0; o < v.length; o += 16) {
      packets += v.readBigUInt64LE(o);
      bytes += v.readBigUInt64LE(o + 8);
    }
    return { packets, bytes };
  }

  [Symbol.dispose](): void {
    this.reader.close();
    this.peer?.close();
    this.obj.close();
  }
}

/** An endpoint's CONFIG. */
export function lxcConfig(ep: Endpoint, flags: number, maglevSize = LB_M): Buffer {
  return TndLxcConfig.encode({
    endpointId: ep.id,
    flags,
    identity: ep.identity,
    mac: ep.mac,
    routerMac: ep.routerMac,
    ip4: ep.ip4,
    routerIp4: ROUTER4,
    ip6: ep.ip6,
    routerIp6: ROUTER6,
    maglevSize,
  });
}

const familyOf = (a: Buffer) => (a.length === 4 ? TndFamily.TND_AF_INET : TndFamily.TND_AF_INET6);

export interface ServiceSpec {
  addr: Buffer;
  port: number;
  proto?: number;
  id: number;
  maglevId: number;
  activeBackends: number;
  affinityTimeoutS?: number;
}

export interface BackendSpec {
  addr: Buffer;
  port: number;
  proto?: number;
  terminating?: boolean;
}

/** A tnd_lb_nat key: a tuple in a direction (TndLbNatDir). */
export type NatTuple = Omit<Parameters<typeof TndCtKey.encode>[0], 'dir'>;

/** The LB maps of a Datapath (lb.h), with the values the agent would write. */
export class LbTables {
  constructor(
    private readonly obj: BpfObject,
    readonly maglevSize: number,
  ) {}

  service(s: ServiceSpec): void {
    const key = TndLbServiceKey.encode({
      addr: addr16(s.addr),
      port: P.be16(s.port),
      proto: s.proto ?? P.IPPROTO_TCP,
      family: familyOf(s.addr),
      scope: TndLbScope.TND_LB_SCOPE_CLUSTER,
    });
    const value = TndLbService.encode({
      serviceId: s.id,
      maglevId: s.maglevId,
      activeBackends: s.activeBackends,
      flags: s.affinityTimeoutS ? TndLbServiceFlags.TND_LB_F_AFFINITY : 0,
      affinityTimeoutS: s.affinityTimeoutS ?? 0,
    });
    this.obj.map('tnd_lb_services').update(key, value);
  }

  /** A backend, with its connection counter at 0 (as LbMaps.setBackend). */
  backend(id: number, b: BackendSpec): void {
    const value = TndLbBackend.encode({
      addr: addr16(b.addr),
      port: P.be16(b.port),
      proto: b.proto ?? P.IPPROTO_TCP,
      family: familyOf(b.addr),
      state: b.terminating ? TndLbBackendState.TND_LB_BACKEND_TERMINATING : TndLbBackendState.TND_LB_BACKEND_ACTIVE,
    });
    this.obj.map('tnd_lb_backends').update(u32key(id), value);
    const conns = this.obj.map('tnd_lb_backend_conns');
    if (!conns.lookup(u32key(id))) conns.update(u32key(id), Buffer.alloc(conns.valueBufferSize));
  }

  deleteBackend(id: number): void {
    this.obj.map('tnd_lb_backends').delete(u32key(id));
  }

  /** Table `id`: every slot names `ids[slot % ids.length]` (a whole table of one backend: [id]). */
  maglev(id: number, ids: number[]): void {
    const v = Buffer.alloc(this.maglevSize * 4);
    for (let i = 0; i < this.maglevSize; i++) v.writeUInt32LE(ids[i % ids.length]!, i * 4);
    using table = BpfMap.create({ type: MapType.ARRAY, name: 'test_table', keySize: 4, valueSize: v.length, maxEntries: 1 });
    table.update(u32key(0), v);
    this.obj.map('tnd_lb_maglev').setInner(u32key(id), table);
  }

  /** Connections counted for a backend, summed over CPUs. */
  connections(id: number): number {
    const v = this.obj.map('tnd_lb_backend_conns').lookup(u32key(id));
    let n = 0n;
    for (let at = 0; v && at + 8 <= v.length; at += 8) n += v.readBigUInt64LE(at);
    return Number(n);
  }

  nat(t: NatTuple, dir: TndLbNatDir): TndLbNat | undefined {
    const v = this.obj.map('tnd_lb_nat').lookup(TndCtKey.encode({ ...t, dir }));
    return v && TndLbNat.decode(v);
  }

  setNat(t: NatTuple, dir: TndLbNatDir, n: TndLbNat): void {
    this.obj.map('tnd_lb_nat').update(TndCtKey.encode({ ...t, dir }), TndLbNat.encode(n));
  }

  natCount(): number {
    return this.obj.map('tnd_lb_nat').lookupBatch().length;
  }
}

function u32key(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

/** sizeof(struct __sk_buff): the kernel refuses to write back less of it (ENOSPC). */
const SKB_CTX_SIZE = 192;

/** A struct __sk_buff for a test run with only the mark set (offset 8). */
export function skbWithMark(mark: number): Buffer {
  const b = Buffer.alloc(SKB_CTX_SIZE);
  b.writeUInt32LE(mark >>> 0, 8);
  return b;
}

export const addr16 = (a: Buffer) => Buffer.concat([a, Buffer.alloc(16 - a.length)]);
export const verdictName = (v: number) => ({ 0: 'TC_ACT_OK', 2: 'TC_ACT_SHOT', 7: 'TC_ACT_REDIRECT' })[v] ?? String(v);

export function tcp4(src: Buffer, dst: Buffer, flags: number, o: { ttl?: number; sport?: number; dport?: number } = {}): Buffer {
  const seg = P.tcp(src, dst, { sport: o.sport ?? 40000, dport: o.dport ?? 80, flags });
  return P.ipv4({ src, dst, proto: P.IPPROTO_TCP, ttl: o.ttl ?? 64 }, seg);
}

export function tcp6(src: Buffer, dst: Buffer, flags: number, o: { sport?: number; dport?: number } = {}): Buffer {
  const seg = P.tcp(src, dst, { sport: o.sport ?? 40000, dport: o.dport ?? 80, flags });
  return P.ipv6({ src, dst, nextHeader: P.IPPROTO_TCP }, seg);
}

/** From POD, on its veth: Ethernet towards its router. */
export const fromPod = (type: number, payload: Buffer) => P.eth(POD.routerMac, POD.mac, type, payload);
/** Towards POD, as the node sends it. */
export const toPod = (type: number, payload: Buffer) => P.eth(POD.mac, POD.routerMac, type, payload);
/** From PEER, on its veth: PEER's packets leave through its own from_container. */
export const fromPeer = (type: number, payload: Buffer) => P.eth(PEER.routerMac, PEER.mac, type, payload);

export function echo4(type: 8 | 0, src: Buffer, dst: Buffer, ttl = 64): Buffer {
  return P.ipv4({ src, dst, proto: P.IPPROTO_ICMP, ttl }, P.icmp4(type, 0, P.echoBody(0x4242, 7)));
}

export function echo6(type: 128 | 129, src: Buffer, dst: Buffer, hopLimit = 64): Buffer {
  return P.ipv6({ src, dst, nextHeader: P.IPPROTO_ICMPV6, hopLimit }, P.icmp6(src, dst, type, 0, P.echoBody(0x4242, 7)));
}

/** A conntrack key (without dir) of an IPv4 flow. */
export const tuple4 = (src: Buffer, dst: Buffer, sport: number, dport: number, proto = P.IPPROTO_TCP) => ({
  saddr: addr16(src),
  daddr: addr16(dst),
  sport: P.be16(sport),
  dport: P.be16(dport),
  proto,
  family: TndFamily.TND_AF_INET,
});

/** A conntrack (or tnd_lb_nat) key without dir, of either family by the address size. */
export const tuple = (src: Buffer, dst: Buffer, sport: number, dport: number, proto = P.IPPROTO_TCP) => ({
  ...tuple4(src, dst, sport, dport, proto),
  family: familyOf(src),
});

/** Compares the given fields of an event; drop reasons by name, so a failure reads well. */
export function assertEvent(ev: TndEvent, want: Partial<TndEvent>, what: string): void {
  for (const [k, v] of Object.entries(want)) {
    const got = (ev as unknown as Record<string, unknown>)[k];
    if (k === 'reason') assert.equal(tndDropReasonNames[got as number] ?? got, tndDropReasonNames[v as number] ?? v, `${what}: drop reason`);
    else assert.deepEqual(got, v, `${what}.${k}`);
  }
}
