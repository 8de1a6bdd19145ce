/**
 * Packet-level tests of identity-based L3/L4 policy in the endpoint datapath
 * (bpf/lxc.c) through BPF_PROG_TEST_RUN: real lxc.o, real maps, policies
 * installed as the agent installs them (PolicyMaps, IpcacheMap), entries
 * written the way the resolver writes them (src/common/policy-entry.ts).
 * Exact bytes in; exact verdict, bytes, conntrack state and events out.
 * Needs root (loads programs).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  TndCtDir,
  TndDropReason,
  TndEvent,
  TndEventType,
  TndFamily,
  TndMark,
  TndMetricsSlot,
  TndObsPoint,
  TndPolicyDir,
  TndPolicyVerdict,
} from '../../src/bpf/generated/wire.js';
import { IDENTITY_ANY, IDENTITY_CLASS_ENDPOINTS, IDENTITY_CLASS_WORLD, CIDR_IDENTITY_MIN, ReservedIdentity } from '../../src/common/identity.js';
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP, portRangeToPrefixes, type Direction, type PolicyMapEntry, type Verdict } from '../../src/common/policy-entry.js';
import { allowAllEntries } from '../../src/datapath/policy-maps.js';
import * as P from './packets.js';
import {
  Datapath,
  OUTSIDE4,
  PEER,
  POD,
  ROUTER4,
  TC_ACT_OK,
  TC_ACT_REDIRECT,
  TC_ACT_SHOT,
  TEST_RUN_IFINDEX,
  addr16,
  assertEvent,
  echo4,
  fromPeer,
  fromPod,
  skbWithMark,
  tcp4,
  tcp6,
  toPod,
  tuple4,
  verdictName,
  type RunResult,
} from './lxc-harness.js';

const { TND_CT_EGRESS: CT_EGRESS, TND_CT_INGRESS: CT_INGRESS } = TndCtDir;
const { TND_POLICY_ALLOW: ALLOW, TND_POLICY_DENY: DENY } = TndPolicyVerdict;
const { TND_POLICY_INGRESS: INGRESS, TND_POLICY_EGRESS: EGRESS } = TndPolicyDir;
const { TND_OBS_FROM_ENDPOINT: FROM, TND_OBS_TO_ENDPOINT: TO } = TndObsPoint;

// ------------------------------------------------------------------ entries, as the resolver writes them

interface EntryOptions {
  proto?: number;
  /** One port (prefix 16) unless `prefix` says otherwise. */
  port?: number;
  prefix?: number;
  rule?: number;
}

function entry(direction: Direction, verdict: Verdict, identity: number, o: EntryOptions = {}): PolicyMapEntry {
  const protocol = o.proto ?? 0;
  const portPrefixLen = protocol === 0 ? 0 : (o.prefix ?? (o.port === undefined ? 0 : 16));
  return { direction, identity, protocol, port: o.port ?? 0, portPrefixLen, verdict, ruleId: o.rule ?? 0 };
}

/** An inclusive port range as the resolver splits it. */
function portRange(direction: Direction, verdict: Verdict, identity: number, protocol: number, first: number, last: number, ruleId: number): PolicyMapEntry[] {
  return portRangeToPrefixes(first, last).map(({ port, prefixLen }) => ({ direction, identity, protocol, port, portPrefixLen: prefixLen, verdict, ruleId }));
}

const allowAll = (direction: Direction) => allowAllEntries().filter((e) => e.direction === direction);

// ------------------------------------------------------------------ packets

const syn = (dport: number, o: { sport?: number; dst?: Buffer } = {}) =>
  fromPod(P.ETH_P_IP, tcp4(POD.ip4, o.dst ?? PEER.ip4, P.TCP_SYN, { dport, sport: o.sport ?? 40000 }));
const udpOut = (dport: number, dst: Buffer = PEER.ip4) => fromPod(P.ETH_P_IP, P.ipv4({ src: POD.ip4, dst, proto: P.IPPROTO_UDP }, P.udp(POD.ip4, dst, 7000, dport, Buffer.from('q'))));
const sctpOut = (dport: number) => fromPod(P.ETH_P_IP, P.ipv4({ src: POD.ip4, dst: PEER.ip4, proto: P.IPPROTO_SCTP }, P.sctp(6000, dport)));
/** PEER's answer on the connection POD:sport -> PEER:80, leaving PEER. */
const peerReply = (flags: number, dport = 40000) => fromPeer(P.ETH_P_IP, tcp4(PEER.ip4, POD.ip4, flags, { sport: 80, dport }));

