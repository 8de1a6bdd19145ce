/**
 * Per-packet load balancing in lxc.o (bpf/lib/lb_nat.h, bpf/lib/reject.h),
 * through BPF_PROG_TEST_RUN on the real programs and maps: exact bytes in,
 * exact verdict and bytes out. Expected packets are built by packets.ts
 * from the RFCs (checksums included), so a byte-for-byte match also checks
 * every checksum the datapath rewrote; checksums are verified on their own
 * too, so a mismatch says which one is wrong.
 *
 * Not covered here: a CHECKSUM_PARTIAL skb. BPF_PROG_TEST_RUN builds its skb
 * with ip_summed CHECKSUM_NONE and lets no test set it (struct __sk_buff
 * has no such field), so nat.h's tc variant runs here on whole checksums
 * only; the partial case is the kernel's inet_proto_csum_replace*, reached
 * with BPF_F_PSEUDO_HDR on address changes only (ports are not part of the
 * pseudo-header), which the end-to-end service tests exercise.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TndCtFlags, TndCtDir, TndEventType, TndDropReason, TndLbNatDir, TndLbNatFlags, TndFamily, TndMark } from '../../src/bpf/generated/wire.js';
import { PROTO_TCP } from '../../src/common/policy-entry.js';
import { dropReasonText } from '../../src/monitor/event.js';
import * as P from './packets.js';
import {
  Datapath,
  POD,
  PEER,
  OUTSIDE4,
  OUTSIDE6,
  TC_ACT_OK,
  TC_ACT_SHOT,
  TC_ACT_REDIRECT,
  addr16,
  assertEvent,
  fromPod,
  toPod,
  fromPeer,
  tuple,
  verdictName,
  skbWithMark,
  type RunResult,
} from './lxc-harness.js';

const FRONT4 = P.ip4('10.96.0.10');
const FRONT6 = P.ip6('fd10:96::10');
const REMOTE4 = P.ip4('10.200.1.5'); // a backend on another node
const REMOTE4B = P.ip4('10.200.1.6');
const REMOTE6 = P.ip6('fd10:200:1::5');
const SNAT4 = P.ip4('10.200.0.250'); // an address XDP's SNAT would use
const FPORT = 80;
const BPORT = 8080;
const CPORT = 40000;
const SVC = 1;
const TABLE = 1;
const B1 = 11;
const B2 = 12;

const { TCP_SYN: SYN, TCP_ACK: ACK, TCP_RST: RST } = P;

function verdict(r: RunResult, want: number): void {
  assert.equal(verdictName(r.retval), verdictName(want), `verdict (events: ${JSON.stringify(r.events.map((e) => e.reason))})`);
}

/** A TCP segment in an IPv4 or IPv6 packet, by the address size. */
function tcpPkt(src: Buffer, dst: Buffer, sport: number, dport: number, flags: number, o: { seq?: number; ack?: number; ttl?: number; window?: number; payload?: Buffer } = {}): Buffer {
  const seg = P.tcp(src, dst, { sport, dport, flags, ...o });
  if (src.length === 4) return P.ipv4({ src, dst, proto: P.IPPROTO_TCP, ttl: o.ttl ?? 64 }, seg);
  return P.ipv6({ src, dst, nextHeader: P.IPPROTO_TCP, hopLimit: o.ttl ?? 64 }, seg);
}

function udpPkt(src: Buffer, dst: Buffer, sport: number, dport: number, payload = Buffer.from('tendril-udp')): Buffer {
  const seg = P.udp(src, dst, sport, dport, payload);
  if (src.length === 4) return P.ipv4({ src, dst, proto: P.IPPROTO_UDP }, seg);
  return P.ipv6({ src, dst, nextHeader: P.IPPROTO_UDP }, seg);
}

const ethType = (a: Buffer) => (a.length === 4 ? P.ETH_P_IP : P.ETH_P_IPV6);

