/**
 * The policy semantics evaluated directly on labels, one connection at a
 * time, with no index, cache, classes or pruning: what the resolver's
 * entries, looked up like the datapath does, must agree with.
 */
import { IDENTITY_ANY, IDENTITY_CLASS_ENDPOINTS, IDENTITY_CLASS_WORLD, ReservedIdentity, isCidrIdentity, isEndpointIdentity } from '../../common/identity.js';
import type { Labels } from '../../common/labels.js';
import type { Direction, Verdict } from '../../common/policy-entry.js';
import { RESERVED_PREFIX, selectorMatches } from '../../common/selector.js';
import { cidrLabel } from '../cidr.js';
import type { Peer, PeerRule, Policy } from '../model.js';

function peerMatches(peer: Peer, id: number, labels: Labels): boolean {
  switch (peer.kind) {
    case 'identity':
      if (peer.identity === IDENTITY_ANY) return true;
      if (peer.identity === IDENTITY_CLASS_ENDPOINTS) return isEndpointIdentity(id);
      if (peer.identity === IDENTITY_CLASS_WORLD) return id === ReservedIdentity.world || isCidrIdentity(id);
      return peer.identity === id;
    case 'endpoints': {
      const reserved = peer.selector.requirements.some((r) => r.key.startsWith(RESERVED_PREFIX));
      return (reserved || isEndpointIdentity(id)) && selectorMatches(peer.selector, labels);
    }
    case 'cidr':
      return cidrLabel(peer.cidr) in labels && peer.except.every((e) => !(cidrLabel(e) in labels));
  }
}

function ruleMatches(rule: PeerRule, id: number, labels: Labels, protocol: number, port: number): boolean {
  const portOk = rule.ports === undefined || rule.ports.some((r) => r.protocol === protocol && port >= r.first && port <= r.last);
  return portOk && rule.peers.some((p) => peerMatches(p, id, labels));
}

/** The verdicts for connections of one endpoint (its labels), by its policies' own semantics. */
export function verdictOracle(policies: readonly Policy[], endpoint: Labels) {
  const specs = policies.flatMap((p) => p.specs).filter((s) => selectorMatches(s.subject, endpoint));
  return (direction: Direction, peer: { id: number; labels: Labels }, protocol: number, port: number): Verdict => {
    if (!specs.some((s) => s.enforces[direction])) return 'allow';
    const rules = specs.flatMap((s) => s.rules).filter((r) => r.direction === direction && ruleMatches(r, peer.id, peer.labels, protocol, port));
    if (rules.some((r) => r.verdict === 'deny')) return 'deny';
    return rules.some((r) => r.verdict === 'allow') ? 'allow' : 'deny';
  };
}
