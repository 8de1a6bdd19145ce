/**
 * Packet-level tests of the endpoint datapath (bpf/lxc.c) through
 * BPF_PROG_TEST_RUN: tables of {description, input packet, expected verdict,
 * expected output packet or checks, expected events}, Katran style. Every test
 * loads its own lxc.o, so maps (endpoints, conntrack, events) start empty;
 * both endpoints get an allow-all policy (policy itself: policy.privileged.test.ts).
 * Needs root (loads programs). The set-up is in lxc-harness.ts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  TndCtDir,
  TndEndpointFlags,
  TndCtState,
  TndDropReason,
  TndEvent,
  TndEventType,
  TndFamily,
  TndLxcFlags,
  TndMetricsSlot,
  TndObsPoint,
  tndDropReasonNames,
  tndObsPointNames,
} from '../../src/bpf/generated/wire.js';
import * as P from './packets.js';
import {
  ALL,
  BROADCAST,
  Datapath,
  OUTSIDE4,
  OUTSIDE6,
  PEER,
  POD,
  POD_LL6,
  ROUTER4,
  ROUTER6,
  TC_ACT_OK,
  TC_ACT_REDIRECT,
  TC_ACT_SHOT,
  ZERO_MAC,
  addr16,
  assertEvent,
  echo4,
  echo6,
  fromPeer,
  fromPod,
  tcp4,
  tcp6,
  toPod,
  tuple4,
  verdictName,
  type Prog,
  type RunResult,
} from './lxc-harness.js';

// ------------------------------------------------------------------ packets

function arpRequest(target: Buffer, sender: Buffer = POD.ip4): Buffer {
  return P.eth(BROADCAST, POD.mac, P.ETH_P_ARP, P.arp({ op: 1, sha: POD.mac, spa: sender, tha: ZERO_MAC, tpa: target }));
}

function neighborSolicitation(src: Buffer, target: Buffer, withSllao = true): Buffer {
  const dst = P.solicitedNode(target);
  const opts = withSllao ? P.ndLladdrOption(1, POD.mac) : Buffer.alloc(0);
  const msg = P.icmp6(src, dst, 135, 0, P.ndBody(0, target, opts));
  return P.eth(P.multicastMac(dst), POD.mac, P.ETH_P_IPV6, P.ipv6({ src, dst, nextHeader: P.IPPROTO_ICMPV6, hopLimit: 255 }, msg));
}

/** The advertisement the router owes the pod: written here from RFC 4861, not from the C code. */
function neighborAdvertisement(to: Buffer, target: Buffer): Buffer {
  const msg = P.icmp6(target, to, 136, 0, P.ndBody(0xe0000000, target, P.ndLladdrOption(2, POD.routerMac)));
  return P.eth(POD.mac, POD.routerMac, P.ETH_P_IPV6, P.ipv6({ src: target, dst: to, nextHeader: P.IPPROTO_ICMPV6, hopLimit: 255 }, msg));
}

// ------------------------------------------------------------------ tables

interface Case {
  name: string;
  prog?: Prog;
  flags?: number;
  input: Buffer;
  verdict: number;
  /** Exact expected output bytes. */
  output?: Buffer;
  /** Further checks of the output. */
  check?: (out: Buffer) => void;
  /** Expected single event about POD (fields compared), or null for "no event". */
  event?: Partial<TndEvent> | null;
  /** Expected events in order, all fields to compare given (endpointId, ifindex included). */
  events?: Partial<TndEvent>[];
}

function runCase(c: Case): void {
  using dp = new Datapath({ flags: c.flags ?? ALL });
  const r = dp.run(c.prog ?? 'from_container', c.input);
  const reasons = r.events.map((e) => tndDropReasonNames[e.reason] ?? e.reason).join(',');
  assert.equal(verdictName(r.retval), verdictName(c.verdict), `verdict (drop reasons seen: ${reasons || 'none'})`);
  if (c.output) assert.equal(r.data.toString('hex'), c.output.toString('hex'), 'output packet');
  c.check?.(r.data);
  if (c.event === null) assert.equal(r.events.length, 0, `no event expected, got ${JSON.stringify(r.events)}`);
  if (c.event) {
    assert.equal(r.events.length, 1, `one event expected, got ${r.events.length}`);
    const ev = r.events[0]!;
    assertEvent(ev, c.event, 'event');
    assert.equal(ev.endpointId, POD.id, 'event.endpointId');
    assert.equal(ev.ifindex, POD.ifindex, 'event.ifindex');
  }
  if (c.events) {
    const seen = r.events.map((e) => `${tndObsPointNames[e.obsPoint] ?? e.obsPoint} ep ${e.endpointId} if ${e.ifindex}`).join('; ');
    assert.equal(r.events.length, c.events.length, `${c.events.length} events expected, got: ${seen || 'none'}`);
    c.events.forEach((want, i) => assertEvent(r.events[i]!, want, `events[${i}]`));
  }
}