const reasons = (r: RunResult) => r.events.filter((e) => e.type === TndEventType.TND_EVENT_DROP).map((e) => e.reason);

function expectVerdict(r: RunResult, want: number, what: string): void {
  assert.equal(verdictName(r.retval), verdictName(want), `${what} (drops: ${reasons(r).join(',') || 'none'})`);
}

/** The one drop event of a run. */
function theDrop(r: RunResult): TndEvent {
  const drops = r.events.filter((e) => e.type === TndEventType.TND_EVENT_DROP);
  assert.equal(drops.length, 1, `one drop event expected, got ${drops.length}`);
  return drops[0]!;
}

/** The rule id of the one policy event of a run, and its verdict. */
function decision(r: RunResult): { verdict: number; rule: number } {
  assert.equal(r.policy.length, 1, `one policy event expected, got ${r.policy.length}`);
  return { verdict: r.policy[0]!.verdict, rule: r.policy[0]!.ruleId };
}

// ------------------------------------------------------------------ tests

describe('policy: new connections', () => {
  it('an allowed connection is forwarded unchanged but for the route, with one policy event per side naming rule, direction and both identities', () => {
    using dp = new Datapath({ allowAll: false });
    dp.policy.install(POD.id, [entry('egress', 'allow', PEER.identity, { proto: PROTO_TCP, port: 80, rule: 11 })]);
    dp.policy.install(PEER.id, [entry('ingress', 'allow', POD.identity, { proto: PROTO_TCP, port: 80, rule: 12 })]);
    const r = dp.run('from_container', syn(80));
    expectVerdict(r, TC_ACT_REDIRECT, 'verdict');
    assert.equal(r.data.toString('hex'), P.eth(PEER.mac, PEER.routerMac, P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_SYN, { ttl: 63 })).toString('hex'));
    const flow: Partial<TndEvent> = {
      type: TndEventType.TND_EVENT_POLICY,
      reason: 0,
      targetIfindex: 0,
      family: TndFamily.TND_AF_INET,
      proto: P.IPPROTO_TCP,
      saddr: addr16(POD.ip4),
      daddr: addr16(PEER.ip4),
      sport: P.be16(40000),
      dport: P.be16(80),
      tcpFlags: P.TCP_SYN,
      verdict: ALLOW,
      srcIdentity: POD.identity,
      dstIdentity: PEER.identity,
    };
    assert.equal(r.policy.length, 2);
    assertEvent(r.policy[0]!, { ...flow, obsPoint: FROM, endpointId: POD.id, ifindex: POD.ifindex, direction: EGRESS, ruleId: 11 }, 'egress verdict');
    assertEvent(r.policy[1]!, { ...flow, obsPoint: TO, endpointId: PEER.id, ifindex: PEER.ifindex, direction: INGRESS, ruleId: 12 }, 'ingress verdict');
    // Traces carry no verdict.
    assert.deepEqual(r.events.map((e) => [e.type, e.verdict, e.ruleId, e.srcIdentity]), [[TndEventType.TND_EVENT_TRACE, 0, 0, 0], [TndEventType.TND_EVENT_TRACE, 0, 0, 0]]);
    for (const dir of [CT_EGRESS, CT_INGRESS]) assert.equal(dp.ct(tuple4(POD.ip4, PEER.ip4, 40000, 80), dir)?.policyGen, 0, `entry ${dir} made at generation 0`);
  });

  it('allow-all (rule 0) allows any connection, and says so', () => {
    using dp = new Datapath();
    const r = dp.run('from_container', udpOut(53));
    expectVerdict(r, TC_ACT_REDIRECT, 'verdict');
    assert.deepEqual(r.policy.map((e) => [e.direction, e.verdict, e.ruleId]), [[EGRESS, ALLOW, 0], [INGRESS, ALLOW, 0]]);
  });

  it('a connection no entry allows is dropped as "policy denied" with rule 0, and leaves no conntrack entry', () => {
    using dp = new Datapath({ allowAll: false });
    dp.policy.install(POD.id, [entry('egress', 'allow', PEER.identity, { proto: PROTO_TCP, port: 443, rule: 11 })]);
    dp.policy.install(PEER.id, allowAllEntries());
    const input = syn(80);
    const r = dp.run('from_container', input);
    expectVerdict(r, TC_ACT_SHOT, 'verdict');
    assert.equal(r.data.toString('hex'), input.toString('hex'), 'the packet is not touched');
    const want = { obsPoint: FROM, endpointId: POD.id, ifindex: POD.ifindex, verdict: DENY, ruleId: 0, direction: EGRESS, srcIdentity: POD.identity, dstIdentity: PEER.identity, dport: P.be16(80) };
    assertEvent(r.policy[0]!, { type: TndEventType.TND_EVENT_POLICY, ...want }, 'policy event');
    assert.equal(r.policy.length, 1);
    assertEvent(theDrop(r), { reason: TndDropReason.DROP_POLICY_DENIED, ...want }, 'drop');
    assert.equal(r.events.length, 1, 'no trace');
    assert.equal(dp.ctCount(), 0);
    assert.equal(dp.metric(TndDropReason.DROP_POLICY_DENIED).packets, 1n);
  });

  it('a connection the destination\'s ingress policy denies is dropped there (about PEER, with its rule), and POD\'s egress entry is taken back', () => {
    using dp = new Datapath({ allowAll: false });
    dp.policy.install(POD.id, allowAllEntries());
    dp.policy.install(PEER.id, [entry('ingress', 'deny', POD.identity, { proto: PROTO_TCP, port: 80, rule: 21 }), entry('ingress', 'allow', IDENTITY_ANY, { rule: 22 })]);
    const r = dp.run('from_container', syn(80));
    expectVerdict(r, TC_ACT_SHOT, 'verdict');
    assert.deepEqual(r.policy.map((e) => [e.endpointId, e.direction, e.verdict, e.ruleId]), [[POD.id, EGRESS, ALLOW, 0], [PEER.id, INGRESS, DENY, 21]]);
    assertEvent(theDrop(r), { reason: TndDropReason.DROP_POLICY_DENIED, obsPoint: TO, endpointId: PEER.id, ifindex: PEER.ifindex, ruleId: 21, verdict: DENY, direction: INGRESS, srcIdentity: POD.identity, dstIdentity: PEER.identity }, 'drop');
    assert.equal(dp.ctCount(), 0, 'neither side keeps an entry');
    // The rest of PEER's ingress is open (rule 22).
    expectVerdict(dp.run('from_container', syn(81)), TC_ACT_REDIRECT, 'port 81');
  });
});

