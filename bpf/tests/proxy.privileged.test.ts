/**
 * Packet-level tests of the L7 redirect in the endpoint datapath (bpf/lxc.c,
 * bpf/lib/proxy.h) through BPF_PROG_TEST_RUN: real lxc.o, real maps,
 * policies with redirect entries as the resolver writes them.
 *
 * What BPF_PROG_TEST_RUN cannot show: bpf_sk_assign() refuses a test run's
 * skb (it is not at tc ingress), so a SYN that finds the proxy's listener is
 * dropped here as DROP_PROXY_UNSUPPORTED, fail closed, leaving no state. The
 * steering itself (assignment, mark, flow map, the TO_PROXY entry made by
 * the SYN) is tested on a real kernel in
 * src/datapath/proxy-steering.privileged.test.ts. Here the known-flow half is
 * set up by writing the entry the SYN would have made. Needs root.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import {
  TndCtDir,
  TndCtEntry,
  TndCtFlags,
  TndCtKey,
  TndCtState,
  TndDropReason,
  TndEventType,
  TndMark,
  TndMetricsSlot,
  TndObsPoint,
  TndPolicyDir,
  TndPolicyVerdict,
} from '../../src/bpf/generated/wire.js';
import { IDENTITY_ANY } from '../../src/common/identity.js';
import { PROTO_TCP, PROTO_UDP, type Direction, type PolicyMapEntry, type Verdict } from '../../src/common/policy-entry.js';
import { allowAllEntries } from '../../src/datapath/policy-maps.js';
import { transparentListener } from '../../src/sys/socket.js';
import * as P from './packets.js';
import {
  Datapath,
  OUTSIDE4,
  PEER,
  POD,
  TC_ACT_OK,
  TC_ACT_REDIRECT,
  TC_ACT_SHOT,
  assertEvent,
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
const { TND_POLICY_ALLOW: ALLOW, TND_POLICY_DENY: DENY, TND_POLICY_REDIRECT: REDIRECT } = TndPolicyVerdict;
const { TND_POLICY_INGRESS: INGRESS, TND_POLICY_EGRESS: EGRESS } = TndPolicyDir;
const { TND_OBS_FROM_ENDPOINT: FROM, TND_OBS_TO_ENDPOINT: TO } = TndObsPoint;
const { DROP_PROXY_UNAVAILABLE, DROP_PROXY_NO_SOCKET, DROP_PROXY_UNSUPPORTED, DROP_PROXY_WITHDRAWN, DROP_POLICY_DENIED } = TndDropReason;

/** The node's own address, the source of the proxy's upstream connections. */
const NODE4 = P.ip4('10.200.255.1');

function entry(direction: Direction, verdict: Verdict, identity: number, port: number | undefined, ruleId: number, protocol = PROTO_TCP): PolicyMapEntry {
  return { direction, identity, protocol, port: port ?? 0, portPrefixLen: port === undefined ? 0 : 16, verdict, ruleId };
}
const allowAll = (direction: Direction) => allowAllEntries().filter((e) => e.direction === direction);

const syn = (o: { sport?: number; dport?: number; dst?: Buffer } = {}) =>
  fromPod(P.ETH_P_IP, tcp4(POD.ip4, o.dst ?? PEER.ip4, P.TCP_SYN, { sport: o.sport ?? 40000, dport: o.dport ?? 80 }));
const ack = (sport = 40000) => fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_ACK, { sport, dport: 80 }));
/** The proxy answering POD as PEER:80 (its socket has PEER's address), entering POD from the node. */
const proxyReply = (flags: number) => toPod(P.ETH_P_IP, tcp4(PEER.ip4, POD.ip4, flags, { sport: 80, dport: 40000 }));
const flowKey = tuple4(POD.ip4, PEER.ip4, 40000, 80);
const flowTuple = { family: 4 as const, srcAddr: '10.200.0.2', srcPort: 40000, dstAddr: '10.200.0.3', dstPort: 80 };

const drops = (r: RunResult) => r.events.filter((e) => e.type === TndEventType.TND_EVENT_DROP);

function expectDrop(r: RunResult, reason: number, what: string) {
  assert.equal(verdictName(r.retval), verdictName(TC_ACT_SHOT), `${what}: verdict (drops: ${drops(r).map((e) => e.reason).join(',') || 'none'})`);
  const d = drops(r);
  assert.equal(d.length, 1, `${what}: one drop event`);
  assertEvent(d[0]!, { reason }, what);
  return d[0]!;
}