/** The two traces of a packet forwarded from POD to PEER: leaving POD, entering PEER (on PEER's behalf). */
function forwardTraces(from: Partial<TndEvent> = {}, to: Partial<TndEvent> = from): Partial<TndEvent>[] {
  return [
    { type: TndEventType.TND_EVENT_TRACE, obsPoint: TndObsPoint.TND_OBS_FROM_ENDPOINT, endpointId: POD.id, ifindex: POD.ifindex, targetIfindex: PEER.ifindex, ...from },
    { type: TndEventType.TND_EVENT_TRACE, obsPoint: TndObsPoint.TND_OBS_TO_ENDPOINT, endpointId: PEER.id, ifindex: PEER.ifindex, targetIfindex: 0, ...to },
  ];
}

const drop = (reason: number, obsPoint: number = TndObsPoint.TND_OBS_FROM_ENDPOINT): Partial<TndEvent> => ({
  type: TndEventType.TND_EVENT_DROP,
  reason,
  obsPoint,
});

const ipv4Header = (pkt: Buffer) => pkt.subarray(14, 34);

const responderCases: Case[] = [
  {
    name: 'an ARP request for the router gets the exact ARP reply, sent back to the pod',
    input: arpRequest(ROUTER4),
    verdict: TC_ACT_REDIRECT,
    output: P.eth(POD.mac, POD.routerMac, P.ETH_P_ARP, P.arp({ op: 2, sha: POD.routerMac, spa: ROUTER4, tha: POD.mac, tpa: POD.ip4 })),
    event: { type: TndEventType.TND_EVENT_TRACE, obsPoint: TndObsPoint.TND_OBS_ARP_REPLY, targetIfindex: POD.ifindex, saddr: addr16(POD.ip4), daddr: addr16(ROUTER4) },
  },
  {
    name: 'an ARP request for another address is answered with the router MAC too (onlink /32)',
    input: arpRequest(PEER.ip4),
    verdict: TC_ACT_REDIRECT,
    output: P.eth(POD.mac, POD.routerMac, P.ETH_P_ARP, P.arp({ op: 2, sha: POD.routerMac, spa: PEER.ip4, tha: POD.mac, tpa: POD.ip4 })),
    event: { type: TndEventType.TND_EVENT_TRACE, obsPoint: TndObsPoint.TND_OBS_ARP_REPLY },
  },
  {
    name: 'a gratuitous ARP (the pod asking for its own address) is dropped',
    input: arpRequest(POD.ip4),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_ARP_UNSUPPORTED),
  },
  {
    name: 'the pod\'s ARP reply for its own address (answering the node) goes to the node\'s stack unchanged, without an event',
    input: P.eth(POD.routerMac, POD.mac, P.ETH_P_ARP, P.arp({ op: 2, sha: POD.mac, spa: POD.ip4, tha: POD.routerMac, tpa: ROUTER4 })),
    verdict: TC_ACT_OK,
    output: P.eth(POD.routerMac, POD.mac, P.ETH_P_ARP, P.arp({ op: 2, sha: POD.mac, spa: POD.ip4, tha: POD.routerMac, tpa: ROUTER4 })),
    event: null,
  },
  {
    name: 'an ARP reply from the pod claiming another pod\'s address is dropped as spoofed',
    input: P.eth(POD.routerMac, POD.mac, P.ETH_P_ARP, P.arp({ op: 2, sha: POD.mac, spa: PEER.ip4, tha: POD.routerMac, tpa: ROUTER4 })),
    verdict: TC_ACT_SHOT,
    event: { ...drop(TndDropReason.DROP_INVALID_SOURCE), saddr: addr16(PEER.ip4) },
  },
  {
    name: 'a truncated ARP packet is dropped',
    input: arpRequest(ROUTER4).subarray(0, 30),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_INVALID_ARP),
  },
  {
    name: 'ARP for a pod without IPv4 is dropped',
    flags: TndLxcFlags.TND_LXC_IPV6,
    input: arpRequest(ROUTER4),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_FAMILY_DISABLED),
  },
  {
    name: 'a neighbour solicitation for the router gets the exact advertisement (R, S, O, target MAC, checksum)',
    input: neighborSolicitation(POD_LL6, ROUTER6),
    verdict: TC_ACT_REDIRECT,
    output: neighborAdvertisement(POD_LL6, ROUTER6),
    check: (out) => assert.ok(P.l4ChecksumOk(out.subarray(54), ROUTER6, POD_LL6, P.IPPROTO_ICMPV6), 'ICMPv6 checksum'),
    event: { type: TndEventType.TND_EVENT_TRACE, obsPoint: TndObsPoint.TND_OBS_NDISC_REPLY, targetIfindex: POD.ifindex },
  },
  {
    name: 'a solicitation without a source link-layer option (unicast NUD) gets a grown, complete advertisement',
    input: neighborSolicitation(POD.ip6, ROUTER6, false),
    verdict: TC_ACT_REDIRECT,
    output: neighborAdvertisement(POD.ip6, ROUTER6),
    check: (out) => assert.ok(P.l4ChecksumOk(out.subarray(54), ROUTER6, POD.ip6, P.IPPROTO_ICMPV6), 'ICMPv6 checksum'),
  },
  {
    name: 'a solicitation for another pod is answered for by the router',
    input: neighborSolicitation(POD_LL6, PEER.ip6),
    verdict: TC_ACT_REDIRECT,
    output: neighborAdvertisement(POD_LL6, PEER.ip6),
  },
  {
    name: 'a duplicate address detection probe (source ::) goes to the stack without an event',
    input: neighborSolicitation(P.ip6('::'), POD.ip6, false),
    verdict: TC_ACT_OK,
    event: null,
  },
  {
    name: 'a solicitation for the pod\'s own address goes to the stack without an event',
    input: neighborSolicitation(POD_LL6, POD.ip6),
    verdict: TC_ACT_OK,
    event: null,
  },
  {
    name: 'a router solicitation goes to the stack without an event',
    input: (() => {
      const dst = P.ip6('ff02::2');
      const msg = P.icmp6(POD_LL6, dst, 133, 0, Buffer.alloc(4));
      return P.eth(P.multicastMac(dst), POD.mac, P.ETH_P_IPV6, P.ipv6({ src: POD_LL6, dst, nextHeader: P.IPPROTO_ICMPV6, hopLimit: 255 }, msg));
    })(),
    verdict: TC_ACT_OK,
    event: null,
  },
  {
    name: 'an MLDv2 report (behind a hop-by-hop header) goes to the stack without an event',
    input: (() => {
      const dst = P.ip6('ff02::16');
      const msg = P.icmp6(POD_LL6, dst, 143, 0, Buffer.alloc(4));
      const payload = Buffer.concat([P.hopByHopRouterAlert(P.IPPROTO_ICMPV6), msg]);
      return P.eth(P.multicastMac(dst), POD.mac, P.ETH_P_IPV6, P.ipv6({ src: POD_LL6, dst, nextHeader: P.IPPROTO_HOPOPTS, hopLimit: 1 }, payload));
    })(),
    verdict: TC_ACT_OK,
    event: null,
  },
  {
    name: 'a neighbour solicitation too short for its target is dropped',
    input: (() => {
      const dst = P.solicitedNode(ROUTER6);
      const msg = P.icmp6(POD_LL6, dst, 135, 0, Buffer.alloc(12));
      return P.eth(P.multicastMac(dst), POD.mac, P.ETH_P_IPV6, P.ipv6({ src: POD_LL6, dst, nextHeader: P.IPPROTO_ICMPV6, hopLimit: 255 }, msg));
    })(),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_INVALID_NDISC),
  },
  {
    name: 'an echo request to the router gets the echo reply (addresses swapped, TTL 64, checksums fixed)',
    input: fromPod(P.ETH_P_IP, echo4(8, POD.ip4, ROUTER4, 17)),
    verdict: TC_ACT_REDIRECT,
    output: toPod(P.ETH_P_IP, echo4(0, ROUTER4, POD.ip4, 64)),
    event: { type: TndEventType.TND_EVENT_TRACE, obsPoint: TndObsPoint.TND_OBS_ICMP_REPLY, targetIfindex: POD.ifindex },
  },
  {
    name: 'an ICMPv6 echo request to the router gets the echo reply',
    input: fromPod(P.ETH_P_IPV6, echo6(128, POD.ip6, ROUTER6, 9)),
    verdict: TC_ACT_REDIRECT,
    output: toPod(P.ETH_P_IPV6, echo6(129, ROUTER6, POD.ip6, 64)),
    event: { type: TndEventType.TND_EVENT_TRACE, obsPoint: TndObsPoint.TND_OBS_ICMP_REPLY },
  },
  {
    name: 'an ICMPv6 echo request to a link-local router from the pod\'s link-local address is answered',
    input: fromPod(P.ETH_P_IPV6, echo6(128, POD_LL6, ROUTER6, 9)),
    verdict: TC_ACT_REDIRECT,
    output: toPod(P.ETH_P_IPV6, echo6(129, ROUTER6, POD_LL6, 64)),
    event: { type: TndEventType.TND_EVENT_TRACE, obsPoint: TndObsPoint.TND_OBS_ICMP_REPLY },
  },
  {
    name: 'an ICMPv6 echo request to the router from a spoofed global source is dropped',
    input: fromPod(P.ETH_P_IPV6, echo6(128, PEER.ip6, ROUTER6)),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_INVALID_SOURCE),
  },
  {
    name: 'an echo request to the router from a spoofed source is dropped, not answered',
    input: fromPod(P.ETH_P_IP, echo4(8, PEER.ip4, ROUTER4)),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_INVALID_SOURCE),
  },
];