describe('policy: deny wins', () => {
  it('a deny for any identity beats an allow for the exact identity; a deny for the class does too', () => {
    using dp = new Datapath();
    dp.policy.install(POD.id, [
      entry('egress', 'allow', PEER.identity, { proto: PROTO_TCP, port: 80, rule: 31 }),
      entry('egress', 'deny', IDENTITY_ANY, { proto: PROTO_TCP, port: 80, rule: 32 }),
      entry('egress', 'allow', PEER.identity, { proto: PROTO_TCP, port: 81, rule: 33 }),
      entry('egress', 'deny', IDENTITY_CLASS_ENDPOINTS, { proto: PROTO_TCP, port: 81, rule: 34 }),
      entry('egress', 'allow', PEER.identity, { proto: PROTO_TCP, port: 82, rule: 35 }),
    ]);
    for (const [port, verdict, rule] of [[80, DENY, 32], [81, DENY, 34], [82, ALLOW, 35]] as const) {
      const r = dp.run('from_container', syn(port));
      expectVerdict(r, verdict === ALLOW ? TC_ACT_REDIRECT : TC_ACT_SHOT, `port ${port}`);
      assert.deepEqual(decision({ ...r, policy: r.policy.filter((e) => e.direction === EGRESS) }), { verdict, rule }, `port ${port}`);
    }
  });

  it('a deny range beats a narrower allow: within the identity by longest prefix, and across identities', () => {
    using dp = new Datapath();
    // What the resolver makes of "allow PEER tcp/any, deny PEER tcp/0-1023, allow endpoints tcp/80":
    // the deny range lies inside the allow of its identity (allowed by the contract), and the
    // narrower allow sits at another identity (the class).
    dp.policy.install(POD.id, [
      entry('egress', 'allow', PEER.identity, { proto: PROTO_TCP, rule: 44 }),
      ...portRange('egress', 'deny', PEER.identity, PROTO_TCP, 0, 1023, 41),
      entry('egress', 'allow', IDENTITY_CLASS_ENDPOINTS, { proto: PROTO_TCP, port: 80, rule: 42 }),
    ]);
    const cases = [[80, DENY, 41], [1023, DENY, 41], [0, DENY, 41], [1024, ALLOW, 44], [65535, ALLOW, 44]] as const;
    for (const [port, verdict, rule] of cases) {
      const r = dp.run('from_container', syn(port));
      expectVerdict(r, verdict === ALLOW ? TC_ACT_REDIRECT : TC_ACT_SHOT, `port ${port}`);
      assert.deepEqual(decision({ ...r, policy: r.policy.filter((e) => e.direction === EGRESS) }), { verdict, rule }, `port ${port}`);
    }
    const udp = dp.run('from_container', udpOut(80));
    expectVerdict(udp, TC_ACT_SHOT, 'UDP is another protocol');
    assert.equal(theDrop(udp).ruleId, 0, 'default deny');
  });
});