function expectVerdict(r: RunResult, want: number, what: string) {
  assert.equal(verdictName(r.retval), verdictName(want), `${what} (drops: ${drops(r).map((e) => e.reason).join(',') || 'none'})`);
}

/** A transparent listener on 127.0.0.1 in this process's netns, as the proxy makes it; its port. */
async function listener(): Promise<{ port: number; server: net.Server }> {
  const server = net.createServer((s) => s.destroy());
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd: transparentListener('127.0.0.1', 0) }, resolve);
  });
  return { port: (server.address() as net.AddressInfo).port, server };
}

/** A port nothing listens on (briefly bound, then closed). */
async function freePort(): Promise<number> {
  const { port, server } = await listener();
  await new Promise((r) => server.close(r));
  return port;
}

/** The entry POD's SYN would have made when steered (proxy_steer()): TO_PROXY, at the current generation. */
function writeToProxyEntry(dp: Datapath, state = TndCtState.TND_CT_ESTABLISHED): void {
  const never = 0xffffffffffffffffn;
  dp.obj.map('tnd_ct').update(
    TndCtKey.encode({ ...flowKey, dir: CT_EGRESS }),
    TndCtEntry.encode({
      createdNs: 0n,
      lastSeenNs: 0n,
      expiresNs: never,
      packetsFwd: 1n,
      bytesFwd: 60n,
      packetsRev: 0n,
      bytesRev: 0n,
      lastReportNs: 0n,
      endpointId: POD.id,
      state,
      tcpFlagsFwd: P.TCP_SYN,
      tcpFlagsRev: 0,
      flags: TndCtFlags.TND_CT_F_TO_PROXY,
      policyGen: dp.policy.generation(),
      pad2: 0,
    } as Parameters<typeof TndCtEntry.encode>[0]),
  );
}