const forwardCases: Case[] = [
  {
    name: 'IPv4 TCP to a local endpoint is delivered into it (MACs rewritten, TTL decremented) and traced leaving POD and entering PEER',
    input: fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_SYN)),
    verdict: TC_ACT_REDIRECT,
    output: P.eth(PEER.mac, PEER.routerMac, P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_SYN, { ttl: 63 })),
    check: (out) => assert.ok(P.ipv4ChecksumOk(ipv4Header(out)), 'IPv4 header checksum'),
    events: forwardTraces({
      ctState: TndCtState.TND_CT_NEW,
      tcpFlags: P.TCP_SYN,
      family: TndFamily.TND_AF_INET,
      proto: P.IPPROTO_TCP,
      sport: P.be16(40000),
      dport: P.be16(80),
      saddr: addr16(POD.ip4),
      daddr: addr16(PEER.ip4),
    }),
  },

  {
    name: 'IPv6 UDP to a known endpoint is redirected with MACs rewritten and hop limit decremented',
    input: fromPod(P.ETH_P_IPV6, P.ipv6({ src: POD.ip6, dst: PEER.ip6, nextHeader: P.IPPROTO_UDP }, P.udp(POD.ip6, PEER.ip6, 5353, 53, Buffer.from('query')))),
    verdict: TC_ACT_REDIRECT,
    output: P.eth(PEER.mac, PEER.routerMac, P.ETH_P_IPV6, P.ipv6({ src: POD.ip6, dst: PEER.ip6, nextHeader: P.IPPROTO_UDP, hopLimit: 63 }, P.udp(POD.ip6, PEER.ip6, 5353, 53, Buffer.from('query')))),
    events: forwardTraces({ family: TndFamily.TND_AF_INET6, proto: P.IPPROTO_UDP, saddr: POD.ip6, daddr: PEER.ip6 }),
  },
  {
    name: 'a ping to another endpoint is forwarded, not answered',
    input: fromPod(P.ETH_P_IP, echo4(8, POD.ip4, PEER.ip4)),
    verdict: TC_ACT_REDIRECT,
    output: P.eth(PEER.mac, PEER.routerMac, P.ETH_P_IP, echo4(8, POD.ip4, PEER.ip4, 63)),
    events: forwardTraces({ sport: P.be16(0x4242), dport: 0, proto: P.IPPROTO_ICMP }),
  },
  {
    name: 'IPv4 with options is parsed past the options and forwarded',
    input: fromPod(P.ETH_P_IP, P.ipv4({ src: POD.ip4, dst: PEER.ip4, proto: P.IPPROTO_UDP, options: Buffer.from([1, 1, 1, 0]) }, P.udp(POD.ip4, PEER.ip4, 1000, 2000, Buffer.from('x')))),
    verdict: TC_ACT_REDIRECT,
    events: forwardTraces({ sport: P.be16(1000), dport: P.be16(2000) }),
  },
  {
    name: 'IPv4 to a destination that is no local endpoint goes to the node\'s stack unchanged (no MAC or TTL rewrite), traced leaving POD',
    input: fromPod(P.ETH_P_IP, tcp4(POD.ip4, OUTSIDE4, P.TCP_SYN)),
    verdict: TC_ACT_OK,
    output: fromPod(P.ETH_P_IP, tcp4(POD.ip4, OUTSIDE4, P.TCP_SYN)),
    event: { type: TndEventType.TND_EVENT_TRACE, obsPoint: TndObsPoint.TND_OBS_FROM_ENDPOINT, targetIfindex: 0, ctState: TndCtState.TND_CT_NEW, daddr: addr16(OUTSIDE4), proto: P.IPPROTO_TCP },
  },
  {
    name: 'IPv6 to a destination that is no local endpoint goes to the node\'s stack unchanged',
    input: fromPod(P.ETH_P_IPV6, tcp6(POD.ip6, OUTSIDE6, P.TCP_SYN)),
    verdict: TC_ACT_OK,
    output: fromPod(P.ETH_P_IPV6, tcp6(POD.ip6, OUTSIDE6, P.TCP_SYN)),
    event: { type: TndEventType.TND_EVENT_TRACE, obsPoint: TndObsPoint.TND_OBS_FROM_ENDPOINT, targetIfindex: 0, daddr: OUTSIDE6 },
  },
  {
    name: 'TCP to the router address (not an endpoint) goes to the node\'s stack',
    input: fromPod(P.ETH_P_IP, tcp4(POD.ip4, ROUTER4, P.TCP_SYN)),
    verdict: TC_ACT_OK,
    output: fromPod(P.ETH_P_IP, tcp4(POD.ip4, ROUTER4, P.TCP_SYN)),
  },
  {
    name: 'TTL 1 to a destination that is no local endpoint is the stack\'s to handle (it sends time exceeded)',
    input: fromPod(P.ETH_P_IP, tcp4(POD.ip4, OUTSIDE4, P.TCP_SYN, { ttl: 1 })),
    verdict: TC_ACT_OK,
    output: fromPod(P.ETH_P_IP, tcp4(POD.ip4, OUTSIDE4, P.TCP_SYN, { ttl: 1 })),
  },
  // The kernel's test run refuses IPv4/IPv6 frames shorter than the fixed
  // header itself (EINVAL), so truncation is tested with headers that claim
  // more than the frame holds.
  {
    name: 'a truncated IPv4 header (IHL says 60 bytes, the frame holds 20) is dropped',
    input: (() => {
      const ip = P.ipv4({ src: POD.ip4, dst: PEER.ip4, proto: P.IPPROTO_TCP }, Buffer.alloc(0));
      ip[0] = 0x4f;
      return fromPod(P.ETH_P_IP, ip);
    })(),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_TRUNCATED_IPV4),
  },
  {
    name: 'IPv4 whose IHL says less than 20 bytes is dropped',
    input: (() => {
      const ip = tcp4(POD.ip4, PEER.ip4, P.TCP_SYN);
      ip[0] = 0x44;
      return fromPod(P.ETH_P_IP, ip);
    })(),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_TRUNCATED_IPV4),
  },
  {
    name: 'IPv4 whose total length runs past the packet is dropped',
    input: (() => {
      const ip = tcp4(POD.ip4, PEER.ip4, P.TCP_SYN);
      ip.writeUInt16BE(ip.length + 100, 2);
      return fromPod(P.ETH_P_IP, ip);
    })(),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_TRUNCATED_IPV4),
  },
  {
    name: 'IPv6 whose payload length runs past the frame is dropped',
    input: (() => {
      const ip = tcp6(POD.ip6, PEER.ip6, P.TCP_SYN);
      ip.writeUInt16BE(200, 4);
      return fromPod(P.ETH_P_IPV6, ip);
    })(),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_TRUNCATED_IPV6),
  },
  {
    name: 'a truncated TCP header is dropped',
    input: fromPod(P.ETH_P_IP, P.ipv4({ src: POD.ip4, dst: PEER.ip4, proto: P.IPPROTO_TCP }, Buffer.alloc(10))),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_TRUNCATED_L4),
  },
  {
    name: 'a spoofed IPv4 source is dropped',
    input: fromPod(P.ETH_P_IP, tcp4(P.ip4('10.200.0.99'), PEER.ip4, P.TCP_SYN)),
    verdict: TC_ACT_SHOT,
    event: { ...drop(TndDropReason.DROP_INVALID_SOURCE), saddr: addr16(P.ip4('10.200.0.99')) },
  },
  {
    name: 'a spoofed IPv6 source is dropped',
    input: fromPod(P.ETH_P_IPV6, tcp6(P.ip6('fd10:200::99'), PEER.ip6, P.TCP_SYN)),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_INVALID_SOURCE),
  },
  {
    name: 'TTL 1 is dropped as exceeded',
    input: fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_SYN, { ttl: 1 })),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_TTL_EXCEEDED),
  },
  {
    name: 'an IPv4 fragment is dropped',
    input: fromPod(P.ETH_P_IP, P.ipv4({ src: POD.ip4, dst: PEER.ip4, proto: P.IPPROTO_UDP, fragOff: 0x2000 }, P.udp(POD.ip4, PEER.ip4, 1, 2, Buffer.alloc(8)))),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_FRAG_UNSUPPORTED),
  },
  {
    name: 'an IPv6 fragment header is dropped',
    input: fromPod(P.ETH_P_IPV6, P.ipv6({ src: POD.ip6, dst: PEER.ip6, nextHeader: P.IPPROTO_FRAGMENT }, Buffer.concat([Buffer.from([P.IPPROTO_UDP, 0, 0, 1, 0, 0, 0, 1]), Buffer.alloc(16)]))),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_FRAG_UNSUPPORTED),
  },
  {
    name: 'an unsupported IP protocol (GRE) is dropped',
    input: fromPod(P.ETH_P_IP, P.ipv4({ src: POD.ip4, dst: PEER.ip4, proto: 47 }, Buffer.alloc(16))),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_UNSUPPORTED_L4),
  },
  {
    name: 'an unsupported EtherType (LLDP) is dropped',
    input: P.eth(POD.routerMac, POD.mac, 0x88cc, Buffer.alloc(46)),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_UNSUPPORTED_L3),
  },
  {
    name: 'IPv6 from a pod without IPv6 is dropped',
    flags: TndLxcFlags.TND_LXC_IPV4,
    input: fromPod(P.ETH_P_IPV6, tcp6(POD.ip6, PEER.ip6, P.TCP_SYN)),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_FAMILY_DISABLED),
  },
];

