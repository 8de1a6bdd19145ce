/**
 * bpf/xdp.c through BPF_PROG_TEST_RUN, exact bytes in and out, inside a
 * node namespace of its own (xdp-netns.ts) whose FIB gives the MACs of
 * remote backends: NodePort to a local backend (DNAT, XDP_PASS, REV entry
 * for lxc.o), to a remote one in SNAT mode (XDP_TX) and its reply, DSR
 * (IPv4 option, IPv6 destination option), UDP, IPv6, ExternalIP (SNAT
 * source from the FIB; another device: XDP_REDIRECT), established flows
 * keeping their backend, a SYN choosing again (its SNAT port kept), the
 * SNAT reply slots (a live flow's port never given away, an ended flow's
 * port reused), refusals (TCP reset, ICMP/ICMPv6 unreachable),
 * and packets that pass untouched without map changes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { TypedMap, u32, type BpfObject, type BpfProgram, type Codec } from '../../src/bpf/index.js';
import { TndCtKey, TndEndpointInfo, TndEndpointKey, TndLbNat, TndLbNatFlags } from '../../src/bpf/generated/wire.js';
import { ifNameToIndex } from '../../src/sys/index.js';
import { keyAddress } from '../../src/common/wire-values.js';
import type { BackendEntry, Frontend, FrontendScope, LbMode } from '../../src/common/lb.js';
import { LbMaps } from '../../src/datapath/lb-maps.js';
import { PinPaths } from '../../src/datapath/paths.js';
import { XdpLb, loadXdpLb } from '../../src/datapath/xdp-lb.js';
import * as P from './packets.js';
import { IPPROTO_DSTOPTS, dsrOpt4, dsrOpt6, tcpWindow0, xdpCtx } from './xdp-packets.js';
import { NODE, innerEnv, runInNodeNetns } from './xdp-netns.js';

const XDP_DROP = 1;
const XDP_PASS = 2;
const XDP_TX = 3;
const XDP_REDIRECT = 4;
const M = 7;

const inner = innerEnv();

/** struct xdp_flow_slot (bpf/lib/common.h): a tnd_ct_key, then a tnd_lb_nat. */
interface TndXdpSlot {
  key: TndCtKey;
  nat: TndLbNat;
}
const TndXdpSlot: Codec<TndXdpSlot> = {
  size: TndCtKey.size + TndLbNat.size,
  encode: (v) => Buffer.concat([TndCtKey.encode(v.key), TndLbNat.encode(v.nat)]),
  decode: (b) => ({ key: TndCtKey.decode(b.subarray(0, TndCtKey.size)), nat: TndLbNat.decode(b.subarray(TndCtKey.size)) }),
};