describe('L7 redirect: new connections', () => {
  it('a redirected SYN with no proxy port configured is dropped as "proxy unavailable", with a policy event saying redirect, and leaves no state', () => {
    using dp = new Datapath();
    dp.policy.install(POD.id, [...allowAll('ingress'), entry('egress', 'redirect', PEER.identity, 80, 7)]);
    const input = syn();
    const r = dp.run('from_container', input, skbWithMark(0));
    const d = expectDrop(r, DROP_PROXY_UNAVAILABLE, 'no port');
    assertEvent(d, { obsPoint: FROM, endpointId: POD.id, verdict: REDIRECT, direction: EGRESS, srcIdentity: POD.identity, dstIdentity: PEER.identity }, 'drop');
    assert.deepEqual(r.policy.map((e) => [e.endpointId, e.direction, e.verdict, e.ruleId]), [[POD.id, EGRESS, REDIRECT, 7], [PEER.id, INGRESS, ALLOW, 0]]);
    assert.equal(r.data.toString('hex'), input.toString('hex'), 'not rewritten');
    assert.equal(r.ctx!.readUInt32LE(8), 0, 'not marked');
    assert.equal(dp.ctCount(), 0);
    assert.equal(dp.proxyFlows.lookup(flowTuple), undefined);
    assert.equal(dp.metric(DROP_PROXY_UNAVAILABLE).packets, 1n);
  });

  it('a port with no listener is "proxy unavailable" too; a real transparent listener is found, but BPF_PROG_TEST_RUN refuses bpf_sk_assign: dropped as unsupported, fail closed', async () => {
    using dp = new Datapath();
    dp.policy.install(POD.id, [...allowAll('ingress'), entry('egress', 'redirect', PEER.identity, 80, 7)]);
    dp.proxyConfig.setPort(await freePort());
    expectDrop(dp.run('from_container', syn()), DROP_PROXY_UNAVAILABLE, 'nothing listens');
    const { port, server } = await listener();
    try {
      dp.proxyConfig.setPort(port);
      assert.equal(dp.proxyConfig.port(), port);
      const r = dp.run('from_container', syn(), skbWithMark(0));
      // Not at tc ingress: the helper fails, so the flow is dropped, never delivered.
      expectDrop(r, DROP_PROXY_UNSUPPORTED, 'listener found, assignment refused');
      assert.equal(r.ctx!.readUInt32LE(8), 0, 'not marked');
      assert.equal(dp.ctCount(), 0);
      assert.equal(dp.proxyFlows.lookup(flowTuple), undefined);
      dp.proxyConfig.clear();
      expectDrop(dp.run('from_container', syn()), DROP_PROXY_UNAVAILABLE, 'cleared');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });

  it('deny beats redirect: in one endpoint across the three lookups, and the destination\'s deny over the source\'s redirect', () => {
    using dp = new Datapath();
    dp.policy.install(POD.id, [...allowAll('ingress'), entry('egress', 'redirect', PEER.identity, 80, 7), entry('egress', 'deny', IDENTITY_ANY, 80, 8), entry('egress', 'redirect', PEER.identity, 81, 9)]);
    const r = dp.run('from_container', syn());
    assertEvent(expectDrop(r, DROP_POLICY_DENIED, 'ANY denies'), { verdict: DENY, ruleId: 8, direction: EGRESS }, 'drop');
    dp.policy.install(PEER.id, [entry('ingress', 'deny', POD.identity, 81, 10)]);
    const r2 = dp.run('from_container', syn({ dport: 81 }));
    assertEvent(expectDrop(r2, DROP_POLICY_DENIED, 'PEER denies'), { endpointId: PEER.id, obsPoint: TO, verdict: DENY, ruleId: 10, direction: INGRESS }, 'drop');
    assert.deepEqual(r2.policy.map((e) => e.verdict), [REDIRECT, DENY]);
    assert.equal(dp.ctCount(), 0);
  });

  it('allow beats redirect: an allow for any identity forwards what an exact redirect would steer', () => {
    using dp = new Datapath();
    dp.policy.install(POD.id, [...allowAll('ingress'), entry('egress', 'redirect', PEER.identity, 80, 7), entry('egress', 'allow', IDENTITY_ANY, 80, 8)]);
    const r = dp.run('from_container', syn());
    expectVerdict(r, TC_ACT_REDIRECT, 'forwarded to PEER');
    assertEvent(r.policy[0]!, { verdict: ALLOW, ruleId: 8 }, 'egress verdict');
    assert.equal(dp.ct(flowKey, CT_EGRESS)?.flags, 0);
  });

  it('a redirected TCP packet that is no SYN, without a conntrack entry, is dropped as "no socket"', () => {
    using dp = new Datapath();
    dp.policy.install(POD.id, [...allowAll('ingress'), entry('egress', 'redirect', PEER.identity, 80, 7)]);
    assertEvent(expectDrop(dp.run('from_container', ack()), DROP_PROXY_NO_SOCKET, 'ACK'), { verdict: REDIRECT, direction: EGRESS }, 'drop');
    const synAck = fromPod(P.ETH_P_IP, tcp4(POD.ip4, PEER.ip4, P.TCP_SYN | P.TCP_ACK, { sport: 40000, dport: 80 }));
    expectDrop(dp.run('from_container', synAck), DROP_PROXY_NO_SOCKET, 'SYN-ACK');
    assert.equal(dp.ctCount(), 0);
  });

  it('redirects that cannot be steered are dropped as unsupported: IPv6, UDP, and a redirect entering from the node (to_container)', () => {
    using dp = new Datapath();
    dp.policy.install(POD.id, [
      entry('egress', 'redirect', PEER.identity, 80, 7),
      entry('egress', 'redirect', PEER.identity, 53, 8, PROTO_UDP),
      entry('ingress', 'redirect', IDENTITY_ANY, 8080, 9),
    ]);
    const v6 = dp.run('from_container', fromPod(P.ETH_P_IPV6, tcp6(POD.ip6, PEER.ip6, P.TCP_SYN)));
    assertEvent(expectDrop(v6, DROP_PROXY_UNSUPPORTED, 'IPv6'), { verdict: REDIRECT, endpointId: POD.id }, 'drop');
    const udp = fromPod(P.ETH_P_IP, P.ipv4({ src: POD.ip4, dst: PEER.ip4, proto: P.IPPROTO_UDP }, P.udp(POD.ip4, PEER.ip4, 7000, 53, Buffer.from('q'))));
    expectDrop(dp.run('from_container', udp), DROP_PROXY_UNSUPPORTED, 'UDP');
    const inbound = dp.run('to_container', toPod(P.ETH_P_IP, tcp4(OUTSIDE4, POD.ip4, P.TCP_SYN, { sport: 5555, dport: 8080 })));
    assertEvent(expectDrop(inbound, DROP_PROXY_UNSUPPORTED, 'from the world'), { obsPoint: TO, endpointId: POD.id }, 'drop');
    assert.equal(inbound.policy[0]!.verdict, REDIRECT);
    assert.equal(dp.ctCount(), 0);
  });

  it('the destination\'s ingress redirect, with the source\'s egress allowing: the packet is not rewritten, and the egress entry is taken back when steering fails', () => {
    using dp = new Datapath();
    dp.policy.install(PEER.id, [entry('ingress', 'redirect', POD.identity, 80, 11)]);
    const input = syn();
    const r = dp.run('from_container', input);
    assertEvent(expectDrop(r, DROP_PROXY_UNAVAILABLE, 'PEER redirects'), { endpointId: POD.id, verdict: REDIRECT, direction: INGRESS }, 'drop');
    assert.deepEqual(r.policy.map((e) => [e.endpointId, e.verdict]), [[POD.id, ALLOW], [PEER.id, REDIRECT]]);
    assert.equal(r.data.toString('hex'), input.toString('hex'), 'MACs and TTL untouched');
    assert.equal(dp.ctCount(), 0, 'neither side keeps an entry');
  });
});

describe('L7 redirect: flows in the proxy', () => {
  it('a packet of a known TO_PROXY flow is marked and handed to the stack unchanged, without a policy lookup; the proxy\'s replies pass to_container despite a deny-all ingress', () => {
    using dp = new Datapath();
    dp.policy.install(POD.id, [entry('egress', 'redirect', PEER.identity, 80, 7)]);
    writeToProxyEntry(dp);
    const input = ack();
    const r = dp.run('from_container', input, skbWithMark(0));
    expectVerdict(r, TC_ACT_OK, 'to the stack');
    assert.equal(r.ctx!.readUInt32LE(8), TndMark.TND_MARK_TO_PROXY, 'marked');
    assert.equal(r.data.toString('hex'), input.toString('hex'), 'unchanged');
    assert.deepEqual(r.policy, []);
    assert.equal(dp.metric(TndMetricsSlot.TND_METRIC_TO_PROXY).packets, 1n);
    assert.equal(dp.ct(flowKey, CT_INGRESS), undefined, 'nothing at PEER');
    const back = dp.run('to_container', proxyReply(P.TCP_ACK));
    expectVerdict(back, TC_ACT_OK, 'the proxy\'s reply');
    assert.deepEqual(back.policy, []);
    assert.equal(dp.ct(flowKey, CT_EGRESS)?.packetsRev, 1n);
  });

  it('after a policy change a TO_PROXY flow is kept while the verdict is still redirect; a deny or an allow cuts it, deleting its entries', () => {
    using dp = new Datapath();
    const redirect = [entry('egress', 'redirect', PEER.identity, 80, 7)];
    dp.policy.install(POD.id, redirect);
    dp.proxyFlows.map.update(TndCtKey.encode({ ...flowKey, dir: CT_EGRESS }), Buffer.alloc(16));
    writeToProxyEntry(dp);
    // Still redirect (another rule): kept, re-stamped.
    dp.policy.install(POD.id, [entry('egress', 'redirect', PEER.identity, 80, 17)]);
    const gen = dp.policy.bumpGeneration();
    const kept = dp.run('from_container', ack(), skbWithMark(0));
    expectVerdict(kept, TC_ACT_OK, 'kept');
    assert.equal(kept.ctx!.readUInt32LE(8), TndMark.TND_MARK_TO_PROXY);
    assert.equal(dp.ct(flowKey, CT_EGRESS)?.policyGen, gen);
    // A deny: cut.
    dp.policy.install(POD.id, [entry('egress', 'deny', PEER.identity, 80, 18)]);
    dp.policy.bumpGeneration();
    const denied = dp.run('from_container', ack());
    assertEvent(expectDrop(denied, DROP_POLICY_DENIED, 'denied'), { ruleId: 18, verdict: DENY, direction: EGRESS, endpointId: POD.id }, 'drop');
    assert.equal(dp.ct(flowKey, CT_EGRESS), undefined);
    assert.equal(dp.proxyFlows.lookup(flowTuple), undefined, 'flow entry deleted');
    // An allow: a flow in the proxy cannot become direct.
    dp.policy.install(POD.id, redirect);
    writeToProxyEntry(dp);
    dp.policy.install(POD.id, [entry('egress', 'allow', PEER.identity, 80, 19)]);
    dp.policy.bumpGeneration();
    const allowed = dp.run('to_container', proxyReply(P.TCP_ACK));
    assertEvent(expectDrop(allowed, DROP_PROXY_WITHDRAWN, 'allowed now'), { obsPoint: TO, verdict: ALLOW, ruleId: 19, srcIdentity: PEER.identity, dstIdentity: POD.identity }, 'drop of the reply');
    assert.equal(dp.ct(flowKey, CT_EGRESS), undefined);
  });

  it('a TO_PROXY flow steered by the destination\'s ingress is re-checked against it (found anew): still redirect keeps it, a deny there cuts it', () => {
    using dp = new Datapath();
    dp.policy.install(PEER.id, [entry('ingress', 'redirect', POD.identity, 80, 21)]);
    writeToProxyEntry(dp);
    dp.policy.bumpGeneration();
    expectVerdict(dp.run('from_container', ack()), TC_ACT_OK, 'kept: PEER still redirects');
    dp.policy.install(PEER.id, [entry('ingress', 'deny', POD.identity, 80, 22)]);
    dp.policy.bumpGeneration();
    const r = dp.run('from_container', ack());
    assertEvent(expectDrop(r, DROP_POLICY_DENIED, 'PEER denies'), { endpointId: PEER.id, direction: INGRESS, ruleId: 22, verdict: DENY }, 'drop');
    assert.equal(dp.ct(flowKey, CT_EGRESS), undefined);
  });

  it('a direct flow whose policy turns into a redirect is cut as "no socket" at the next generation', () => {
    using dp = new Datapath();
    expectVerdict(dp.run('from_container', syn()), TC_ACT_REDIRECT, 'direct SYN');
    dp.policy.install(POD.id, [...allowAll('ingress'), entry('egress', 'redirect', PEER.identity, 80, 7)]);
    dp.policy.bumpGeneration();
    const r = dp.run('from_container', ack());
    assertEvent(expectDrop(r, DROP_PROXY_NO_SOCKET, 'cut'), { verdict: REDIRECT, ruleId: 7 }, 'drop');
    assert.equal(dp.ct(flowKey, CT_EGRESS), undefined);
  });
});

describe('L7 redirect: the proxy\'s upstream connections', () => {
  /** The proxy's upstream connection NODE4:sport -> POD:80 entering POD, with the proxy's mark unless told otherwise. */
  const upstream = (dp: Datapath, flags: number, o: { sport?: number; mark?: number } = {}) =>
    dp.run('to_container', toPod(P.ETH_P_IP, tcp4(NODE4, POD.ip4, flags, { sport: o.sport ?? 33000, dport: 80 })), skbWithMark(o.mark ?? TndMark.TND_MARK_FROM_PROXY));

  it('a FROM_PROXY-marked packet passes to_container untouched by a deny-all ingress, tracked as FROM_PROXY; the pod\'s replies pass from_container after generation bumps', () => {
    using dp = new Datapath();
    dp.policy.install(POD.id, []); // nothing allowed, either way
    const r = upstream(dp, P.TCP_SYN);
    expectVerdict(r, TC_ACT_OK, 'marked SYN');
    assert.equal(r.ctx!.readUInt32LE(8), 0, 'mark cleared');
    assert.deepEqual(r.policy, [], 'not judged');
    const key = tuple4(NODE4, POD.ip4, 33000, 80);
    const e = dp.ct(key, CT_INGRESS);
    assert.equal(e?.flags, TndCtFlags.TND_CT_F_FROM_PROXY);
    assert.equal(e?.endpointId, POD.id);
    for (let i = 1; i <= 2; i++) {
      dp.policy.bumpGeneration();
      const reply = dp.run('from_container', fromPod(P.ETH_P_IP, tcp4(POD.ip4, NODE4, i === 1 ? P.TCP_SYN | P.TCP_ACK : P.TCP_ACK, { sport: 80, dport: 33000 })));
      expectVerdict(reply, TC_ACT_OK, `the reply after bump ${i}, to the node's stack`);
      assert.deepEqual([drops(reply), reply.policy], [[], []]);
    }
    assert.equal(dp.ct(key, CT_INGRESS)?.state, TndCtState.TND_CT_ESTABLISHED);
    assert.equal(dp.ct(key, CT_INGRESS)?.packetsRev, 2n);
    expectVerdict(upstream(dp, P.TCP_ACK), TC_ACT_OK, 'the next upstream packet');
    // An unmarked new connection from the same node address is judged, and denied.
    const fresh = upstream(dp, P.TCP_SYN, { sport: 33001, mark: 0 });
    assertEvent(expectDrop(fresh, DROP_POLICY_DENIED, 'unmarked connection'), { obsPoint: TO, direction: INGRESS }, 'drop');
    assert.equal(dp.ct(tuple4(NODE4, POD.ip4, 33001, 80), CT_INGRESS), undefined);
  });
});