const toContainerCases: Case[] = [
  {
    name: 'IPv4 TCP entering the pod is passed and traced',
    prog: 'to_container',
    input: toPod(P.ETH_P_IP, tcp4(PEER.ip4, POD.ip4, P.TCP_SYN)),
    verdict: TC_ACT_OK,
    output: toPod(P.ETH_P_IP, tcp4(PEER.ip4, POD.ip4, P.TCP_SYN)),
    event: { type: TndEventType.TND_EVENT_TRACE, obsPoint: TndObsPoint.TND_OBS_TO_ENDPOINT, targetIfindex: 0, ctState: TndCtState.TND_CT_NEW },
  },
  {
    name: 'ARP from the node to the pod is passed without an event',
    prog: 'to_container',
    input: P.eth(BROADCAST, POD.routerMac, P.ETH_P_ARP, P.arp({ op: 1, sha: POD.routerMac, spa: ROUTER4, tha: ZERO_MAC, tpa: POD.ip4 })),
    verdict: TC_ACT_OK,
    event: null,
  },
  {
    name: 'a neighbour solicitation from the node to the pod is passed without an event',
    prog: 'to_container',
    input: (() => {
      const src = P.ip6('fe80::1');
      const dst = P.solicitedNode(POD.ip6);
      const msg = P.icmp6(src, dst, 135, 0, P.ndBody(0, POD.ip6, P.ndLladdrOption(1, POD.routerMac)));
      return P.eth(P.multicastMac(dst), POD.routerMac, P.ETH_P_IPV6, P.ipv6({ src, dst, nextHeader: P.IPPROTO_ICMPV6, hopLimit: 255 }, msg));
    })(),
    verdict: TC_ACT_OK,
    event: null,
  },
  {
    name: 'a malformed IPv4 packet entering the pod is dropped',
    prog: 'to_container',
    input: (() => {
      const ip = tcp4(PEER.ip4, POD.ip4, P.TCP_SYN);
      ip.writeUInt16BE(10, 2); // total length shorter than the header
      return toPod(P.ETH_P_IP, ip);
    })(),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_TRUNCATED_IPV4, TndObsPoint.TND_OBS_TO_ENDPOINT),
  },
  {
    name: 'a truncated UDP header entering the pod is dropped',
    prog: 'to_container',
    input: toPod(P.ETH_P_IPV6, P.ipv6({ src: PEER.ip6, dst: POD.ip6, nextHeader: P.IPPROTO_UDP }, Buffer.alloc(4))),
    verdict: TC_ACT_SHOT,
    event: drop(TndDropReason.DROP_TRUNCATED_L4, TndObsPoint.TND_OBS_TO_ENDPOINT),
  },
];

