/**
 * What the endpoint program costs, timed by BPF_PROG_TEST_RUN on lxc.o with
 * real maps, each figure beside its baseline in the same run:
 *
 * - an established TCP packet, beside a tc program that only returns
 *   TC_ACT_OK (the floor);
 * - the same established packet under a 10,000-entry policy on both
 *   endpoints, beside allow-all policies: policy is looked up for new
 *   connections only, an established packet pays one array load and a
 *   compare (the policy generation);
 * - a new connection (a SYN with a fresh source port, both sides' policies,
 *   both conntrack entries made), 10,000-entry policies beside allow-all;
 * - a SYN the policy denies (default deny after the exact, class and ANY
 *   lookups), 10,000 entries beside an empty policy: the lookup's own cost;
 * - installing a 10,000-entry policy (new inner map, filled, swapped in),
 *   beside 10,000 single updates of a hash map (the syscall floor).
 *
 * The connection is set up as pods set it up: A's SYN through A's
 * from_container, B's SYN-ACK through B's (a second lxc.o on the same maps),
 * so both conntrack entries (A's egress, B's ingress) are established. The
 * timed established packet then pays for what every established pod-to-pod
 * packet pays: parse, one tnd_endpoints lookup, two tnd_ct lookups (the
 * source's egress entry and, on the destination's behalf, its ingress entry),
 * the policy generation twice, two per-CPU counters, the route rewrite and
 * bpf_redirect_peer. Measured on the development VM (AMD EPYC, "Safe RET"
 * return-stack mitigation: every kernel call and return is dear): floor
 * ~40 ns; each hash lookup ~30-40 ns (jhash, bucket walk and memcmp are
 * out-of-line kernel calls); all the rest ~15 ns.
 *
 * BPF_PROG_TEST_RUN with repeat=N runs every iteration on the previous
 * iteration's output. from_container rewrites MACs (idempotent here) and
 * decrements the TTL, so the established packet starts with TTL 255 and a
 * batch stays well below 254 iterations: every iteration takes the same,
 * forwarding path, which the returned verdict (TC_ACT_REDIRECT) confirms
 * batch by batch. A denied SYN is not rewritten and makes no state, so every
 * iteration of a batch is the same new connection. An allowed SYN makes
 * conntrack entries, so the second run of it would be established: new
 * connections are timed one run each (repeat=1, which adds the same fixed
 * cost of a run to both sides), a fresh source port every time.
 */
import { performance } from 'node:perf_hooks';
import { BpfMap, BpfObject, MapType, bpfObjectPath, type BpfProgram } from '../src/bpf/index.js';
import { TndEndpointInfo, TndEndpointKey, TndLxcConfig } from '../src/bpf/generated/wire.js';
import { IDENTITY_ANY, IDENTITY_CLASS_ENDPOINTS, IDENTITY_CLASS_WORLD } from '../src/common/identity.js';
import { portRangeToPrefixes, type PolicyMapEntry } from '../src/common/policy-entry.js';
import { endpointConfig, type EndpointDatapathSpec } from '../src/datapath/endpoint-programs.js';
import { NODE_MAPS } from '../src/datapath/node-maps.js';
import { PolicyMaps, allowAllEntries } from '../src/datapath/policy-maps.js';
import { IPPROTO_TCP, ETH_P_IP, TCP_ACK, TCP_SYN, eth, ip4, ipv4, mac, tcp } from '../bpf/tests/packets.js';
import { median } from './stats.js';

const TC_ACT_OK = 0;
const TC_ACT_SHOT = 2;
const TC_ACT_REDIRECT = 7;
const BATCH = 200;
export const POLICY_SIZE = 10_000;

interface Pod {
  id: number;
  identity: number;
  ip: string;
  mac: string;
  host: string;
  ifindex: number;
}

const A: Pod = { id: 1, identity: 1001, ip: '10.200.1.2', mac: '02:00:00:00:00:0a', host: '02:00:00:00:01:0a', ifindex: 10 };
const B: Pod = { id: 2, identity: 1002, ip: '10.200.1.3', mac: '02:00:00:00:00:0b', host: '02:00:00:00:01:0b', ifindex: 11 };

/** ifindex 0: the programs take their device from the packet, not from CONFIG. */
function spec(p: Pod): EndpointDatapathSpec {
  return { id: p.id, ifindex: 0, identity: p.identity, podMac: p.mac, hostMac: p.host, ipv4: p.ip, ipv6: `fd10:200:0:1::${p.id + 1}`, routerIPv4: '10.200.1.1', routerIPv6: 'fd10:200:0:1::1' };
}

