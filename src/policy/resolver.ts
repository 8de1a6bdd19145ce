/**
 * Policies plus identities to policy-map entries per endpoint. Each peer
 * rule's identities are computed once (each distinct selector through the
 * label index) and shared by every endpoint the rule applies to; an
 * endpoint's result is kept per label set, as identities share labels.
 * Wildcards stay one entry: "all" is IDENTITY_ANY, "world" the world class,
 * an unscoped {} selector the endpoint class.
 */
import {
  IDENTITY_ANY,
  IDENTITY_CLASS_ENDPOINTS,
  IDENTITY_CLASS_WORLD,
  ReservedIdentity,
  isCidrIdentity,
  isEndpointIdentity,
} from '../common/identity.js';
import type { Labels } from '../common/labels.js';
import type { Direction, PolicyMapEntry } from '../common/policy-entry.js';
import { RESERVED_PREFIX, selectorMatches, type LabelSelector, type Requirement } from '../common/selector.js';
import { cidrLabel } from './cidr.js';
import { allowAllEntry, finalizeEntries, l7Entries, ruleEntries } from './entries.js';
import type { L7Entry } from '../common/l7-policy.js';
import { IdentityIndex, type IdentityLabels } from './identity-index.js';
import type { Peer, PeerRule, Policy, PolicySpec } from './model.js';
import { RuleTable } from './rule-table.js';

const DIRECTIONS: readonly Direction[] = ['ingress', 'egress'];

export interface Resolution {
  /** Both directions' entries, sorted. */
  entries: readonly PolicyMapEntry[];
  /** Per direction, the keys of the policies that make it default-deny for the endpoint (empty: not enforced). */
  enforcedBy: Readonly<Record<Direction, readonly string[]>>;
  /** The HTTP rules of the endpoint's redirect entries, for the L7 proxy. */
  l7: readonly L7Entry[];
}

export class PolicyResolver {
  private readonly index: IdentityIndex;
  private readonly specs: Array<{ policy: Policy; spec: PolicySpec }> = [];
  private readonly ruleIds = new Map<PeerRule, number>();
  private readonly entriesOfRule = new Map<PeerRule, { entries: PolicyMapEntry[]; l7: L7Entry[] }>();
  private readonly byLabels = new Map<string, Resolution>();

  constructor(
    readonly policies: readonly Policy[],
    identities: readonly IdentityLabels[],
    /** Where rule ids come from; the repository passes its persisted table. */
    readonly rules: RuleTable = new RuleTable(),
  ) {
    this.index = new IdentityIndex(identities);
    for (const policy of policies)
      for (const spec of policy.specs) {
        this.specs.push({ policy, spec });
        for (const rule of spec.rules)
          this.ruleIds.set(rule, rules.idOf({ policy: policy.key, path: rule.path, direction: rule.direction, verdict: rule.verdict }));
      }
  }

  get identities(): readonly IdentityLabels[] {
    return this.index.identities;
  }

  labelsOf(identity: number): Labels | undefined {
    return this.index.labelsOf(identity);
  }

  /** The policy-map entries of an endpoint with these labels (both directions). */
  entriesFor(endpoint: { labels: Labels }): PolicyMapEntry[] {
    return [...this.resolve(endpoint).entries];
  }

  resolve(endpoint: { labels: Labels }): Resolution {
    const cacheKey = JSON.stringify(Object.entries(endpoint.labels).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
    let result = this.byLabels.get(cacheKey);
    if (!result) {
      result = this.compute(endpoint.labels);
      this.byLabels.set(cacheKey, result);
    }
    return result;
  }

  private compute(labels: Labels): Resolution {
    const enforcedBy: Record<Direction, string[]> = { ingress: [], egress: [] };
    const collected: PolicyMapEntry[] = [];
    const l7: L7Entry[] = [];
    for (const { policy, spec } of this.specs) {
      if (!selectorMatches(spec.subject, labels)) continue;
      for (const direction of DIRECTIONS)
        if (spec.enforces[direction] && !enforcedBy[direction].includes(policy.key)) enforcedBy[direction].push(policy.key);
      for (const rule of spec.rules) {
        const of = this.entriesOf(rule);
        for (const e of of.entries) collected.push(e);
        for (const e of of.l7) l7.push(e);
      }
    }
    for (const direction of DIRECTIONS) if (enforcedBy[direction].length === 0) collected.push(allowAllEntry(direction));
    return { entries: finalizeEntries(collected), enforcedBy, l7 };
  }

  private entriesOf(rule: PeerRule): { entries: PolicyMapEntry[]; l7: L7Entry[] } {
    let of = this.entriesOfRule.get(rule);
    if (!of) {
      const identities = this.peerIdentities(rule.peers);
      const ruleId = this.ruleIds.get(rule)!;
      of = { entries: ruleEntries(rule, identities, ruleId), l7: l7Entries(rule, identities, ruleId) };
      this.entriesOfRule.set(rule, of);
    }
    return of;
  }

  /** Policy-key identities for a rule's peers, with members of a listed class or of ANY left out. */
  private peerIdentities(peers: readonly Peer[]): number[] {
    const ids = new Set<number>();
    for (const peer of peers) for (const id of this.identitiesOfPeer(peer)) ids.add(id);
    if (ids.has(IDENTITY_ANY)) return [IDENTITY_ANY];
    const endpointClass = ids.has(IDENTITY_CLASS_ENDPOINTS);
    const worldClass = ids.has(IDENTITY_CLASS_WORLD);
    return [...ids]
      .filter((id) => !(endpointClass && isEndpointIdentity(id)) && !(worldClass && (id === ReservedIdentity.world || isCidrIdentity(id))))
      .sort((a, b) => a - b);
  }

  private identitiesOfPeer(peer: Peer): readonly number[] {
    switch (peer.kind) {
      case 'identity':
        return [peer.identity];
      case 'endpoints': {
        // A selector naming reserved labels may select reserved identities; others select endpoints only.
        const reserved = peer.selector.requirements.some((r) => r.key.startsWith(RESERVED_PREFIX));
        if (!reserved && peer.selector.requirements.length === 0) return [IDENTITY_CLASS_ENDPOINTS];
        return this.index.select(peer.selector, reserved ? 'all' : 'endpoints');
      }
      case 'cidr':
        return this.index.select(cidrSelector(peer.cidr, peer.except), 'all');
    }
  }
}

/** Inside `cidr` and outside every `except`, in CIDR-identity labels. */
function cidrSelector(cidr: string, except: readonly string[]): LabelSelector {
  const requirements: Requirement[] = [{ key: cidrLabel(cidr), operator: 'Exists', values: [] }];
  for (const prefix of except) requirements.push({ key: cidrLabel(prefix), operator: 'DoesNotExist', values: [] });
  return { requirements };
}