/** Independent checks of the IP and L4 checksums of an Ethernet frame. */
function assertChecksums(frame: Buffer, what: string): void {
  const ip = frame.subarray(14);
  if (frame.readUInt16BE(12) === P.ETH_P_IP) {
    assert.ok(P.ipv4ChecksumOk(ip), `${what}: IPv4 header checksum`);
    const ihl = (ip[0]! & 0x0f) * 4;
    const proto = ip[9]!;
    const seg = ip.subarray(ihl, ip.readUInt16BE(2));
    if (proto === P.IPPROTO_ICMP) assert.equal(P.inetChecksum(seg), 0, `${what}: ICMP checksum`);
    else assert.ok(P.l4ChecksumOk(seg, ip.subarray(12, 16), ip.subarray(16, 20), proto), `${what}: L4 checksum`);
  } else {
    const seg = ip.subarray(40, 40 + ip.readUInt16BE(4));
    assert.ok(P.l4ChecksumOk(seg, ip.subarray(8, 24), ip.subarray(24, 40), ip[6]!), `${what}: L4 checksum`);
  }
}

/** A service at front:FPORT with one backend (B1 at backend:BPORT) in its table, or `backends` given. */
function oneService(dp: Datapath, front: Buffer, backend: Buffer, o: { proto?: number; affinity?: number } = {}): void {
  const proto = o.proto ?? P.IPPROTO_TCP;
  dp.lb.backend(B1, { addr: backend, port: BPORT, proto });
  dp.lb.maglev(TABLE, [B1]);
  dp.lb.service({ addr: front, port: FPORT, proto, id: SVC, maglevId: TABLE, activeBackends: 1, ...(o.affinity ? { affinityTimeoutS: o.affinity } : {}) });
}

