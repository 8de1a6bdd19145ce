import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TndDropReason, TndEvent, TndEventType, TndObsPoint, TndPolicyDir, TndPolicyVerdict } from '../bpf/generated/wire.js';
import { decodeEvent, formatEvent } from './event.js';

const be16 = (n: number) => ((n & 0xff) << 8) | (n >> 8);
const v4 = (...b: number[]) => Buffer.concat([Buffer.from(b), Buffer.alloc(12)]);

/** A raw event of a TCP SYN 10.200.1.5:40000 -> 10.200.1.6:80 about endpoint 3. */
function raw(o: Partial<TndEvent>): Buffer {
  return TndEvent.encode({
    timestampNs: 5_000_000_000n,
    type: TndEventType.TND_EVENT_TRACE,
    obsPoint: TndObsPoint.TND_OBS_TO_ENDPOINT,
    reason: 0,
    endpointId: 3,
    ctState: 0,
    tcpFlags: 0x02,
    ifindex: 7,
    targetIfindex: 0,
    pktLen: 74,
    family: 2,
    proto: 6,
    sport: be16(40000),
    dport: be16(80),
    saddr: v4(10, 200, 1, 5),
    daddr: v4(10, 200, 1, 6),
    srcIdentity: 0,
    dstIdentity: 0,
    ruleId: 0,
    verdict: 0,
    direction: 0,
    ...o,
  });
}

const policyFields = { srcIdentity: 256, dstIdentity: 257, ruleId: 5, verdict: TndPolicyVerdict.TND_POLICY_ALLOW, direction: TndPolicyDir.TND_POLICY_INGRESS };

describe('monitor events', () => {
  it('a policy event decodes into verdict, direction, rule and both identities', () => {
    const ev = decodeEvent(raw({ type: TndEventType.TND_EVENT_POLICY, ...policyFields }), 0);
    assert.equal(ev.type, 'policy');
    assert.equal(ev.verdict, 'allow');
    assert.equal(ev.direction, 'ingress');
    assert.equal(ev.ruleId, 5);
    assert.equal(ev.sourceIdentity, 256);
    assert.equal(ev.destinationIdentity, 257);
    assert.equal(ev.ctState, undefined);
  });

  it('prints a policy event as one line, with the rule when the agent named it', () => {
    const ev = decodeEvent(raw({ type: TndEventType.TND_EVENT_POLICY, ...policyFields }), 0);
    ev.rule = 'allow-web';
    assert.match(formatEvent(ev), /^\d\d:\d\d:\d\d\.\d{3} POLICY ingress ALLOW ep 3 \(identity 256 -> 257, rule 5 "allow-web"\): 10\.200\.1\.5:40000 -> 10\.200\.1\.6:80 TCP SYN$/);
    delete ev.rule;
    assert.match(formatEvent(ev), /POLICY ingress ALLOW ep 3 \(identity 256 -> 257, rule 5\): /);
    const deny = decodeEvent(raw({ type: TndEventType.TND_EVENT_POLICY, ...policyFields, verdict: TndPolicyVerdict.TND_POLICY_DENY, ruleId: 0, direction: TndPolicyDir.TND_POLICY_EGRESS }), 0);
    assert.match(formatEvent(deny), /POLICY egress DENY ep 3 \(identity 256 -> 257, no rule\): /);
  });

  it('a drop by policy reads "policy denied" and carries its rule; other drops do not', () => {
    const ev = decodeEvent(raw({ type: TndEventType.TND_EVENT_DROP, reason: TndDropReason.DROP_POLICY_DENIED, ...policyFields, verdict: TndPolicyVerdict.TND_POLICY_DENY }), 0);
    assert.equal(ev.reason, 'policy denied');
    assert.equal(ev.verdict, 'deny');
    ev.rule = 'deny-db';
    assert.match(formatEvent(ev), /DROP \(policy denied\) ep 3 if 7 \(ingress, identity 256 -> 257, rule 5 "deny-db"\): 10\.200\.1\.5:40000 -> 10\.200\.1\.6:80 TCP SYN$/);
    assert.equal(decodeEvent(raw({ type: TndEventType.TND_EVENT_DROP, reason: TndDropReason.DROP_NO_POLICY, ...policyFields, verdict: TndPolicyVerdict.TND_POLICY_DENY }), 0).reason, 'no policy');
    const ttl = decodeEvent(raw({ type: TndEventType.TND_EVENT_DROP, reason: TndDropReason.DROP_TTL_EXCEEDED }), 0);
    assert.equal(ttl.verdict, undefined);
    assert.match(formatEvent(ttl), /DROP \(ttl exceeded\) ep 3 if 7: 10\.200\.1\.5/);
  });

  it('a redirect verdict reads "redirect"; the L7 drops read as what happened', () => {
    const ev = decodeEvent(raw({ type: TndEventType.TND_EVENT_POLICY, ...policyFields, verdict: TndPolicyVerdict.TND_POLICY_REDIRECT }), 0);
    assert.equal(ev.verdict, 'redirect');
    assert.match(formatEvent(ev), /POLICY ingress REDIRECT ep 3 /);
    const drop = decodeEvent(raw({ type: TndEventType.TND_EVENT_DROP, reason: TndDropReason.DROP_PROXY_UNAVAILABLE, ...policyFields, verdict: TndPolicyVerdict.TND_POLICY_REDIRECT }), 0);
    assert.equal(drop.reason, 'L7 proxy not running');
    assert.match(formatEvent(drop), /DROP \(L7 proxy not running\) ep 3 if 7 \(ingress, identity 256 -> 257/);
    assert.equal(decodeEvent(raw({ type: TndEventType.TND_EVENT_DROP, reason: TndDropReason.DROP_PROXY_NO_SOCKET }), 0).reason, 'L7 flow without proxy connection');
    assert.equal(decodeEvent(raw({ type: TndEventType.TND_EVENT_DROP, reason: TndDropReason.DROP_PROXY_UNSUPPORTED }), 0).reason, 'L7 redirect not possible on this path');
  });

  it('traces are as before', () => {
    const ev = decodeEvent(raw({}), 0);
    assert.equal(ev.type, 'trace');
    assert.equal(ev.ctState, 'new');
    assert.match(formatEvent(ev), /TRACE to-endpoint ep 3 if 7: 10\.200\.1\.5:40000 -> 10\.200\.1\.6:80 TCP SYN \[new\]$/);
  });

  it('an unknown event type is an error, not a trace', () => {
    assert.throws(() => decodeEvent(raw({ type: 9 }), 0), /unknown event type 9/);
  });
});