function packet(flags: number, o: { ttl?: number; sport?: number; dport?: number } = {}): Buffer {
  const src = ip4(A.ip);
  const dst = ip4(B.ip);
  const seg = tcp(src, dst, { sport: o.sport ?? 40000, dport: o.dport ?? 80, flags, payload: Buffer.alloc(64) });
  return eth(mac(A.host), mac(A.mac), ETH_P_IP, ipv4({ src, dst, proto: IPPROTO_TCP, ttl: o.ttl ?? 64 }, seg));
}

/** B's reply as it leaves B: towards B's router. */
function reply(flags: number): Buffer {
  const src = ip4(B.ip);
  const dst = ip4(A.ip);
  const seg = tcp(src, dst, { sport: 80, dport: 40000, flags });
  return eth(mac(B.host), mac(B.mac), ETH_P_IP, ipv4({ src, dst, proto: IPPROTO_TCP }, seg));
}

function check(r: { retval: number }, expect: number, what: string): void {
  if (r.retval !== expect) throw new Error(`${what}: verdict ${r.retval} instead of ${expect}: the timed path is not the intended one`);
}

function timeBatches(run: () => { retval: number; durationNs: number }, expect: number, batches: number): number {
  const samples: number[] = [];
  for (let i = 0; i < batches; i++) {
    const r = run();
    check(r, expect, 'batch');
    samples.push(r.durationNs);
  }
  return median(samples);
}

/**
 * A policy of `size` entries as a resolver makes them for a busy endpoint:
 * a thousand peer identities with TCP port ranges both ways, deny ranges on
 * the classes and ANY (so all three lookups walk a full trie), and the
 * entries that let A reach B on TCP/80.
 */
export function bigPolicy(size: number): PolicyMapEntry[] {
  const out: PolicyMapEntry[] = [
    { direction: 'egress', identity: B.identity, protocol: 6, port: 80, portPrefixLen: 16, verdict: 'allow', ruleId: 1 },
    { direction: 'ingress', identity: A.identity, protocol: 6, port: 80, portPrefixLen: 16, verdict: 'allow', ruleId: 2 },
  ];
  for (const identity of [IDENTITY_CLASS_ENDPOINTS, IDENTITY_CLASS_WORLD, IDENTITY_ANY]) {
    for (const direction of ['ingress', 'egress'] as const) {
      for (const { port, prefixLen } of portRangeToPrefixes(20000, 30000)) out.push({ direction, identity, protocol: 6, port, portPrefixLen: prefixLen, verdict: 'deny', ruleId: 3 });
    }
  }
  for (let i = 0; out.length < size; i++) {
    const first = 1000 + (i % 50) * 16;
    for (const { port, prefixLen } of portRangeToPrefixes(first, first + 15)) {
      if (out.length === size) break;
      out.push({ direction: i % 2 ? 'ingress' : 'egress', identity: 2000 + Math.floor(i / 2), protocol: 6, port, portPrefixLen: prefixLen, verdict: 'allow', ruleId: 10 + i });
    }
  }
  return out;
}

/** A and B, each with its lxc.o on one set of maps, both in tnd_endpoints, with the given policies. */
class Pair implements Disposable {
  readonly a: BpfObject;
  private b?: BpfObject;
  readonly policy: PolicyMaps;

  constructor(policyOf: (pod: Pod) => PolicyMapEntry[]) {
    this.a = BpfObject.open(bpfObjectPath('lxc.o'), { constants: { CONFIG: TndLxcConfig.encode(endpointConfig(spec(A))) } });
    try {
      this.a.load();
      const reuseMaps = Object.fromEntries(NODE_MAPS.map((n) => [n, this.a.map(n)]));
      this.b = BpfObject.open(bpfObjectPath('lxc.o'), { constants: { CONFIG: TndLxcConfig.encode(endpointConfig(spec(B))) }, reuseMaps });
      this.b.load();
      for (const p of [A, B]) {
        const addr = Buffer.alloc(16);
        ip4(p.ip).copy(addr);
        this.a.map('tnd_endpoints').update(
          TndEndpointKey.encode({ addr, family: 2 }),
          TndEndpointInfo.encode({ ifindex: p.ifindex, identity: p.identity, endpointId: p.id, flags: 0, mac: mac(p.mac), routerMac: mac(p.host) }),
        );
      }
      this.policy = new PolicyMaps(this.a.map('tnd_policy'), this.a.map('tnd_policy_gen'));
      for (const p of [A, B]) this.policy.install(p.id, policyOf(p));
    } catch (err) {
      this.close();
      throw err;
    }
  }

  get fromA(): BpfProgram {
    return this.a.program('from_container');
  }