describe('lxc.o from_container: ARP, ND and echo answered in BPF', () => {
  for (const c of responderCases) it(c.name, () => runCase(c));
});

describe('lxc.o from_container: forwarding and drops', () => {
  for (const c of forwardCases) it(c.name, () => runCase(c));
});

describe('lxc.o from_container: TTL decrement', () => {
  it('keeps the IPv4 header checksum right for every TTL from 2 to 255 (the incremental update carries for some)', () => {
    using dp = new Datapath();
    for (let ttl = 2; ttl <= 255; ttl++) {
      const r = dp.run('from_container', fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_ACK, { ttl })));
      assert.equal(r.retval, TC_ACT_REDIRECT, `TTL ${ttl}`);
      assert.equal(r.data[14 + 8], ttl - 1, `TTL ${ttl} decremented`);
      assert.ok(P.ipv4ChecksumOk(ipv4Header(r.data)), `IPv4 header checksum after TTL ${ttl}`);
    }
  });
});

describe('lxc.o to_container', () => {
  for (const c of toContainerCases) it(c.name, () => runCase(c));
});

// ------------------------------------------------------------------ conntrack

const { TND_OBS_FROM_ENDPOINT: FROM, TND_OBS_TO_ENDPOINT: TO } = TndObsPoint;
const { TND_CT_EGRESS: EGRESS, TND_CT_INGRESS: INGRESS } = TndCtDir;
/** [where, about whom, CT state] of each event of a run. */
const traces = (r: RunResult) => r.events.map((e) => [e.obsPoint, e.endpointId, e.ctState]);