if (!inner) {
  describe('XDP load balancer (bpf/xdp.c)', () => {
    it('passes its packet tests inside a node namespace of its own', () => {
      const r = runInNodeNetns(fileURLToPath(import.meta.url));
      assert.equal(r.status, 0, r.output);
      assert.match(r.output, /ℹ pass 1[0-9]\n/, r.output);
      assert.match(r.output, /ℹ fail 0\n/, r.output);
    });
  });
} else {
  const ip4 = P.ip4;
  const ip6 = P.ip6;
  const ext0Mac = P.mac(NODE.ext0Mac);
  const clientMac = P.mac(NODE.clientMac);
  const peerMac = P.mac(NODE.peerMac);
  const node4 = ip4(NODE.node4);
  const node6 = ip6(NODE.node6);
  const client4 = ip4(NODE.client4);
  const client6 = ip6(NODE.client6);

  let maps: LbMaps;
  let obj: BpfObject;
  let prog: BpfProgram;
  let nat: TypedMap<TndCtKey, TndLbNat>;
  let slots: TypedMap<number, TndXdpSlot>;
  let flows: TypedMap<number, TndXdpSlot>;
  let ext0: number;
  let ext1: number;
  const paths = new PinPaths(inner.bpffs, 'xdp-test');

  const run = (data: Buffer, ifindex = ext0) => prog.testRun({ data, ctx: xdpCtx(ifindex, data.length) });

  function service(id: number, frontend: Frontend, scope: FrontendScope, backends: BackendEntry[], mode: LbMode = 'snat'): void {
    for (const b of backends) maps.setBackend(b);
    maps.setMaglev(id, Uint32Array.from({ length: M }, (_, i) => (backends.length ? backends[i % backends.length]!.id : 0)));
    maps.setFrontend({ frontend, scope, serviceId: id, mode, affinityTimeoutSec: 0, maglevId: id, activeBackends: backends.length });
  }
  const backend = (id: number, address: string, port: number, protocol: 'TCP' | 'UDP' = 'TCP'): BackendEntry => ({ id, address, port, protocol, state: 'active' });

  function ctKey(saddr: Buffer, daddr: Buffer, sport: number, dport: number, proto: number, dir: 0 | 1): TndCtKey {
    return { saddr: keyAddress(saddr), daddr: keyAddress(daddr), sport: P.be16(sport), dport: P.be16(dport), proto, family: saddr.length === 4 ? 2 : 10, dir };
  }
  const natCount = () => nat.lookupBatch().length;

  /** lb_hash64 (bpf/lib/lb.h): murmur3's 64-bit finaliser, low 32 bits. */
  function hash64(x: bigint): bigint {
    const M64 = (1n << 64n) - 1n;
    x ^= x >> 33n;
    x = (x * 0xff51afd7ed558ccdn) & M64;
    x ^= x >> 33n;
    x = (x * 0xc4ceb9fe1a85ec53n) & M64;
    x ^= x >> 33n;
    return x & 0xffffffffn;
  }
  /** The slot of a key in tnd_xdp_flows / tnd_xdp_snat (slot_index, bpf/lib/slot_xdp.h; TND_XDP_SLOT_BITS 17). */
  function slotIndex(k: TndCtKey): number {
    const fold = (a: Buffer) => BigInt((a.readUInt32LE(0) ^ a.readUInt32LE(4) ^ a.readUInt32LE(8) ^ a.readUInt32LE(12)) >>> 0);
    const h = hash64((fold(k.saddr) << 32n) | fold(k.daddr));
    return Number(hash64(((h ^ BigInt(k.proto)) << 32n) | (BigInt(k.sport) << 16n) | BigInt(k.dport)) & ((1n << 17n) - 1n));
  }
  function slotOf(map: TypedMap<number, TndXdpSlot>, k: TndCtKey): TndXdpSlot | undefined {
    const s = map.lookup(slotIndex(k));
    if (!s || s.nat.lastSeenNs === 0n) return undefined;
    return TndCtKey.encode(s.key).equals(TndCtKey.encode(k)) ? s : undefined;
  }
  /** The live reply slot of a SNAT flow, by the REV key its backend's replies have. */
  const snatSlot = (k: TndCtKey) => slotOf(slots, k);
  /** A flow's FWD entry: its slot in tnd_xdp_flows, else tnd_lb_nat. */
  const fwdEntry = (k: TndCtKey): TndLbNat | undefined => slotOf(flows, k)?.nat ?? nat.lookup(k);

  /** The SNAT port the FWD entry of a flow was given. */
  function snatPort(key: TndCtKey): number {
    const fwd = fwdEntry(key);
    assert.ok(fwd, 'FWD entry written');
    assert.ok(fwd.flags & TndLbNatFlags.TND_LB_NAT_F_SNAT);
    const port = P.be16(fwd.port2);
    assert.ok(port >= 61000 && port <= 65535, `SNAT port ${port} in range`);
    return port;
  }

  const v4 = (src: Buffer, dst: Buffer, l4: Buffer, o: Partial<P.Ipv4Fields> & { proto: number }, dmac = ext0Mac, smac = clientMac) =>
    P.eth(dmac, smac, P.ETH_P_IP, P.ipv4({ src, dst, ...o }, l4));
  const v6 = (src: Buffer, dst: Buffer, l4: Buffer, o: Partial<P.Ipv6Fields> & { nextHeader: number }, dmac = ext0Mac, smac = clientMac) =>
    P.eth(dmac, smac, P.ETH_P_IPV6, P.ipv6({ src, dst, ...o }, l4));
  const syn4 = (dst: Buffer, sport: number, dport: number, flags = P.TCP_SYN) => v4(client4, dst, P.tcp(client4, dst, { sport, dport, flags }), { proto: P.IPPROTO_TCP });

  before(() => {
    ext0 = ifNameToIndex('ext0');
    ext1 = ifNameToIndex('ext1');
    maps = LbMaps.open(paths, { maglevSize: M });
    obj = loadXdpLb(maps);
    prog = obj.program('xdp_lb');
    nat = new TypedMap(maps.get('tnd_lb_nat'), TndCtKey, TndLbNat);
    slots = new TypedMap(obj.map('tnd_xdp_snat'), u32, TndXdpSlot);
    flows = new TypedMap(obj.map('tnd_xdp_flows'), u32, TndXdpSlot);
    maps.setNodeAddresses([NODE.node4, NODE.node6]);
    const endpoints = new TypedMap(obj.map('tnd_endpoints'), TndEndpointKey, TndEndpointInfo);
    const lxc0 = ifNameToIndex('lxc0');
    for (const [addr, family] of [[ip4(NODE.localBackend4), 2], [ip6(NODE.localBackend6), 10]] as const)
      endpoints.update({ addr: keyAddress(addr), family }, { ifindex: lxc0, identity: 1001, endpointId: 1, flags: 0, mac: Buffer.alloc(6, 2), routerMac: Buffer.alloc(6, 1) });
  });

  after(() => {
    obj?.close();
    maps?.close();
  });

  describe('XDP load balancer, inside a node namespace', () => {
    it('NodePort SYN for a local backend: DNAT only, XDP_PASS, FWD and REV (not at client) entries', () => {
      service(1, { address: '0.0.0.0', port: 30080, protocol: 'TCP' }, 'nodeport', [backend(11, NODE.localBackend4, 8080)]);
      const local = ip4(NODE.localBackend4);
      const r = run(syn4(node4, 40001, 30080));
      assert.equal(r.retval, XDP_PASS);
      assert.deepEqual(r.data, v4(client4, local, P.tcp(client4, local, { sport: 40001, dport: 8080, flags: P.TCP_SYN }), { proto: P.IPPROTO_TCP }));
      const rev = nat.lookup(ctKey(local, client4, 8080, 40001, P.IPPROTO_TCP, 1));
      assert.ok(rev, 'REV entry of the backend reply');
      assert.deepEqual([rev.addr.subarray(0, 4), P.be16(rev.port), rev.flags, rev.serviceId, rev.backendId], [node4, 30080, 0, 1, 11]);
      const fwd = fwdEntry(ctKey(client4, node4, 40001, 30080, P.IPPROTO_TCP, 0));
      assert.ok(fwd);
      assert.deepEqual([fwd.addr.subarray(0, 4), P.be16(fwd.port), fwd.backendId], [local, 8080, 11]);
      assert.equal(maps.backendConnections().get(11), 1);
    });

    it('NodePort SYN for a remote backend in SNAT mode: XDP_TX with the FIB MACs; the reply is reversed at XDP', () => {
      service(2, { address: '0.0.0.0', port: 30081, protocol: 'TCP' }, 'nodeport', [backend(21, NODE.remoteBackend4, 8080)]);
      const be = ip4(NODE.remoteBackend4);
      const r = run(syn4(node4, 40002, 30081));
      assert.equal(r.retval, XDP_TX);
      const fk = ctKey(client4, node4, 40002, 30081, P.IPPROTO_TCP, 0);
      const port = snatPort(fk);
      assert.deepEqual(r.data, v4(node4, be, P.tcp(node4, be, { sport: port, dport: 8080, flags: P.TCP_SYN }), { proto: P.IPPROTO_TCP, ttl: 63 }, peerMac, ext0Mac));
      assert.equal(nat.lookup(ctKey(be, node4, 8080, port, P.IPPROTO_TCP, 1)), undefined, 'no REV entry in tnd_lb_nat: a slot');
      const slot = snatSlot(ctKey(be, node4, 8080, port, P.IPPROTO_TCP, 1));
      assert.ok(slot, 'the reply slot');
      assert.deepEqual(
        [slot.nat.flags, slot.nat.addr.subarray(0, 4), P.be16(slot.nat.port), slot.nat.addr2.subarray(0, 4), P.be16(slot.nat.port2), slot.nat.serviceId, slot.nat.backendId],
        [TndLbNatFlags.TND_LB_NAT_F_SNAT, node4, 30081, client4, 40002, 2, 21],
      );

      const reply = v4(be, node4, P.tcp(be, node4, { sport: 8080, dport: port, flags: P.TCP_SYN | P.TCP_ACK, seq: 5000, ack: 1001 }), { proto: P.IPPROTO_TCP }, ext0Mac, peerMac);
      const back = run(reply);
      assert.equal(back.retval, XDP_TX);
      assert.deepEqual(
        back.data,
        v4(node4, client4, P.tcp(node4, client4, { sport: 30081, dport: 40002, flags: P.TCP_SYN | P.TCP_ACK, seq: 5000, ack: 1001 }), { proto: P.IPPROTO_TCP, ttl: 63 }, clientMac, ext0Mac),
      );
    });

    it('an established flow keeps its backend after the table changed; a new flow takes the new one', () => {
      const be = ip4(NODE.remoteBackend4);
      const other = ip4('10.200.2.6');
      service(2, { address: '0.0.0.0', port: 30081, protocol: 'TCP' }, 'nodeport', [backend(22, '10.200.2.6', 8080)]);
      const fk = ctKey(client4, node4, 40002, 30081, P.IPPROTO_TCP, 0);
      const port = snatPort(fk);
      const r = run(syn4(node4, 40002, 30081, P.TCP_ACK));
      assert.equal(r.retval, XDP_TX);
      assert.deepEqual(r.data, v4(node4, be, P.tcp(node4, be, { sport: port, dport: 8080, flags: P.TCP_ACK }), { proto: P.IPPROTO_TCP, ttl: 63 }, peerMac, ext0Mac));
      const n = run(syn4(node4, 40003, 30081));
      assert.equal(n.retval, XDP_TX);
      const port2 = snatPort(ctKey(client4, node4, 40003, 30081, P.IPPROTO_TCP, 0));
      assert.deepEqual(n.data, v4(node4, other, P.tcp(node4, other, { sport: port2, dport: 8080, flags: P.TCP_SYN }), { proto: P.IPPROTO_TCP, ttl: 63 }, peerMac, ext0Mac));
    });

    it('a repeated SYN chooses again: same backend, same SNAT port, counted once; after its backend leaves, the new one and the old port freed', () => {
      service(30, { address: '0.0.0.0', port: 30100, protocol: 'TCP' }, 'nodeport', [backend(301, '10.200.2.10', 8080)]);
      const be = ip4('10.200.2.10');
      const fk = ctKey(client4, node4, 40100, 30100, P.IPPROTO_TCP, 0);
      const first = run(syn4(node4, 40100, 30100));
      assert.equal(first.retval, XDP_TX);
      const port = snatPort(fk);
      assert.deepEqual(first.data, v4(node4, be, P.tcp(node4, be, { sport: port, dport: 8080, flags: P.TCP_SYN }), { proto: P.IPPROTO_TCP, ttl: 63 }, peerMac, ext0Mac));
      const again = run(syn4(node4, 40100, 30100));
      assert.equal(again.retval, XDP_TX);
      assert.deepEqual(again.data, first.data, 'the retransmitted SYN: same backend, same SNAT port');
      assert.equal(maps.backendConnections().get(301), 1, 'one connection, not two');
      const oldRev = ctKey(be, node4, 8080, port, P.IPPROTO_TCP, 1);
      assert.ok(snatSlot(oldRev));

      // The backend leaves (the agent rewrites the table and deletes it): a SYN takes the new one.
      service(30, { address: '0.0.0.0', port: 30100, protocol: 'TCP' }, 'nodeport', [backend(302, '10.200.2.11', 8080)]);
      maps.deleteBackend(301);
      const other = ip4('10.200.2.11');
      const moved = run(syn4(node4, 40100, 30100));
      assert.equal(moved.retval, XDP_TX);
      const port2 = snatPort(fk);
      assert.equal(fwdEntry(fk)?.backendId, 302);
      assert.deepEqual(moved.data, v4(node4, other, P.tcp(node4, other, { sport: port2, dport: 8080, flags: P.TCP_SYN }), { proto: P.IPPROTO_TCP, ttl: 63 }, peerMac, ext0Mac));
      assert.equal(snatSlot(oldRev), undefined, 'the old backend\'s port is free again');
      assert.ok(snatSlot(ctKey(other, node4, 8080, port2, P.IPPROTO_TCP, 1)));
      assert.equal(maps.backendConnections().get(302), 1);
      const ack = run(syn4(node4, 40100, 30100, P.TCP_ACK));
      assert.deepEqual(ack.data, v4(node4, other, P.tcp(node4, other, { sport: port2, dport: 8080, flags: P.TCP_ACK }), { proto: P.IPPROTO_TCP, ttl: 63 }, peerMac, ext0Mac));
    });

    it('SNAT ports: a live flow\'s port never goes to another; an ended flow\'s port is taken again; FIN and RST end a flow, and a SYN after it is a new connection', () => {
      service(31, { address: '0.0.0.0', port: 30101, protocol: 'TCP' }, 'nodeport', [backend(311, '10.200.2.12', 8080)]);
      const be = ip4('10.200.2.12');
      const fk = ctKey(client4, node4, 40110, 30101, P.IPPROTO_TCP, 0);
      assert.equal(run(syn4(node4, 40110, 30101)).retval, XDP_TX);
      const portA = snatPort(fk);
      const revA = ctKey(be, node4, 8080, portA, P.IPPROTO_TCP, 1);
      // Another client's live flow holds that port's slot now.
      const stranger = ip4('198.51.100.77');
      const held = snatSlot(revA)!;
      held.nat.addr2 = keyAddress(stranger);
      slots.update(slotIndex(revA), held);
      const r = run(syn4(node4, 40110, 30101));
      assert.equal(r.retval, XDP_TX);
      const portB = snatPort(fk);
      assert.notEqual(portB, portA, 'the live flow keeps its port');
      assert.deepEqual(r.data, v4(node4, be, P.tcp(node4, be, { sport: portB, dport: 8080, flags: P.TCP_SYN }), { proto: P.IPPROTO_TCP, ttl: 63 }, peerMac, ext0Mac));
      assert.deepEqual(snatSlot(revA)?.nat.addr2.subarray(0, 4), stranger, 'its slot untouched');
      assert.equal(maps.backendConnections().get(311), 2);

      // The stranger's flow ended (a FIN) more than the closing time ago; ours ends and its client reconnects.
      const ended = snatSlot(revA)!;
      ended.nat.flags |= TndLbNatFlags.TND_LB_NAT_F_CLOSING;
      ended.nat.lastSeenNs = process.hrtime.bigint() - 61_000_000_000n;
      slots.update(slotIndex(revA), ended);
      for (const [map, k] of [[flows, fk], [slots, ctKey(be, node4, 8080, portB, P.IPPROTO_TCP, 1)]] as const) {
        const free = map.lookup(slotIndex(k))!;
        free.nat.lastSeenNs = 0n;
        map.update(slotIndex(k), free);
      }
      assert.equal(run(syn4(node4, 40110, 30101)).retval, XDP_TX);
      assert.equal(snatPort(fk), portA, 'the ended flow\'s port, the first this tuple tries');
      assert.deepEqual(snatSlot(revA)?.nat.addr2.subarray(0, 4), client4);
      assert.equal(maps.backendConnections().get(311), 3);

      // A FIN from the client marks both slots; the reply's RST too; a SYN on the tuple then is a new connection.
      assert.equal(run(syn4(node4, 40110, 30101, P.TCP_ACK | P.TCP_FIN)).retval, XDP_TX);
      assert.ok(snatSlot(revA)!.nat.flags & TndLbNatFlags.TND_LB_NAT_F_CLOSING, 'the reply slot is closing');
      assert.ok(slotOf(flows, fk)!.nat.flags & TndLbNatFlags.TND_LB_NAT_F_CLOSING, 'the FWD slot is closing');
      const rst = run(v4(be, node4, P.tcp(be, node4, { sport: 8080, dport: portA, flags: P.TCP_RST }), { proto: P.IPPROTO_TCP }, ext0Mac, peerMac));
      assert.equal(rst.retval, XDP_TX, 'the reply is still translated');
      assert.equal(run(syn4(node4, 40110, 30101)).retval, XDP_TX);
      assert.equal(snatPort(fk), portA, 'the same port again');
      assert.equal(snatSlot(revA)!.nat.flags & TndLbNatFlags.TND_LB_NAT_F_CLOSING, 0, 'open again');
      assert.equal(slotOf(flows, fk)!.nat.flags & TndLbNatFlags.TND_LB_NAT_F_CLOSING, 0);
      assert.equal(maps.backendConnections().get(311), 4, 'a new connection on the tuple');
    });

    it('a flow whose FWD slot another live flow holds lives in tnd_lb_nat and keeps its backend', () => {
      service(32, { address: '0.0.0.0', port: 30102, protocol: 'TCP' }, 'nodeport', [backend(321, '10.200.2.13', 8080)]);
      const be = ip4('10.200.2.13');
      const fk = ctKey(client4, node4, 40120, 30102, P.IPPROTO_TCP, 0);
      const idx = slotIndex(fk);
      const squatter = { key: { ...fk, sport: P.be16(1) }, nat: { ...flows.lookup(idx)!.nat, serviceId: 99, lastSeenNs: process.hrtime.bigint() } };
      flows.update(idx, squatter);
      assert.equal(run(syn4(node4, 40120, 30102)).retval, XDP_TX);
      const fwd = nat.lookup(fk);
      assert.ok(fwd && fwd.backendId === 321, 'the FWD entry in tnd_lb_nat');
      assert.equal(flows.lookup(idx)!.nat.serviceId, 99, 'the other flow keeps its slot');
      const port = P.be16(fwd.port2);
      assert.equal(run(syn4(node4, 40120, 30102)).retval, XDP_TX);
      assert.equal(P.be16(nat.lookup(fk)!.port2), port, 'a repeated SYN keeps the port there too');
      // The table changes: the flow's next packet still finds its entry there.
      service(32, { address: '0.0.0.0', port: 30102, protocol: 'TCP' }, 'nodeport', [backend(322, '10.200.2.14', 8080)]);
      const ack = run(syn4(node4, 40120, 30102, P.TCP_ACK));
      assert.deepEqual(ack.data, v4(node4, be, P.tcp(node4, be, { sport: port, dport: 8080, flags: P.TCP_ACK }), { proto: P.IPPROTO_TCP, ttl: 63 }, peerMac, ext0Mac));
      flows.update(idx, { ...squatter, nat: { ...squatter.nat, lastSeenNs: 0n } });
    });

    it('DSR over IPv4/UDP: DNAT and the IPv4 option carrying the frontend on every datagram, FWD entry only', () => {
      service(3, { address: '0.0.0.0', port: 30082, protocol: 'UDP' }, 'nodeport', [backend(31, '10.200.2.7', 5353, 'UDP')], 'dsr');
      const be = ip4('10.200.2.7');
      const before = natCount();
      for (let i = 0; i < 2; i++) {
        const payload = Buffer.from(`hello ${i}`);
        const r = run(v4(client4, node4, P.udp(client4, node4, 40004, 30082, payload), { proto: P.IPPROTO_UDP }));
        assert.equal(r.retval, XDP_TX);
        assert.deepEqual(
          r.data,
          v4(client4, be, P.udp(client4, be, 40004, 5353, payload), { proto: P.IPPROTO_UDP, ttl: 63, options: dsrOpt4(node4, 30082) }, peerMac, ext0Mac),
        );
      }
      assert.equal(natCount(), before, 'no REV entry (and the FWD entry in its slot)');
      const fwd = slotOf(flows, ctKey(client4, node4, 40004, 30082, P.IPPROTO_UDP, 0))?.nat;
      assert.equal(fwd?.flags, TndLbNatFlags.TND_LB_NAT_F_DSR);
    });

    it('DSR over IPv6/TCP: the destination options header on the SYN only', () => {
      service(4, { address: '::', port: 30083, protocol: 'TCP' }, 'nodeport', [backend(41, NODE.remoteBackend6, 8080)], 'dsr');
      const be = ip6(NODE.remoteBackend6);
      const syn = run(v6(client6, node6, P.tcp(client6, node6, { sport: 40005, dport: 30083, flags: P.TCP_SYN }), { nextHeader: P.IPPROTO_TCP }));
      assert.equal(syn.retval, XDP_TX);
      const seg = P.tcp(client6, be, { sport: 40005, dport: 8080, flags: P.TCP_SYN });
      assert.deepEqual(syn.data, v6(client6, be, Buffer.concat([dsrOpt6(P.IPPROTO_TCP, node6, 30083), seg]), { nextHeader: IPPROTO_DSTOPTS, hopLimit: 63 }, peerMac, ext0Mac));
      const ack = run(v6(client6, node6, P.tcp(client6, node6, { sport: 40005, dport: 30083, flags: P.TCP_ACK }), { nextHeader: P.IPPROTO_TCP }));
      assert.equal(ack.retval, XDP_TX);
      assert.deepEqual(ack.data, v6(client6, be, P.tcp(client6, be, { sport: 40005, dport: 8080, flags: P.TCP_ACK }), { nextHeader: P.IPPROTO_TCP, hopLimit: 63 }, peerMac, ext0Mac));
    });

    it('IPv6 NodePort in SNAT mode, and its reply', () => {
      service(5, { address: '::', port: 30084, protocol: 'TCP' }, 'nodeport', [backend(51, 'fd10:200:0:2::6', 8080)]);
      const be = ip6('fd10:200:0:2::6');
      const r = run(v6(client6, node6, P.tcp(client6, node6, { sport: 40006, dport: 30084, flags: P.TCP_SYN }), { nextHeader: P.IPPROTO_TCP }));
      assert.equal(r.retval, XDP_TX);
      const port = snatPort(ctKey(client6, node6, 40006, 30084, P.IPPROTO_TCP, 0));
      assert.deepEqual(r.data, v6(node6, be, P.tcp(node6, be, { sport: port, dport: 8080, flags: P.TCP_SYN }), { nextHeader: P.IPPROTO_TCP, hopLimit: 63 }, peerMac, ext0Mac));
      const back = run(v6(be, node6, P.tcp(be, node6, { sport: 8080, dport: port, flags: P.TCP_SYN | P.TCP_ACK }), { nextHeader: P.IPPROTO_TCP }, ext0Mac, peerMac));
      assert.equal(back.retval, XDP_TX);
      assert.deepEqual(back.data, v6(node6, client6, P.tcp(node6, client6, { sport: 30084, dport: 40006, flags: P.TCP_SYN | P.TCP_ACK }), { nextHeader: P.IPPROTO_TCP, hopLimit: 63 }, clientMac, ext0Mac));
    });

    it('IPv6 NodePort for a local backend: DNAT only, XDP_PASS', () => {
      service(12, { address: '::', port: 30085, protocol: 'UDP' }, 'nodeport', [backend(121, NODE.localBackend6, 53, 'UDP')]);
      const local = ip6(NODE.localBackend6);
      const r = run(v6(client6, node6, P.udp(client6, node6, 40012, 30085, Buffer.from('q')), { nextHeader: P.IPPROTO_UDP }));
      assert.equal(r.retval, XDP_PASS);
      assert.deepEqual(r.data, v6(client6, local, P.udp(client6, local, 40012, 53, Buffer.from('q')), { nextHeader: P.IPPROTO_UDP }));
      const rev = nat.lookup(ctKey(local, client6, 53, 40012, P.IPPROTO_UDP, 1));
      assert.ok(rev && rev.addr.equals(node6) && P.be16(rev.port) === 30085 && rev.flags === 0);
    });

    it('ExternalIP over UDP: SNAT source from the FIB, and the reply shows the external IP', () => {
      const ext = ip4('203.0.113.50');
      service(6, { address: '203.0.113.50', port: 53, protocol: 'UDP' }, 'external', [backend(61, '10.200.2.8', 5353, 'UDP')]);
      const be = ip4('10.200.2.8');
      const q = Buffer.from('query');
      const r = run(v4(client4, ext, P.udp(client4, ext, 40007, 53, q), { proto: P.IPPROTO_UDP }));
      assert.equal(r.retval, XDP_TX);
      const port = snatPort(ctKey(client4, ext, 40007, 53, P.IPPROTO_UDP, 0));
      assert.deepEqual(r.data, v4(node4, be, P.udp(node4, be, port, 5353, q), { proto: P.IPPROTO_UDP, ttl: 63 }, peerMac, ext0Mac));
      const a = Buffer.from('answer');
      const back = run(v4(be, node4, P.udp(be, node4, 5353, port, a), { proto: P.IPPROTO_UDP }, ext0Mac, peerMac));
      assert.equal(back.retval, XDP_TX);
      assert.deepEqual(back.data, v4(ext, client4, P.udp(ext, client4, 53, 40007, a), { proto: P.IPPROTO_UDP, ttl: 63 }, clientMac, ext0Mac));
    });

    it('ExternalIP whose backend is behind another device: XDP_REDIRECT, that device\'s MACs and address', () => {
      const ext = ip4('203.0.113.51');
      service(7, { address: '203.0.113.51', port: 80, protocol: 'TCP' }, 'external', [backend(71, NODE.otherBackend4, 80)]);
      const be = ip4(NODE.otherBackend4);
      const src = ip4('198.51.100.1');
      const r = run(syn4(ext, 40008, 80));
      assert.equal(r.retval, XDP_REDIRECT);
      const port = snatPort(ctKey(client4, ext, 40008, 80, P.IPPROTO_TCP, 0));
      assert.deepEqual(r.data, v4(src, be, P.tcp(src, be, { sport: port, dport: 80, flags: P.TCP_SYN }), { proto: P.IPPROTO_TCP, ttl: 63 }, P.mac(NODE.ext1PeerMac), P.mac(NODE.ext1Mac)));
      assert.ok(ext1 > 0);
    });

    it('no usable backend: TCP reset (RST+ACK for a SYN, RST at the ACK otherwise)', () => {
      service(8, { address: '0.0.0.0', port: 30090, protocol: 'TCP' }, 'nodeport', []);
      const before = natCount();
      const r = run(v4(client4, node4, P.tcp(client4, node4, { sport: 40010, dport: 30090, flags: P.TCP_SYN, seq: 1000 }), { proto: P.IPPROTO_TCP }));
      assert.equal(r.retval, XDP_TX);
      assert.deepEqual(
        r.data,
        v4(node4, client4, tcpWindow0(node4, client4, { sport: 30090, dport: 40010, flags: P.TCP_RST | P.TCP_ACK, seq: 0, ack: 1001 }), { proto: P.IPPROTO_TCP, id: 0, ttl: 64 }, clientMac, ext0Mac),
      );
      const data = Buffer.from('GET /');
      const r2 = run(v4(client4, node4, P.tcp(client4, node4, { sport: 40010, dport: 30090, flags: P.TCP_ACK | P.TCP_PSH, seq: 1001, ack: 777, payload: data }), { proto: P.IPPROTO_TCP }));
      assert.equal(r2.retval, XDP_TX);
      assert.deepEqual(r2.data, v4(node4, client4, tcpWindow0(node4, client4, { sport: 30090, dport: 40010, flags: P.TCP_RST, seq: 777, ack: 0 }), { proto: P.IPPROTO_TCP, id: 0, ttl: 64 }, clientMac, ext0Mac));
      const v6r = run(v6(client6, node6, P.tcp(client6, node6, { sport: 40010, dport: 30090, flags: P.TCP_SYN, seq: 5 }), { nextHeader: P.IPPROTO_TCP }));
      assert.equal(v6r.retval, XDP_PASS, 'no IPv6 frontend at that port: passed');
      assert.equal(natCount(), before, 'a refusal writes nothing');
    });

    it('no usable backend: ICMP and ICMPv6 port unreachable quoting the datagram', () => {
      service(9, { address: '0.0.0.0', port: 30091, protocol: 'UDP' }, 'nodeport', []);
      service(10, { address: '::', port: 30091, protocol: 'UDP' }, 'nodeport', []);
      const ip = P.ipv4({ src: client4, dst: node4, proto: P.IPPROTO_UDP }, P.udp(client4, node4, 40011, 30091, Buffer.from('some payload here')));
      const r = run(P.eth(ext0Mac, clientMac, P.ETH_P_IP, ip));
      assert.equal(r.retval, XDP_TX);
      const quote4 = Buffer.concat([Buffer.alloc(4), ip.subarray(0, 28)]);
      assert.deepEqual(r.data, v4(node4, client4, P.icmp4(3, 3, quote4), { proto: P.IPPROTO_ICMP, id: 0, fragOff: 0, ttl: 64 }, clientMac, ext0Mac));
      const ip6h = P.ipv6({ src: client6, dst: node6, nextHeader: P.IPPROTO_UDP }, P.udp(client6, node6, 40011, 30091, Buffer.from('some payload here')));
      const r6 = run(P.eth(ext0Mac, clientMac, P.ETH_P_IPV6, ip6h));
      assert.equal(r6.retval, XDP_TX);
      const quote6 = Buffer.concat([Buffer.alloc(4), ip6h.subarray(0, 48)]);
      assert.deepEqual(r6.data, v6(node6, client6, P.icmp6(node6, client6, 1, 4, quote6), { nextHeader: P.IPPROTO_ICMPV6, hopLimit: 64 }, clientMac, ext0Mac));
    });

    it('NodePort answers at the node addresses as they change; an ExternalIP at a node address wins at its port', () => {
      const extra = ip4('203.0.113.50');
      service(20, { address: '0.0.0.0', port: 30095, protocol: 'TCP' }, 'nodeport', [backend(20, NODE.remoteBackend4, 8080)]);
      const notYet = syn4(extra, 40030, 30095);
      assert.deepEqual(run(notYet).data, notYet, 'not a node address yet: passed untouched');
      assert.equal(run(notYet).retval, XDP_PASS);

      maps.setNodeAddresses([NODE.node4, NODE.node6, '203.0.113.50']);
      assert.equal(run(syn4(extra, 40031, 30095)).retval, XDP_TX, 'a node address now: balanced');
      const fwd = fwdEntry(ctKey(client4, extra, 40031, 30095, P.IPPROTO_TCP, 0));
      assert.equal(fwd?.serviceId, 20);
      assert.deepEqual(fwd?.addr2.subarray(0, 4), extra, 'SNAT source: the node address the client used');

      maps.setNodeAddresses([NODE.node4, NODE.node6]);
      const gone = syn4(extra, 40032, 30095);
      assert.equal(run(gone).retval, XDP_PASS, 'no longer a node address: passed');
      assert.deepEqual(run(gone).data, gone);

      service(21, { address: NODE.node4, port: 30095, protocol: 'TCP' }, 'external', [backend(21, NODE.remoteBackend4, 9090)]);
      assert.equal(run(syn4(node4, 40033, 30095)).retval, XDP_TX);
      assert.equal(fwdEntry(ctKey(client4, node4, 40033, 30095, P.IPPROTO_TCP, 0))?.serviceId, 21, 'the ExternalIP frontend wins');
      maps.deleteFrontend({ address: NODE.node4, port: 30095, protocol: 'TCP' }, 'external');
      assert.equal(run(syn4(node4, 40034, 30095)).retval, XDP_TX);
      assert.equal(fwdEntry(ctKey(client4, node4, 40034, 30095, P.IPPROTO_TCP, 0))?.serviceId, 20, 'the NodePort frontend again');
      maps.deleteFrontend({ address: '0.0.0.0', port: 30095, protocol: 'TCP' }, 'nodeport');
      const none = syn4(node4, 40035, 30095);
      assert.equal(run(none).retval, XDP_PASS, 'no frontend left at that port');
      assert.deepEqual(run(none).data, none);
    });

    it('passes untouched, writing nothing: no frontend, other protocols, IPv4 options, fragments, truncated headers, ARP', () => {
      const before = natCount();
      const cases: Array<[string, Buffer]> = [
        ['a node address at a port without a frontend', syn4(node4, 40020, 22)],
        ['an address that is not the node\'s', syn4(ip4('203.0.113.99'), 40020, 30080)],
        ['ICMP echo to a node address', v4(client4, node4, P.icmp4(8, 0, P.echoBody(1, 1)), { proto: P.IPPROTO_ICMP })],
        ['IPv4 options', v4(client4, node4, P.tcp(client4, node4, { sport: 40021, dport: 30080, flags: P.TCP_SYN }), { proto: P.IPPROTO_TCP, options: Buffer.from([1, 1, 1, 0]) })],
        ['a fragment', v4(client4, node4, P.tcp(client4, node4, { sport: 40022, dport: 30080, flags: P.TCP_SYN }), { proto: P.IPPROTO_TCP, fragOff: 0x2000 })],
        ['a truncated TCP header', v4(client4, node4, P.tcp(client4, node4, { sport: 40023, dport: 30080, flags: P.TCP_SYN }).subarray(0, 12), { proto: P.IPPROTO_TCP })],
        ['IPv6 with a hop-by-hop header', v6(client6, node6, Buffer.concat([P.hopByHopRouterAlert(P.IPPROTO_TCP), P.tcp(client6, node6, { sport: 40024, dport: 30083, flags: P.TCP_SYN })]), { nextHeader: P.IPPROTO_HOPOPTS })],
        ['an Ethernet header without its IPv4 header', P.eth(ext0Mac, clientMac, P.ETH_P_IP, Buffer.alloc(0))],
        ['an IPv4 header shorter than 20 bytes', P.eth(ext0Mac, clientMac, P.ETH_P_IP, P.ipv4({ src: client4, dst: node4, proto: P.IPPROTO_TCP }, Buffer.alloc(0)).subarray(0, 12))],
        ['ARP', P.eth(Buffer.alloc(6, 0xff), clientMac, P.ETH_P_ARP, P.arp({ op: 1, sha: clientMac, spa: client4, tha: Buffer.alloc(6), tpa: node4 }))],
      ];
      for (const [what, pkt] of cases) {
        const r = run(pkt);
        assert.equal(r.retval, XDP_PASS, what);
        assert.deepEqual(r.data, pkt, what);
      }
      assert.equal(natCount(), before);
    });

    it('counts what it did in tnd_xdp_stats', () => {
      const s = XdpLb.stats(paths);
      for (const k of ['TND_XDP_PASSED', 'TND_XDP_TX', 'TND_XDP_REDIRECTED', 'TND_XDP_TO_LOCAL', 'TND_XDP_REFUSED', 'TND_XDP_SNAT_REPLIES'])
        assert.ok((s[k] ?? 0) > 0, `${k}: ${JSON.stringify(s)}`);
      assert.equal(s.TND_XDP_ERRORS, 0);
      assert.ok(XDP_DROP);
    });
  });
}