describe('lxc.o per-packet LB: a pod reaching a service', () => {
  for (const [fam, front, backend] of [
    ['IPv4', FRONT4, REMOTE4],
    ['IPv6', FRONT6, REMOTE6],
  ] as const) {
    const podIp = fam === 'IPv4' ? POD.ip4 : POD.ip6;
    it(`${fam}: a first SYN to the frontend leaves DNATed to the backend, with FWD, REV, a counted connection and an LB conntrack entry`, () => {
      using dp = new Datapath();
      oneService(dp, front, backend);
      const r = dp.run('from_container', fromPod(ethType(front), tcpPkt(podIp, front, CPORT, FPORT, SYN)));
      verdict(r, TC_ACT_OK); // not a local endpoint: the node's stack routes it
      const want = fromPod(ethType(front), tcpPkt(podIp, backend, CPORT, BPORT, SYN));
      assert.deepEqual(r.data, want);
      assertChecksums(r.data, 'DNATed SYN');

      const fwd = dp.lb.nat(tuple(podIp, front, CPORT, FPORT), TndLbNatDir.TND_LB_NAT_FWD);
      assert.ok(fwd, 'FWD entry');
      assert.deepEqual([fwd.addr, fwd.port, fwd.backendId, fwd.serviceId, fwd.flags], [addr16(backend), P.be16(BPORT), B1, SVC, 0]);
      const rev = dp.lb.nat(tuple(backend, podIp, BPORT, CPORT), TndLbNatDir.TND_LB_NAT_REV);
      assert.ok(rev, 'REV entry');
      assert.deepEqual([rev.addr, rev.port, rev.backendId, rev.flags], [addr16(front), P.be16(FPORT), B1, TndLbNatFlags.TND_LB_NAT_F_AT_CLIENT]);
      assert.equal(dp.lb.connections(B1), 1);
      const ct = dp.ct(tuple(podIp, backend, CPORT, BPORT), TndCtDir.TND_CT_EGRESS);
      assert.ok(ct, 'the egress entry is keyed by the translated tuple');
      assert.equal(ct.flags, TndCtFlags.TND_CT_F_LB);
    });

    it(`${fam}: the backend's reply gets the frontend as source before it enters the pod`, () => {
      using dp = new Datapath();
      oneService(dp, front, backend);
      verdict(dp.run('from_container', fromPod(ethType(front), tcpPkt(podIp, front, CPORT, FPORT, SYN))), TC_ACT_OK);
      const reply = toPod(ethType(front), tcpPkt(backend, podIp, BPORT, CPORT, SYN | ACK, { seq: 5000, ack: 1001 }));
      const r = dp.run('to_container', reply);
      verdict(r, TC_ACT_OK);
      assert.deepEqual(r.data, toPod(ethType(front), tcpPkt(front, podIp, FPORT, CPORT, SYN | ACK, { seq: 5000, ack: 1001 })));
      assertChecksums(r.data, 'reverse-NATed reply');
      // The second packet of the flow takes FWD: still one connection.
      const ack = dp.run('from_container', fromPod(ethType(front), tcpPkt(podIp, front, CPORT, FPORT, ACK, { seq: 1001, ack: 5001 })));
      assert.deepEqual(ack.data, fromPod(ethType(front), tcpPkt(podIp, backend, CPORT, BPORT, ACK, { seq: 1001, ack: 5001 })));
      assert.equal(dp.lb.connections(B1), 1);
    });

    it(`${fam}: a UDP datagram to a UDP frontend is DNATed and its answer reverse-NATed`, () => {
      using dp = new Datapath();
      oneService(dp, front, backend, { proto: P.IPPROTO_UDP });
      const r = dp.run('from_container', fromPod(ethType(front), udpPkt(podIp, front, CPORT, FPORT)));
      verdict(r, TC_ACT_OK);
      assert.deepEqual(r.data, fromPod(ethType(front), udpPkt(podIp, backend, CPORT, BPORT)));
      assertChecksums(r.data, 'DNATed UDP');
      const back = dp.run('to_container', toPod(ethType(front), udpPkt(backend, podIp, BPORT, CPORT, Buffer.from('answer'))));
      verdict(back, TC_ACT_OK);
      assert.deepEqual(back.data, toPod(ethType(front), udpPkt(front, podIp, FPORT, CPORT, Buffer.from('answer'))));
    });
  }

  it('a TCP frontend does not catch UDP to the same address and port', () => {
    using dp = new Datapath();
    oneService(dp, FRONT4, REMOTE4);
    const pkt = fromPod(P.ETH_P_IP, udpPkt(POD.ip4, FRONT4, CPORT, FPORT));
    const r = dp.run('from_container', pkt);
    verdict(r, TC_ACT_OK);
    assert.deepEqual(r.data, pkt);
    assert.equal(dp.lb.natCount(), 0);
  });

  it('a local backend: the SYN is delivered into it translated, its reply into the pod as the frontend', () => {
    using dp = new Datapath();
    oneService(dp, FRONT4, PEER.ip4);
    const r = dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT, FPORT, SYN)));
    verdict(r, TC_ACT_REDIRECT);
    assert.deepEqual(r.data, P.eth(PEER.mac, PEER.routerMac, P.ETH_P_IP, tcpPkt(POD.ip4, PEER.ip4, CPORT, BPORT, SYN, { ttl: 63 })));
    assertChecksums(r.data, 'SYN into the backend');
    assert.equal(r.events.filter((e) => e.type === TndEventType.TND_EVENT_DROP).length, 0);

    const back = dp.run('peer_from_container', fromPeer(P.ETH_P_IP, tcpPkt(PEER.ip4, POD.ip4, BPORT, CPORT, SYN | ACK, { seq: 7000, ack: 1001 })));
    verdict(back, TC_ACT_REDIRECT);
    assert.deepEqual(back.data, toPod(P.ETH_P_IP, tcpPkt(FRONT4, POD.ip4, FPORT, CPORT, SYN | ACK, { seq: 7000, ack: 1001, ttl: 63 })));
    assertChecksums(back.data, 'reply into the client');
  });

  it('the egress policy judges the backend and its port, not the frontend', () => {
    using dp = new Datapath();
    oneService(dp, FRONT4, REMOTE4);
    const allow = (port: number) => [{ direction: 'egress' as const, identity: 0, protocol: PROTO_TCP, port, portPrefixLen: 16, verdict: 'allow' as const, ruleId: 7 }];
    dp.policy.install(POD.id, allow(FPORT));
    const denied = dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT, FPORT, SYN)));
    verdict(denied, TC_ACT_SHOT);
    assertEvent(denied.events[0]!, { type: TndEventType.TND_EVENT_DROP, reason: TndDropReason.DROP_POLICY_DENIED, dport: P.be16(BPORT), daddr: addr16(REMOTE4) }, 'drop');
    dp.policy.install(POD.id, allow(BPORT));
    verdict(dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT + 1, FPORT, SYN))), TC_ACT_OK);
  });
});