describe('policy: ports and protocols', () => {
  it('a port range allows its first and last port and every block edge, not one below or above', () => {
    using dp = new Datapath();
    const ranges: Array<[number, number]> = [[8000, 8080], [1, 65535], [5353, 5353]];
    dp.policy.install(POD.id, ranges.flatMap(([a, b], i) => portRange('egress', 'allow', PEER.identity, i === 1 ? PROTO_UDP : PROTO_TCP, a, b, 60 + i)));
    const tcpPorts = new Map<number, boolean>([[7999, false], [8081, false], [5352, false], [5354, false], [5353, true]]);
    for (const { port, prefixLen } of portRangeToPrefixes(8000, 8080)) {
      tcpPorts.set(port, true);
      tcpPorts.set(port + 2 ** (16 - prefixLen) - 1, true);
    }
    assert.ok(tcpPorts.get(8000) && tcpPorts.get(8080), 'first and last are edges');
    let sport = 30000;
    for (const [port, allowed] of tcpPorts) {
      const r = dp.run('from_container', syn(port, { sport: sport++ }));
      expectVerdict(r, allowed ? TC_ACT_REDIRECT : TC_ACT_SHOT, `TCP port ${port}`);
    }
    for (const [port, allowed] of [[0, false], [1, true], [65535, true], [32768, true]] as const) {
      const r = dp.run('from_container', udpOut(port));
      expectVerdict(r, allowed ? TC_ACT_REDIRECT : TC_ACT_SHOT, `UDP port ${port}`);
      if (allowed) assert.equal(r.policy[0]!.ruleId, 61);
    }
  });

  it('SCTP destination ports are policed like TCP\'s: the port and the protocol must match', () => {
    using dp = new Datapath();
    dp.policy.install(POD.id, [entry('egress', 'allow', PEER.identity, { proto: PROTO_SCTP, port: 5000, rule: 121 })]);
    const ok = dp.run('from_container', sctpOut(5000));
    expectVerdict(ok, TC_ACT_REDIRECT, 'SCTP 5000');
    assert.equal(ok.data.toString('hex'), P.eth(PEER.mac, PEER.routerMac, P.ETH_P_IP, P.ipv4({ src: POD.ip4, dst: PEER.ip4, proto: P.IPPROTO_SCTP, ttl: 63 }, P.sctp(6000, 5000))).toString('hex'));
    assertEvent(ok.policy[0]!, { proto: P.IPPROTO_SCTP, sport: P.be16(6000), dport: P.be16(5000), verdict: ALLOW, ruleId: 121 }, 'verdict');
    assert.ok(dp.ct(tuple4(POD.ip4, PEER.ip4, 6000, 5000, P.IPPROTO_SCTP), CT_EGRESS), 'tracked by its ports');
    expectVerdict(dp.run('from_container', sctpOut(5001)), TC_ACT_SHOT, 'SCTP 5001');
    expectVerdict(dp.run('from_container', syn(5000)), TC_ACT_SHOT, 'TCP 5000');
    const short = dp.run('from_container', fromPod(P.ETH_P_IP, P.ipv4({ src: POD.ip4, dst: PEER.ip4, proto: P.IPPROTO_SCTP }, P.sctp(6000, 5000).subarray(0, 10))));
    expectVerdict(short, TC_ACT_SHOT, 'truncated SCTP');
    assert.equal(theDrop(short).reason, TndDropReason.DROP_TRUNCATED_L4);
  });

  it('ICMP has no port: an L3 entry or an ICMP entry matches it (looked up with port 0), a TCP entry does not', () => {
    using dp = new Datapath();
    dp.policy.install(POD.id, [entry('egress', 'allow', PEER.identity, { proto: PROTO_TCP, rule: 131 })]);
    expectVerdict(dp.run('from_container', fromPod(P.ETH_P_IP, echo4(8, POD.ip4, PEER.ip4))), TC_ACT_SHOT, 'TCP-only policy');
    dp.policy.install(POD.id, [entry('egress', 'allow', PEER.identity, { rule: 132 })]);
    const r = dp.run('from_container', fromPod(P.ETH_P_IP, echo4(8, POD.ip4, PEER.ip4)));
    expectVerdict(r, TC_ACT_REDIRECT, 'L3 policy');
    assert.equal(r.policy[0]!.ruleId, 132);
    // An ICMP entry of exactly port 0 matches a request (identifier as source port)
    // and a reply that opens a connection (identifier as destination port) alike.
    dp.policy.install(POD.id, [entry('ingress', 'allow', IDENTITY_ANY, { proto: P.IPPROTO_ICMP, port: 0, prefix: 16, rule: 133 })]);
    for (const type of [8, 0] as const) {
      const t = dp.run('to_container', toPod(P.ETH_P_IP, echo4(type, OUTSIDE4, POD.ip4)));
      expectVerdict(t, TC_ACT_OK, `echo type ${type} from outside`);
      assert.equal(decision(t).rule, 133);
    }
  });
});