describe('lxc.o connection tracking', () => {
  it('a SYN from POD to PEER creates POD\'s egress entry and PEER\'s ingress entry; PEER\'s SYN-ACK finds both as replies', () => {
    using dp = new Datapath();
    const syn = fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_SYN));
    assert.equal(dp.run('from_container', syn).retval, TC_ACT_REDIRECT);
    const key = tuple4(POD.ip4, PEER.ip4, 40000, 80);
    for (const [dir, owner] of [[EGRESS, POD.id], [INGRESS, PEER.id]] as const) {
      const e = dp.ct(key, dir);
      assert.ok(e, `entry (pod -> peer, dir ${dir}) exists`);
      assert.equal(e.state, TndCtState.TND_CT_NEW);
      assert.equal(e.packetsFwd, 1n);
      assert.equal(e.bytesFwd, BigInt(syn.length));
      assert.equal(e.packetsRev, 0n);
      assert.equal(e.tcpFlagsFwd, P.TCP_SYN);
      assert.equal(e.endpointId, owner);
      assert.ok(e.expiresNs > e.createdNs, 'expiry after creation');
    }
    assert.equal(dp.ctCount(), 2);

    const synAck = fromPeer(P.ETH_P_IP, tcp4(PEER.ip4, POD.ip4, P.TCP_SYN | P.TCP_ACK, { sport: 80, dport: 40000 }));
    const r = dp.run('peer_from_container', synAck);
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const est = TndCtState.TND_CT_ESTABLISHED;
    assert.deepEqual(traces(r), [[FROM, PEER.id, est], [TO, POD.id, est]], 'the first SYN-ACK is traced on both sides');
    for (const dir of [EGRESS, INGRESS]) {
      const e = dp.ct(key, dir)!;
      assert.equal(e.state, est);
      assert.equal(e.packetsRev, 1n);
      assert.equal(e.bytesRev, BigInt(synAck.length));
      assert.equal(e.tcpFlagsRev, P.TCP_SYN | P.TCP_ACK);
    }
    assert.equal(dp.ctCount(), 2, 'the reply made no entries of its own');
  });

  it('a connection entering the pod through to_container (from the node\'s stack) is keyed ingress, and the pod\'s reply finds it', () => {
    using dp = new Datapath();
    dp.run('to_container', toPod(P.ETH_P_IP, tcp4(PEER.ip4, POD.ip4, P.TCP_SYN, { sport: 5555, dport: 8080 })));
    const key = tuple4(PEER.ip4, POD.ip4, 5555, 8080);
    assert.equal(dp.ct(key, INGRESS)?.state, TndCtState.TND_CT_NEW);
    assert.equal(dp.ct(key, INGRESS)?.endpointId, POD.id);
    const r = dp.run('from_container', fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_SYN | P.TCP_ACK, { sport: 8080, dport: 5555 })));
    assert.equal(r.retval, TC_ACT_REDIRECT);
    const e = dp.ct(key, INGRESS)!;
    assert.equal(e.state, TndCtState.TND_CT_ESTABLISHED);
    assert.equal(e.packetsFwd, 1n);
    assert.equal(e.packetsRev, 1n);
    // PEER never saw the SYN: its side starts with the SYN-ACK.
    assert.equal(dp.ct(tuple4(POD.ip4, PEER.ip4, 8080, 5555), INGRESS)?.endpointId, PEER.id);
    assert.equal(dp.ctCount(), 2);
  });

  it('established traffic is traced only when a TCP flag is new in its direction, on each side', () => {
    using dp = new Datapath();
    const out = (flags: number) => dp.run('from_container', fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, flags)));
    const back = (flags: number) => dp.run('peer_from_container', fromPeer(P.ETH_P_IP, tcp4(PEER.ip4, POD.ip4, flags, { sport: 80, dport: 40000 })));
    assert.equal(out(P.TCP_SYN).events.length, 2, 'SYN: entries created');
    assert.equal(back(P.TCP_SYN | P.TCP_ACK).events.length, 2, 'SYN-ACK: new flags in reply direction');
    assert.equal(out(P.TCP_ACK).events.length, 2, 'ACK: new flag forward');
    assert.equal(out(P.TCP_ACK).events.length, 0, 'second ACK: nothing new');
    assert.equal(out(P.TCP_ACK).events.length, 0, 'third ACK: nothing new');
    assert.equal(back(P.TCP_ACK).events.length, 0, 'ACK back: already seen in that direction');
    assert.equal(out(P.TCP_ACK | P.TCP_PSH).events.length, 2, 'PSH: new flag forward');
    assert.equal(out(P.TCP_ACK | P.TCP_PSH).events.length, 0, 'PSH again: nothing new');
    for (const dir of [EGRESS, INGRESS]) {
      const e = dp.ct(tuple4(POD.ip4, PEER.ip4, 40000, 80), dir)!;
      assert.equal(e.packetsFwd, 6n);
      assert.equal(e.packetsRev, 2n);
    }
  });

  it('with TND_LXC_TRACE_ALL every packet leaving the pod is traced; entering PEER follows PEER\'s aggregation', () => {
    using dp = new Datapath({ flags: ALL | TndLxcFlags.TND_LXC_TRACE_ALL });
    const pkt = fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_ACK));
    assert.deepEqual(traces(dp.run('from_container', pkt)), [[FROM, POD.id, 0], [TO, PEER.id, 0]], 'packet 1');
    for (let i = 2; i <= 3; i++) assert.deepEqual(traces(dp.run('from_container', pkt)), [[FROM, POD.id, 0]], `packet ${i}`);
  });

  it('with TND_ENDPOINT_TRACE_ALL on PEER\'s tnd_endpoints entry every packet entering PEER is traced', () => {
    using dp = new Datapath({ peerFlags: TndEndpointFlags.TND_ENDPOINT_TRACE_ALL });
    const pkt = fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_ACK));
    assert.deepEqual(traces(dp.run('from_container', pkt)), [[FROM, POD.id, 0], [TO, PEER.id, 0]], 'packet 1');
    for (let i = 2; i <= 3; i++) assert.deepEqual(traces(dp.run('from_container', pkt)), [[TO, PEER.id, 0]], `packet ${i}`);
  });

  it('FIN in both directions closes both entries; RST closes them at once', () => {
    using dp = new Datapath();
    const key = tuple4(POD.ip4, PEER.ip4, 40000, 80);
    const out = (flags: number) => dp.run('from_container', fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, flags)));
    const back = (flags: number, dport = 40000) => dp.run('peer_from_container', fromPeer(P.ETH_P_IP, tcp4(PEER.ip4, POD.ip4, flags, { sport: 80, dport })));
    out(P.TCP_SYN);
    back(P.TCP_SYN | P.TCP_ACK);
    out(P.TCP_FIN | P.TCP_ACK);
    for (const dir of [EGRESS, INGRESS]) {
      const closing = dp.ct(key, dir)!;
      assert.equal(closing.state, TndCtState.TND_CT_CLOSING);
      assert.ok(closing.expiresNs - closing.lastSeenNs <= 10_000_000_000n, 'closing times out within 10 s');
    }
    back(P.TCP_FIN | P.TCP_ACK);
    for (const dir of [EGRESS, INGRESS]) assert.equal(dp.ct(key, dir)!.state, TndCtState.TND_CT_CLOSED);

    const key2 = tuple4(POD.ip4, PEER.ip4, 40001, 80);
    dp.run('from_container', fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_SYN, { sport: 40001 })));
    back(P.TCP_RST | P.TCP_ACK, 40001);
    for (const dir of [EGRESS, INGRESS]) assert.equal(dp.ct(key2, dir)!.state, TndCtState.TND_CT_CLOSED);

    // A new SYN on the closed tuple starts a new connection on both sides.
    out(P.TCP_SYN);
    for (const dir of [EGRESS, INGRESS]) {
      const fresh = dp.ct(key, dir)!;
      assert.equal(fresh.state, TndCtState.TND_CT_NEW);
      assert.equal(fresh.packetsFwd, 1n);
    }
  });

  it('an established TCP entry lives for hours, a UDP entry for a minute', () => {
    using dp = new Datapath();
    dp.run('from_container', fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_SYN)));
    dp.run('peer_from_container', fromPeer(P.ETH_P_IP, tcp4(PEER.ip4, POD.ip4, P.TCP_SYN | P.TCP_ACK, { sport: 80, dport: 40000 })));
    for (const dir of [EGRESS, INGRESS]) {
      const t = dp.ct(tuple4(POD.ip4, PEER.ip4, 40000, 80), dir)!;
      assert.equal(t.expiresNs - t.lastSeenNs, 6n * 3600n * 1_000_000_000n);
    }
    dp.run('from_container', fromPod(P.ETH_P_IP, P.ipv4({ src: POD.ip4, dst: PEER.ip4, proto: P.IPPROTO_UDP }, P.udp(POD.ip4, PEER.ip4, 7000, 53, Buffer.from('q')))));
    const u = dp.ct(tuple4(POD.ip4, PEER.ip4, 7000, 53, P.IPPROTO_UDP), EGRESS)!;
    assert.equal(u.expiresNs - u.lastSeenNs, 60n * 1_000_000_000n);
  });

  it('established packets leave last_seen and expiry alone within a second; counters still count', () => {
    using dp = new Datapath();
    const key = tuple4(POD.ip4, PEER.ip4, 40000, 80);
    dp.run('from_container', fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_SYN)));
    dp.run('peer_from_container', fromPeer(P.ETH_P_IP, tcp4(PEER.ip4, POD.ip4, P.TCP_SYN | P.TCP_ACK, { sport: 80, dport: 40000 })));
    const before = dp.ct(key, EGRESS)!;
    for (let i = 0; i < 5; i++) dp.run('from_container', fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_ACK)));
    const after = dp.ct(key, EGRESS)!;
    assert.equal(after.packetsFwd, before.packetsFwd + 5n);
    // The run takes far less than the one-second update interval.
    assert.equal(after.lastSeenNs, before.lastSeenNs);
    assert.equal(after.expiresNs, before.expiresNs);
  });

  it('an echo request and its reply share one entry per side (identifier as port); the reply is traced as the state change', () => {
    using dp = new Datapath();
    assert.equal(dp.run('from_container', fromPod(P.ETH_P_IP, echo4(8, POD.ip4, PEER.ip4))).events.length, 2);
    const reply = dp.run('peer_from_container', fromPeer(P.ETH_P_IP, echo4(0, PEER.ip4, POD.ip4)));
    const est = TndCtState.TND_CT_ESTABLISHED;
    assert.deepEqual(traces(reply), [[FROM, PEER.id, est], [TO, POD.id, est]], 'NEW -> ESTABLISHED is traced');
    assert.equal(dp.run('from_container', fromPod(P.ETH_P_IP, echo4(8, POD.ip4, PEER.ip4))).events.length, 0, 'second request: aggregated');
    for (const dir of [EGRESS, INGRESS]) {
      const e = dp.ct(tuple4(POD.ip4, PEER.ip4, 0x4242, 0, P.IPPROTO_ICMP), dir)!;
      assert.ok(e, 'entry keyed by the echo identifier');
      assert.equal(e.packetsFwd, 2n);
      assert.equal(e.packetsRev, 1n);
      assert.equal(e.state, est);
    }
    assert.equal(dp.ctCount(), 2);
  });

  it('IPv6 connections are tracked like IPv4 ones', () => {
    using dp = new Datapath();
    dp.run('from_container', fromPod(P.ETH_P_IPV6, tcp6(POD.ip6, PEER.ip6, P.TCP_SYN)));
    dp.run('peer_from_container', fromPeer(P.ETH_P_IPV6, tcp6(PEER.ip6, POD.ip6, P.TCP_SYN | P.TCP_ACK, { sport: 80, dport: 40000 })));
    for (const dir of [EGRESS, INGRESS]) {
      const e = dp.ct({ saddr: POD.ip6, daddr: PEER.ip6, sport: P.be16(40000), dport: P.be16(80), proto: P.IPPROTO_TCP, family: TndFamily.TND_AF_INET6 }, dir)!;
      assert.equal(e.state, TndCtState.TND_CT_ESTABLISHED);
      assert.equal(e.packetsRev, 1n);
    }
  });
});