describe('lxc.o per-packet LB: backend choice', () => {
  it('an established flow keeps its backend after the Maglev table changed; a new flow takes the new table', () => {
    using dp = new Datapath();
    oneService(dp, FRONT4, REMOTE4);
    dp.lb.backend(B2, { addr: REMOTE4B, port: BPORT });
    verdict(dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT, FPORT, SYN))), TC_ACT_OK);
    dp.lb.maglev(TABLE, [B2]);
    const est = dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT, FPORT, ACK, { seq: 1001, ack: 1 })));
    assert.deepEqual(est.data, fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, REMOTE4, CPORT, BPORT, ACK, { seq: 1001, ack: 1 })));
    const fresh = dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT + 1, FPORT, SYN)));
    assert.deepEqual(fresh.data, fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, REMOTE4B, CPORT + 1, BPORT, SYN)));
    assert.deepEqual([dp.lb.connections(B1), dp.lb.connections(B2)], [1, 1]);
  });

  it('a terminating backend keeps its flow; new flows skip it; a deleted backend loses it', () => {
    using dp = new Datapath();
    oneService(dp, FRONT4, REMOTE4);
    dp.lb.backend(B2, { addr: REMOTE4B, port: BPORT });
    verdict(dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT, FPORT, SYN))), TC_ACT_OK);
    dp.lb.backend(B1, { addr: REMOTE4, port: BPORT, terminating: true });
    dp.lb.maglev(TABLE, [B1, B2]); // the table still names B1: lb_select passes over it
    const est = dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT, FPORT, ACK, { seq: 1001, ack: 1 })));
    assert.deepEqual(est.data, fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, REMOTE4, CPORT, BPORT, ACK, { seq: 1001, ack: 1 })));
    for (let i = 1; i <= 6; i++) {
      const r = dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT + i, FPORT, SYN)));
      assert.deepEqual(r.data, fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, REMOTE4B, CPORT + i, BPORT, SYN)), `new flow ${i}`);
    }
    dp.lb.deleteBackend(B1);
    const moved = dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT, FPORT, ACK, { seq: 1001, ack: 1 })));
    assert.deepEqual(moved.data, fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, REMOTE4B, CPORT, BPORT, ACK, { seq: 1001, ack: 1 })));
  });

  it('without affinity flows spread over the table; with it, every flow of a client goes to its first backend', () => {
    const backendOf = (r: RunResult) => r.data.subarray(14 + 16, 14 + 20).toString('hex');
    {
      using dp = new Datapath();
      oneService(dp, FRONT4, REMOTE4);
      dp.lb.backend(B2, { addr: REMOTE4B, port: BPORT });
      dp.lb.maglev(TABLE, [B1, B2]);
      const seen = new Set<string>();
      for (let i = 0; i < 16; i++) seen.add(backendOf(dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT + i, FPORT, SYN)))));
      assert.equal(seen.size, 2, 'two backends used');
    }
    using dp = new Datapath();
    oneService(dp, FRONT4, REMOTE4, { affinity: 3600 });
    dp.lb.backend(B2, { addr: REMOTE4B, port: BPORT });
    dp.lb.maglev(TABLE, [B1, B2]);
    const first = backendOf(dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT, FPORT, SYN))));
    for (let i = 1; i < 16; i++)
      assert.equal(backendOf(dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT + i, FPORT, SYN)))), first, `flow ${i}`);
    assert.equal(dp.lb.connections(B1) + dp.lb.connections(B2), 16);
  });
});