describe('policy: identity classes and the ipcache', () => {
  it('CLASS_WORLD matches a CIDR identity from the ipcache and the world itself, not an endpoint', () => {
    using dp = new Datapath();
    const cidrIdentity = CIDR_IDENTITY_MIN + 5;
    dp.ipcache.set('203.0.113.0/24', cidrIdentity);
    dp.policy.install(POD.id, [entry('egress', 'allow', IDENTITY_CLASS_WORLD, { proto: PROTO_TCP, port: 443, rule: 71 })]);
    const toCidr = dp.run('from_container', syn(443, { dst: OUTSIDE4 }));
    expectVerdict(toCidr, TC_ACT_OK, 'to the CIDR: passed to the stack');
    assertEvent(toCidr.policy[0]!, { verdict: ALLOW, ruleId: 71, srcIdentity: POD.identity, dstIdentity: cidrIdentity }, 'verdict');
    const world = dp.run('from_container', syn(443, { dst: P.ip4('198.51.100.1') }));
    expectVerdict(world, TC_ACT_OK, 'to the world');
    assertEvent(world.policy[0]!, { verdict: ALLOW, ruleId: 71, dstIdentity: ReservedIdentity.world }, 'verdict');
    expectVerdict(dp.run('from_container', syn(80, { dst: OUTSIDE4 })), TC_ACT_SHOT, 'another port');
    expectVerdict(dp.run('from_container', syn(443)), TC_ACT_SHOT, 'an endpoint is not the world');
  });

  it('CLASS_ENDPOINTS matches an endpoint identity; an exact allow is reported before a class allow, a class allow before ANY', () => {
    using dp = new Datapath();
    dp.policy.install(POD.id, [
      entry('egress', 'allow', IDENTITY_ANY, { rule: 73 }),
      entry('egress', 'allow', IDENTITY_CLASS_ENDPOINTS, { rule: 74 }),
      entry('egress', 'allow', PEER.identity, { proto: PROTO_TCP, port: 80, rule: 75 }),
    ]);
    const egressRule = (r: RunResult) => r.policy.find((e) => e.direction === EGRESS)?.ruleId;
    assert.equal(egressRule(dp.run('from_container', syn(80))), 75, 'exact');
    assert.equal(egressRule(dp.run('from_container', udpOut(53))), 74, 'class');
    assert.equal(egressRule(dp.run('from_container', syn(80, { dst: OUTSIDE4 }))), 73, 'any');
    dp.policy.install(POD.id, [entry('egress', 'allow', IDENTITY_CLASS_ENDPOINTS, { rule: 76 })]);
    expectVerdict(dp.run('from_container', syn(81)), TC_ACT_REDIRECT, 'endpoint');
    expectVerdict(dp.run('from_container', syn(81, { dst: OUTSIDE4 })), TC_ACT_SHOT, 'world');
  });

  it('an endpoint\'s identity comes from tnd_endpoints; a peer through the stack gets the ipcache\'s (IPv4 and IPv6)', () => {
    using dp = new Datapath();
    dp.ipcache.set('10.200.9.0/24', 1500);
    dp.ipcache.set('fd10:200:9::/48', 1500);
    dp.policy.install(POD.id, [...allowAll('egress'), entry('ingress', 'allow', 1500, { proto: PROTO_TCP, port: 8080, rule: 111 })]);
    const remote4 = P.ip4('10.200.9.7');
    const r = dp.run('to_container', toPod(P.ETH_P_IP, tcp4(remote4, POD.ip4, P.TCP_SYN, { sport: 5555, dport: 8080 })));
    expectVerdict(r, TC_ACT_OK, 'IPv4 from the ipcache\'s 10.200.9.0/24');
    assertEvent(r.policy[0]!, { obsPoint: TO, endpointId: POD.id, direction: INGRESS, verdict: ALLOW, ruleId: 111, srcIdentity: 1500, dstIdentity: POD.identity }, 'verdict');
    const remote6 = P.ip6('fd10:200:9::7');
    expectVerdict(dp.run('to_container', toPod(P.ETH_P_IPV6, tcp6(remote6, POD.ip6, P.TCP_SYN, { sport: 5555, dport: 8080 }))), TC_ACT_OK, 'IPv6');
    const other = dp.run('to_container', toPod(P.ETH_P_IP, tcp4(P.ip4('10.200.10.7'), POD.ip4, P.TCP_SYN, { sport: 5555, dport: 8080 })));
    expectVerdict(other, TC_ACT_SHOT, 'outside the prefix');
    assertEvent(theDrop(other), { obsPoint: TO, endpointId: POD.id, ifindex: TEST_RUN_IFINDEX, direction: INGRESS, srcIdentity: ReservedIdentity.world, dstIdentity: POD.identity, ruleId: 0 }, 'drop');
    // PEER's identity changes in tnd_endpoints: its next new connection is judged by the new one.
    dp.policy.install(PEER.id, [entry('ingress', 'allow', 1500, { rule: 112 })]);
    const before = dp.run('from_container', syn(80));
    expectVerdict(before, TC_ACT_SHOT, 'POD is not 1500');
    assertEvent(theDrop(before), { endpointId: PEER.id, direction: INGRESS, srcIdentity: POD.identity }, 'drop');
    dp.addEndpoint(POD, 1500);
    expectVerdict(dp.run('from_container', syn(80, { sport: 40001 })), TC_ACT_REDIRECT, 'POD is 1500 now');
  });
});