  /** A's SYN out of A, B's SYN-ACK out of B: both sides' entries established. */
  establish(): void {
    check(this.fromA.testRun({ data: packet(TCP_SYN) }), TC_ACT_REDIRECT, 'SYN');
    check(this.b!.program('from_container').testRun({ data: reply(TCP_SYN | TCP_ACK) }), TC_ACT_REDIRECT, 'SYN-ACK');
  }

  close(): void {
    this.b?.close();
    this.a.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** The endpoint program on an established packet, and the pass-through floor. */
export function endpointProgramCost(batches: number): { tendril: number; floor: number } {
  using pair = new Pair(() => allowAllEntries());
  const floorObj = BpfObject.open(bpfObjectPath('tests/passthrough.o'));
  try {
    floorObj.load();
    pair.establish();
    const established = packet(TCP_ACK, { ttl: 255 });
    const floorProg = floorObj.program('tc_pass');
    const tendril = timeBatches(() => pair.fromA.testRun({ data: established, repeat: BATCH }), TC_ACT_REDIRECT, batches);
    const floor = timeBatches(() => floorProg.testRun({ data: established, repeat: BATCH }), TC_ACT_OK, batches);
    return { tendril, floor };
  } finally {
    floorObj.close();
  }
}

export interface PolicyCost {
  /** ns per established packet: 10,000-entry policies, allow-all. */
  established: { big: number; allowAll: number };
  /** ns per new (allowed) connection, one run each: 10,000-entry policies, allow-all. */
  newConnection: { big: number; allowAll: number };
  /** ns per denied SYN (full lookup): 10,000-entry policy, empty policy. */
  denied: { big: number; empty: number };
  /** ms to install a 10,000-entry policy; ms for as many single hash-map updates. */
  install: { policy: number; hashUpdates: number };
}

export function policyCost(batches: number, samples: number): PolicyCost {
  const entries = bigPolicy(POLICY_SIZE);
  using big = new Pair(() => entries);
  using open = new Pair(() => allowAllEntries());
  using closed = new Pair((p) => (p === A ? [] : allowAllEntries()));

  // Established: both pairs' connections made once, then batches in turns.
  big.establish();
  open.establish();
  const established = packet(TCP_ACK, { ttl: 255 });
  const est = { big: [] as number[], allowAll: [] as number[] };
  for (let i = 0; i < batches; i++) {
    for (const [pair, out] of [[big, est.big], [open, est.allowAll]] as const) {
      const r = pair.fromA.testRun({ data: established, repeat: BATCH });
      check(r, TC_ACT_REDIRECT, 'established');
      out.push(r.durationNs);
    }
  }

  // New connections: one run each, a fresh source port (and tuple) every time.
  const fresh = { big: [] as number[], allowAll: [] as number[] };
  for (let i = 0; i < samples; i++) {
    const syn = packet(TCP_SYN, { sport: 1024 + i });
    for (const [pair, out] of [[big, fresh.big], [open, fresh.allowAll]] as const) {
      const r = pair.fromA.testRun({ data: syn });
      check(r, TC_ACT_REDIRECT, 'new connection');
      out.push(r.durationNs);
    }
  }

  // Denied: nothing allows TCP/9999 to B; the drop leaves the packet and the maps as they were.
  const deniedSyn = packet(TCP_SYN, { sport: 50000, dport: 9999 });
  const denied = {
    big: timeBatches(() => big.fromA.testRun({ data: deniedSyn, repeat: BATCH }), TC_ACT_SHOT, batches),
    empty: timeBatches(() => closed.fromA.testRun({ data: deniedSyn, repeat: BATCH }), TC_ACT_SHOT, batches),
  };

  // Install: the whole 10,000-entry policy, beside 10,000 updates of a plain hash map.
  const installs: number[] = [];
  const floors: number[] = [];
  const hash = BpfMap.create({ type: MapType.HASH, name: 'bench_hash', keySize: 12, valueSize: 8, maxEntries: POLICY_SIZE });
  try {
    const keys = Array.from({ length: POLICY_SIZE }, (_, i) => {
      const k = Buffer.alloc(12);
      k.writeUInt32LE(i);
      return k;
    });
    const value = Buffer.alloc(8);
    for (let i = 0; i < 5; i++) {
      let t = performance.now();
      big.policy.install(A.id, entries);
      installs.push(performance.now() - t);
      t = performance.now();
      for (const k of keys) hash.update(k, value);
      floors.push(performance.now() - t);
    }
  } finally {
    hash.close();
  }

  return {
    established: { big: median(est.big), allowAll: median(est.allowAll) },
    newConnection: { big: median(fresh.big), allowAll: median(fresh.allowAll) },
    denied,
    install: { policy: median(installs), hashUpdates: median(floors) },
  };
}