describe('lxc.o per-packet LB: a service without backends refuses at once', () => {
  function noBackends(dp: Datapath, front: Buffer, proto: number): void {
    dp.lb.service({ addr: front, port: FPORT, proto, id: SVC, maglevId: TABLE, activeBackends: 0 });
  }

  function assertRefused(dp: Datapath, r: RunResult, want: Buffer): void {
    verdict(r, TC_ACT_REDIRECT);
    assert.deepEqual(r.data, want);
    assertChecksums(r.data, 'refusal');
    assert.equal(r.events.length, 1);
    assertEvent(r.events[0]!, { type: TndEventType.TND_EVENT_DROP, reason: TndDropReason.DROP_NO_SERVICE_BACKEND, endpointId: POD.id }, 'drop');
    assert.equal(dropReasonText(r.events[0]!.reason), 'service has no backend (refused)', 'as tendril monitor shows it');
    assert.equal(dp.lb.natCount(), 0);
    assert.equal(dp.ctCount(), 0);
    // Marked as our own reply: to_container lets it into the pod.
    assert.equal(r.ctx?.readUInt32LE(8), TndMark.TND_MARK_LOCAL_REPLY);
  }

  for (const [fam, front] of [
    ['IPv4', FRONT4],
    ['IPv6', FRONT6],
  ] as const) {
    const podIp = fam === 'IPv4' ? POD.ip4 : POD.ip6;
    const rstIp = (seg: Buffer) =>
      fam === 'IPv4' ? P.ipv4({ src: front, dst: podIp, proto: P.IPPROTO_TCP, id: 0, fragOff: 0x4000 }, seg) : P.ipv6({ src: front, dst: podIp, nextHeader: P.IPPROTO_TCP }, seg);

    it(`${fam}: a SYN gets RST+ACK acknowledging it, from the frontend`, () => {
      using dp = new Datapath();
      noBackends(dp, front, P.IPPROTO_TCP);
      const r = dp.run('from_container', fromPod(ethType(front), tcpPkt(podIp, front, CPORT, FPORT, SYN, { seq: 1000 })), skbWithMark(0));
      const seg = P.tcp(front, podIp, { sport: FPORT, dport: CPORT, flags: RST | ACK, seq: 0, ack: 1001, window: 0 });
      assertRefused(dp, r, toPod(ethType(front), rstIp(seg)));
    });

    it(`${fam}: a segment with ACK and data gets a RST with its ACK number as sequence`, () => {
      using dp = new Datapath();
      noBackends(dp, front, P.IPPROTO_TCP);
      const r = dp.run('from_container', fromPod(ethType(front), tcpPkt(podIp, front, CPORT, FPORT, ACK, { seq: 1000, ack: 0xdeadbeef, payload: Buffer.from('GET /') })), skbWithMark(0));
      const seg = P.tcp(front, podIp, { sport: FPORT, dport: CPORT, flags: RST, seq: 0xdeadbeef, ack: 0, window: 0 });
      assertRefused(dp, r, toPod(ethType(front), rstIp(seg)));
    });

    it(`${fam}: a UDP datagram gets port unreachable quoting its header`, () => {
      using dp = new Datapath();
      noBackends(dp, front, P.IPPROTO_UDP);
      const sent = udpPkt(podIp, front, CPORT, FPORT, Buffer.from('a datagram nobody takes'));
      const r = dp.run('from_container', fromPod(ethType(front), sent), skbWithMark(0));
      const quote = sent.subarray(0, (fam === 'IPv4' ? 20 : 40) + 8);
      const body = Buffer.concat([Buffer.alloc(4), quote]);
      const want =
        fam === 'IPv4'
          ? P.ipv4({ src: front, dst: podIp, proto: P.IPPROTO_ICMP, id: 0, fragOff: 0, tos: 0xc0 }, P.icmp4(3, 3, body))
          : P.ipv6({ src: front, dst: podIp, nextHeader: P.IPPROTO_ICMPV6 }, P.icmp6(front, podIp, 1, 4, body));
      assertRefused(dp, r, toPod(ethType(front), want));
    });
  }

  it('a RST to a service without backends is dropped unanswered', () => {
    using dp = new Datapath();
    noBackends(dp, FRONT4, P.IPPROTO_TCP);
    const r = dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT, FPORT, RST)));
    verdict(r, TC_ACT_SHOT);
    assertEvent(r.events[0]!, { reason: TndDropReason.DROP_NO_SERVICE_BACKEND }, 'drop');
  });

  it('a table naming only terminating backends refuses too', () => {
    using dp = new Datapath();
    oneService(dp, FRONT4, REMOTE4);
    dp.lb.backend(B1, { addr: REMOTE4, port: BPORT, terminating: true });
    const r = dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT, FPORT, SYN)));
    verdict(r, TC_ACT_REDIRECT);
    assertEvent(r.events[0]!, { reason: TndDropReason.DROP_NO_SERVICE_BACKEND }, 'drop');
    assert.equal(dp.lb.connections(B1), 0);
  });
});