describe('policy: established connections', () => {
  /** POD may open TCP/80 to PEER; PEER accepts it; neither accepts anything else. */
  function setUp(dp: Datapath): void {
    dp.policy.install(POD.id, [entry('egress', 'allow', PEER.identity, { proto: PROTO_TCP, port: 80, rule: 81 })]);
    dp.policy.install(PEER.id, [entry('ingress', 'allow', POD.identity, { proto: PROTO_TCP, port: 80, rule: 82 })]);
  }
  function establish(dp: Datapath): void {
    expectVerdict(dp.run('from_container', syn(80)), TC_ACT_REDIRECT, 'SYN');
    expectVerdict(dp.run('peer_from_container', peerReply(P.TCP_SYN | P.TCP_ACK)), TC_ACT_REDIRECT, 'SYN-ACK');
    expectVerdict(dp.run('from_container', fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_ACK))), TC_ACT_REDIRECT, 'ACK');
  }
  const ack = () => fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_ACK));
  const key = tuple4(POD.ip4, PEER.ip4, 40000, 80);

  it('a reply of an allowed connection passes though the same packet opening a connection is denied', () => {
    using dp = new Datapath({ allowAll: false });
    setUp(dp);
    expectVerdict(dp.run('from_container', syn(80)), TC_ACT_REDIRECT, 'SYN');
    const reply = dp.run('peer_from_container', peerReply(P.TCP_SYN | P.TCP_ACK));
    expectVerdict(reply, TC_ACT_REDIRECT, 'SYN-ACK of the connection');
    assert.equal(reply.policy.length, 0, 'no lookup for a reply');
    const stray = dp.run('peer_from_container', peerReply(P.TCP_SYN | P.TCP_ACK, 40001));
    expectVerdict(stray, TC_ACT_SHOT, 'the same packet towards another port');
    assertEvent(theDrop(stray), { reason: TndDropReason.DROP_POLICY_DENIED, endpointId: PEER.id, direction: EGRESS, obsPoint: FROM }, 'drop');
  });

  it('a policy change reaches established connections only with the next generation; still allowed: kept and re-stamped', () => {
    using dp = new Datapath({ allowAll: false });
    setUp(dp);
    establish(dp);
    dp.policy.install(POD.id, portRange('egress', 'allow', PEER.identity, PROTO_TCP, 80, 81, 83));
    const gen = dp.policy.bumpGeneration();
    assert.equal(gen, 1);
    const r = dp.run('from_container', ack());
    expectVerdict(r, TC_ACT_REDIRECT, 'still allowed');
    assert.equal(r.policy.length, 0, 'a re-check that keeps the connection says nothing');
    assert.equal(r.events.filter((e) => e.type === TndEventType.TND_EVENT_DROP).length, 0);
    assert.equal(dp.ct(key, CT_EGRESS)?.policyGen, gen, 'POD\'s entry re-stamped');
    assert.equal(dp.ct(key, CT_INGRESS)?.policyGen, gen, 'PEER\'s entry re-stamped');
  });

  it('a policy change that denies cuts the connection at the next packet: dropped, its entry deleted, then judged as new', () => {
    using dp = new Datapath({ allowAll: false });
    setUp(dp);
    establish(dp);
    dp.policy.install(POD.id, [entry('egress', 'deny', PEER.identity, { proto: PROTO_TCP, port: 80, rule: 84 })]);
    expectVerdict(dp.run('from_container', ack()), TC_ACT_REDIRECT, 'before the generation moves, the connection stands');
    dp.policy.bumpGeneration();
    const r = dp.run('from_container', ack());
    expectVerdict(r, TC_ACT_SHOT, 'after');
    assertEvent(theDrop(r), { reason: TndDropReason.DROP_POLICY_DENIED, obsPoint: FROM, endpointId: POD.id, ifindex: POD.ifindex, direction: EGRESS, verdict: DENY, ruleId: 84, srcIdentity: POD.identity, dstIdentity: PEER.identity }, 'drop');
    assert.equal(dp.ct(key, CT_EGRESS), undefined, 'POD\'s entry deleted');
    assert.ok(dp.ct(key, CT_INGRESS), 'PEER\'s entry stays: its policy still allows');
    // PEER answers: its side passes, POD's ingress sees a new connection and denies it.
    const back = dp.run('peer_from_container', peerReply(P.TCP_ACK));
    expectVerdict(back, TC_ACT_SHOT, 'the reply');
    assertEvent(theDrop(back), { reason: TndDropReason.DROP_POLICY_DENIED, obsPoint: TO, endpointId: POD.id, direction: INGRESS, ruleId: 0, srcIdentity: PEER.identity, dstIdentity: POD.identity }, 'drop of the reply');
    expectVerdict(dp.run('from_container', ack()), TC_ACT_SHOT, 'POD tries again: a new connection, denied');
    assert.equal(dp.ct(key, CT_EGRESS), undefined);
  });

  it('when a reply is the first packet after the change, the connection\'s original direction is re-checked', () => {
    using dp = new Datapath({ allowAll: false });
    setUp(dp);
    establish(dp);
    dp.policy.install(POD.id, []);
    dp.policy.bumpGeneration();
    const r = dp.run('peer_from_container', peerReply(P.TCP_ACK));
    expectVerdict(r, TC_ACT_SHOT, 'PEER\'s reply');
    // PEER's own entry is still allowed; POD's (egress, to PEER) is not, found by the reply entering POD.
    assertEvent(theDrop(r), { reason: TndDropReason.DROP_POLICY_DENIED, obsPoint: TO, endpointId: POD.id, direction: EGRESS, ruleId: 0, srcIdentity: PEER.identity, dstIdentity: POD.identity }, 'drop');
    assert.equal(dp.ct(key, CT_EGRESS), undefined);
    assert.equal(dp.ct(key, CT_INGRESS)?.policyGen, 1);
  });

  it('removing an endpoint\'s policy cuts its connections as "no policy" at the next generation', () => {
    using dp = new Datapath({ allowAll: false });
    setUp(dp);
    establish(dp);
    assert.equal(dp.policy.remove(POD.id), true);
    dp.policy.bumpGeneration();
    const r = dp.run('from_container', ack());
    expectVerdict(r, TC_ACT_SHOT, 'after');
    assert.equal(theDrop(r).reason, TndDropReason.DROP_NO_POLICY);
  });
});