describe('lxc.o metrics', () => {
  it('counts forwarded packets, packets handed to the stack, and drops by reason', () => {
    using dp = new Datapath();
    const pkt = fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_SYN));
    const out = fromPod(P.ETH_P_IP, tcp4(POD.ip4, OUTSIDE4, P.TCP_SYN));
    dp.run('from_container', pkt);
    dp.run('from_container', pkt);
    dp.run('from_container', out);
    dp.run('from_container', fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_SYN, { ttl: 1 })));
    assert.deepEqual(dp.metric(TndMetricsSlot.TND_METRIC_FORWARDED), { packets: 2n, bytes: BigInt(2 * pkt.length) });
    assert.deepEqual(dp.metric(TndMetricsSlot.TND_METRIC_DELIVERED), { packets: 2n, bytes: BigInt(2 * pkt.length) }, 'delivered on PEER\'s behalf');
    assert.deepEqual(dp.metric(TndMetricsSlot.TND_METRIC_TO_STACK), { packets: 1n, bytes: BigInt(out.length) });
    assert.equal(dp.metric(TndDropReason.DROP_TTL_EXCEEDED).packets, 1n);
    assert.equal(dp.metric(TndDropReason.DROP_UNKNOWN_DEST).packets, 0n, 'retired');
    assert.equal(dp.metric(TndDropReason.DROP_INVALID_SOURCE).packets, 0n);
  });
});