describe('lxc.o per-packet LB: the backend side (DSR, flows balanced before the endpoint)', () => {
  for (const [fam, front, client] of [
    ['IPv4', FRONT4, OUTSIDE4],
    ['IPv6', FRONT6, OUTSIDE6],
  ] as const) {
    const podIp = fam === 'IPv4' ? POD.ip4 : POD.ip6;
    /** The SYN as the balancing node sends it: DNATed to POD, the DSR option carrying the frontend. */
    function dsrSyn(opt?: Buffer): Buffer {
      const seg = P.tcp(client, podIp, { sport: CPORT, dport: BPORT, flags: SYN });
      if (fam === 'IPv4') return P.ipv4({ src: client, dst: podIp, proto: P.IPPROTO_TCP, options: opt ?? P.dsrOption4(front, FPORT) }, seg);
      return P.ipv6({ src: client, dst: podIp, nextHeader: P.IPPROTO_DSTOPTS }, Buffer.concat([opt ?? P.dsrOption6(P.IPPROTO_TCP, front, FPORT), seg]));
    }

    it(`${fam}: the DSR option is read and removed, REV written, and the backend's reply leaves as the frontend`, () => {
      using dp = new Datapath();
      const r = dp.run('to_container', toPod(ethType(front), dsrSyn()));
      verdict(r, TC_ACT_OK);
      assert.deepEqual(r.data, toPod(ethType(front), tcpPkt(client, podIp, CPORT, BPORT, SYN)));
      assertChecksums(r.data, 'SYN without its option');
      const rev = dp.lb.nat(tuple(podIp, client, BPORT, CPORT), TndLbNatDir.TND_LB_NAT_REV);
      assert.ok(rev, 'REV entry');
      assert.deepEqual([rev.addr, rev.port, rev.flags, rev.family], [
        addr16(front),
        P.be16(FPORT),
        TndLbNatFlags.TND_LB_NAT_F_DSR,
        fam === 'IPv4' ? TndFamily.TND_AF_INET : TndFamily.TND_AF_INET6,
      ]);
      const ct = dp.ct(tuple(client, podIp, CPORT, BPORT), TndCtDir.TND_CT_INGRESS);
      assert.equal(ct?.flags, TndCtFlags.TND_CT_F_LB);

      const reply = dp.run('from_container', fromPod(ethType(front), tcpPkt(podIp, client, BPORT, CPORT, SYN | ACK, { seq: 9000, ack: 1001 })));
      verdict(reply, TC_ACT_OK);
      assert.deepEqual(reply.data, fromPod(ethType(front), tcpPkt(front, client, FPORT, CPORT, SYN | ACK, { seq: 9000, ack: 1001 })));
      assertChecksums(reply.data, 'reply as the frontend');
    });

    it(`${fam}: a malformed DSR option is dropped and changes no map`, () => {
      using dp = new Datapath();
      const bad = fam === 'IPv4' ? P.dsrOption4(front, FPORT, { len: 6 }) : P.dsrOption6(P.IPPROTO_TCP, front, FPORT, { len: 16 });
      const r = dp.run('to_container', toPod(ethType(front), dsrSyn(bad)));
      verdict(r, TC_ACT_SHOT);
      assertEvent(r.events[0]!, { type: TndEventType.TND_EVENT_DROP, reason: TndDropReason.DROP_DSR_INVALID }, 'drop');
      assert.equal(dp.lb.natCount(), 0);
      assert.equal(dp.ctCount(), 0);
    });
  }

  it('IPv4: other IP options are no DSR option and pass untouched', () => {
    using dp = new Datapath();
    const nop4 = Buffer.from([1, 1, 1, 0]); // NOPs and End of Options
    const pkt = toPod(P.ETH_P_IP, P.ipv4({ src: OUTSIDE4, dst: POD.ip4, proto: P.IPPROTO_TCP, options: nop4 }, P.tcp(OUTSIDE4, POD.ip4, { sport: CPORT, dport: BPORT, flags: SYN })));
    const r = dp.run('to_container', pkt);
    verdict(r, TC_ACT_OK);
    assert.deepEqual(r.data, pkt);
    assert.equal(dp.lb.natCount(), 0);
  });

  it('IPv4: a DSR option with a wrong header length (IHL 8) is dropped', () => {
    using dp = new Datapath();
    const opt = Buffer.concat([P.dsrOption4(FRONT4, FPORT), Buffer.from([1, 1, 1, 0])]);
    const pkt = toPod(P.ETH_P_IP, P.ipv4({ src: OUTSIDE4, dst: POD.ip4, proto: P.IPPROTO_TCP, options: opt }, P.tcp(OUTSIDE4, POD.ip4, { sport: CPORT, dport: BPORT, flags: SYN })));
    const r = dp.run('to_container', pkt);
    verdict(r, TC_ACT_SHOT);
    assertEvent(r.events[0]!, { reason: TndDropReason.DROP_DSR_INVALID }, 'drop');
    assert.equal(dp.lb.natCount(), 0);
  });

  it('a REV entry without AT_CLIENT (written as XDP would) flags the backend entry and its reply leaves as the frontend', () => {
    using dp = new Datapath();
    dp.lb.setNat(tuple(POD.ip4, OUTSIDE4, BPORT, CPORT), TndLbNatDir.TND_LB_NAT_REV, {
      addr: addr16(FRONT4),
      addr2: Buffer.alloc(16),
      port: P.be16(FPORT),
      port2: 0,
      backendId: B1,
      serviceId: SVC,
      flags: 0,
      family: TndFamily.TND_AF_INET,
      lastSeenNs: 0n,
    });
    const syn = toPod(P.ETH_P_IP, tcpPkt(OUTSIDE4, POD.ip4, CPORT, BPORT, SYN));
    const r = dp.run('to_container', syn);
    verdict(r, TC_ACT_OK);
    assert.deepEqual(r.data, syn);
    assert.equal(dp.ct(tuple(OUTSIDE4, POD.ip4, CPORT, BPORT), TndCtDir.TND_CT_INGRESS)?.flags, TndCtFlags.TND_CT_F_LB);
    const reply = dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, OUTSIDE4, BPORT, CPORT, SYN | ACK)));
    verdict(reply, TC_ACT_OK);
    assert.deepEqual(reply.data, fromPod(P.ETH_P_IP, tcpPkt(FRONT4, OUTSIDE4, FPORT, CPORT, SYN | ACK)));
  });

  it('a SNAT REV entry rewrites both ends of the reply: frontend as source, the client as destination', () => {
    using dp = new Datapath();
    const snatPort = 61000;
    dp.lb.setNat(tuple(POD.ip4, SNAT4, BPORT, snatPort), TndLbNatDir.TND_LB_NAT_REV, {
      addr: addr16(FRONT4),
      addr2: addr16(OUTSIDE4),
      port: P.be16(FPORT),
      port2: P.be16(CPORT),
      backendId: B1,
      serviceId: SVC,
      flags: TndLbNatFlags.TND_LB_NAT_F_SNAT,
      family: TndFamily.TND_AF_INET,
      lastSeenNs: 0n,
    });
    verdict(dp.run('to_container', toPod(P.ETH_P_IP, tcpPkt(SNAT4, POD.ip4, snatPort, BPORT, SYN))), TC_ACT_OK);
    const reply = dp.run('from_container', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, SNAT4, BPORT, snatPort, SYN | ACK)));
    verdict(reply, TC_ACT_OK);
    assert.deepEqual(reply.data, fromPod(P.ETH_P_IP, tcpPkt(FRONT4, OUTSIDE4, FPORT, CPORT, SYN | ACK)));
    assertChecksums(reply.data, 'SNAT reply');
  });

  it('a REV entry with AT_CLIENT does not flag the backend entry (the client side translates it)', () => {
    using dp = new Datapath();
    dp.lb.setNat(tuple(POD.ip4, OUTSIDE4, BPORT, CPORT), TndLbNatDir.TND_LB_NAT_REV, {
      addr: addr16(FRONT4),
      addr2: Buffer.alloc(16),
      port: P.be16(FPORT),
      port2: 0,
      backendId: B1,
      serviceId: SVC,
      flags: TndLbNatFlags.TND_LB_NAT_F_AT_CLIENT,
      family: TndFamily.TND_AF_INET,
      lastSeenNs: 0n,
    });
    verdict(dp.run('to_container', toPod(P.ETH_P_IP, tcpPkt(OUTSIDE4, POD.ip4, CPORT, BPORT, SYN))), TC_ACT_OK);
    assert.equal(dp.ct(tuple(OUTSIDE4, POD.ip4, CPORT, BPORT), TndCtDir.TND_CT_INGRESS)?.flags, 0);
    const reply = fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, OUTSIDE4, BPORT, CPORT, SYN | ACK));
    assert.deepEqual(dp.run('from_container', reply).data, reply);
  });
});