describe('policy: the node\'s stack and missing policies', () => {
  it('allowed egress to a destination that is no local endpoint goes to the stack unchanged; its replies come back through to_container, a new connection from there is judged by POD\'s ingress', () => {
    using dp = new Datapath({ allowAll: false });
    dp.policy.install(POD.id, [entry('egress', 'allow', IDENTITY_CLASS_WORLD, { proto: PROTO_TCP, port: 443, rule: 101 })]);
    const out = syn(443, { dst: OUTSIDE4 });
    const r = dp.run('from_container', out);
    expectVerdict(r, TC_ACT_OK, 'to the stack');
    assert.equal(r.data.toString('hex'), out.toString('hex'), 'unchanged: the stack routes it');
    assert.deepEqual(r.events.map((e) => [e.type, e.obsPoint, e.targetIfindex]), [[TndEventType.TND_EVENT_TRACE, FROM, 0]]);
    assert.ok(dp.ct(tuple4(POD.ip4, OUTSIDE4, 40000, 443), CT_EGRESS));
    assert.equal(dp.metric(TndMetricsSlot.TND_METRIC_TO_STACK).packets, 1n);
    const reply = dp.run('to_container', toPod(P.ETH_P_IP, tcp4(OUTSIDE4, POD.ip4, P.TCP_SYN | P.TCP_ACK, { sport: 443, dport: 40000 })));
    expectVerdict(reply, TC_ACT_OK, 'the reply');
    assert.equal(reply.policy.length, 0);
    const inbound = dp.run('to_container', toPod(P.ETH_P_IP, tcp4(OUTSIDE4, POD.ip4, P.TCP_SYN, { sport: 5555, dport: 8080 })));
    expectVerdict(inbound, TC_ACT_SHOT, 'a new connection from the world');
    assertEvent(theDrop(inbound), { reason: TndDropReason.DROP_POLICY_DENIED, obsPoint: TO, direction: INGRESS, srcIdentity: ReservedIdentity.world, dstIdentity: POD.identity }, 'drop');
    expectVerdict(dp.run('from_container', syn(80, { dst: OUTSIDE4 })), TC_ACT_SHOT, 'egress to another port');
  });

  it('an endpoint without a policy map drops new connections as "no policy", leaving and entering', () => {
    using dp = new Datapath({ allowAll: false });
    const r = dp.run('from_container', syn(80));
    expectVerdict(r, TC_ACT_SHOT, 'POD has none');
    assertEvent(theDrop(r), { reason: TndDropReason.DROP_NO_POLICY, endpointId: POD.id, verdict: DENY, ruleId: 0, direction: EGRESS }, 'drop');
    assertEvent(r.policy[0]!, { verdict: DENY, ruleId: 0 }, 'verdict');
    dp.policy.install(POD.id, allowAllEntries());
    const r2 = dp.run('from_container', syn(80));
    expectVerdict(r2, TC_ACT_SHOT, 'PEER has none');
    assertEvent(theDrop(r2), { reason: TndDropReason.DROP_NO_POLICY, endpointId: PEER.id, obsPoint: TO, direction: INGRESS }, 'drop');
    expectVerdict(dp.run('to_container', toPod(P.ETH_P_IP, tcp4(OUTSIDE4, POD.ip4, P.TCP_SYN))), TC_ACT_OK, 'POD has one now');
    assert.equal(dp.ctCount(), 1, 'only the connection that passed');
  });

  it('a reply built in BPF is marked leaving from_container and passes to_container without conntrack or policy', () => {
    using dp = new Datapath({ allowAll: false });
    dp.policy.install(POD.id, allowAll('egress'));
    const ping = dp.run('from_container', fromPod(P.ETH_P_IP, echo4(8, POD.ip4, ROUTER4)), skbWithMark(0));
    expectVerdict(ping, TC_ACT_REDIRECT, 'answered');
    assert.equal(ping.ctx!.readUInt32LE(8), TndMark.TND_MARK_LOCAL_REPLY, 'the reply is marked');
    const answer = toPod(P.ETH_P_IP, echo4(0, ROUTER4, POD.ip4));
    const marked = dp.run('to_container', answer, skbWithMark(TndMark.TND_MARK_LOCAL_REPLY));
    expectVerdict(marked, TC_ACT_OK, 'our own reply');
    assert.equal(marked.ctx!.readUInt32LE(8), 0, 'the mark is cleared');
    assert.deepEqual([marked.events, marked.policy], [[], []]);
    assert.equal(dp.ctCount(), 0);
    expectVerdict(dp.run('to_container', answer, skbWithMark(0)), TC_ACT_SHOT, 'the same packet unmarked: POD\'s ingress denies');
  });

});