/** An IPv4 frame whose header claims 100 more bytes than it has (checksum kept right). */
function longerThanItIs(frame: Buffer): Buffer {
  const b = Buffer.from(frame);
  b.writeUInt16BE(b.readUInt16BE(16) + 100, 16);
  b.writeUInt16BE(0, 24);
  b.writeUInt16BE(P.inetChecksum(b.subarray(14, 34)), 24);
  return b;
}

describe('lxc.o per-packet LB: bad input changes no map', () => {
  const truncated: Array<[string, Buffer]> = [
    ['a TCP header cut short', fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT, FPORT, SYN)).subarray(0, 14 + 20 + 12)],
    ['an IPv4 length past the end of the packet', longerThanItIs(fromPod(P.ETH_P_IP, tcpPkt(POD.ip4, FRONT4, CPORT, FPORT, SYN)))],
    ['an IPv6 TCP header cut short', fromPod(P.ETH_P_IPV6, tcpPkt(POD.ip6, FRONT6, CPORT, FPORT, SYN)).subarray(0, 14 + 40 + 10)],
  ];
  for (const [what, pkt] of truncated)
    it(`${what} to a frontend is dropped before any lookup writes`, () => {
      using dp = new Datapath();
      oneService(dp, FRONT4, REMOTE4);
      oneService(dp, FRONT6, REMOTE6);
      const r = dp.run('from_container', pkt);
      verdict(r, TC_ACT_SHOT);
      assert.equal(dp.lb.natCount(), 0);
      assert.equal(dp.ctCount(), 0);
      assert.equal(dp.lb.connections(B1), 0);
    });

  it('a DSR option in a truncated IPv6 header chain is dropped', () => {
    using dp = new Datapath();
    const opt = P.dsrOption6(P.IPPROTO_TCP, FRONT6, FPORT);
    const pkt = toPod(P.ETH_P_IPV6, P.ipv6({ src: OUTSIDE6, dst: POD.ip6, nextHeader: P.IPPROTO_DSTOPTS }, opt.subarray(0, 16)));
    const r = dp.run('to_container', pkt);
    verdict(r, TC_ACT_SHOT);
    assert.equal(dp.lb.natCount(), 0);
    assert.equal(dp.ctCount(), 0);
  });
});
