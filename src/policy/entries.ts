/**
 * Policy-map entries: a rule's peers times its port prefixes, and the final
 * set for one endpoint with the contract's guarantee (policy-entry.ts) that
 * no allow lies inside a deny's range for the same or a broader identity.
 */
import { IDENTITY_ANY, identityClass } from '../common/identity.js';
import { portRangeToPrefixes, type Direction, type PolicyMapEntry } from '../common/policy-entry.js';
import type { PeerRule } from './model.js';

/** The single entry of a direction no policy selects: everything allowed, by no rule. */
export function allowAllEntry(direction: Direction): PolicyMapEntry {
  return { direction, identity: IDENTITY_ANY, protocol: 0, port: 0, portPrefixLen: 0, verdict: 'allow', ruleId: 0 };
}

/** Entries of one rule whose peers resolved to `identities` (policy-key values). */
export function ruleEntries(rule: PeerRule, identities: readonly number[], ruleId: number): PolicyMapEntry[] {
  const ranges: Array<{ protocol: number; port: number; portPrefixLen: number }> = [];
  if (rule.ports === undefined) ranges.push({ protocol: 0, port: 0, portPrefixLen: 0 });
  else
    for (const range of rule.ports)
      for (const { port, prefixLen } of portRangeToPrefixes(range.first, range.last))
        ranges.push({ protocol: range.protocol, port, portPrefixLen: prefixLen });
  const out: PolicyMapEntry[] = [];
  for (const identity of identities)
    for (const range of ranges) out.push({ direction: rule.direction, identity, ...range, verdict: rule.verdict, ruleId });
  return out;
}

/** True when every (protocol, port) `inner` matches, `outer` matches too. */
function rangeCovers(outer: PolicyMapEntry, inner: PolicyMapEntry): boolean {
  if (outer.protocol === 0) return true;
  if (inner.protocol !== outer.protocol || inner.portPrefixLen < outer.portPrefixLen) return false;
  const shift = 16 - outer.portPrefixLen;
  return inner.port >>> shift === outer.port >>> shift;
}

/** The identity itself, its class and IDENTITY_ANY: every key a lookup of it tries. */
export function lookupIdentities(identity: number): number[] {
  const out = [identity];
  const cls = identityClass(identity);
  if (cls !== undefined) out.push(cls);
  if (identity !== IDENTITY_ANY) out.push(IDENTITY_ANY);
  return out;
}

/**
 * Drops every allow that a deny for the same or a broader identity covers
 * (deny wins, so such an allow never decides), merges equal entries keeping
 * the lowest rule id, and sorts.
 */
export function finalizeEntries(entries: readonly PolicyMapEntry[]): PolicyMapEntry[] {
  const denies = new Map<string, PolicyMapEntry[]>();
  for (const e of entries) {
    if (e.verdict !== 'deny') continue;
    const key = `${e.direction} ${e.identity}`;
    const list = denies.get(key);
    if (list) list.push(e);
    else denies.set(key, [e]);
  }
  const unique = new Map<string, PolicyMapEntry>();
  for (const e of entries) {
    if (e.verdict === 'allow') {
      const covered = lookupIdentities(e.identity).some((id) =>
        (denies.get(`${e.direction} ${id}`) ?? []).some((deny) => rangeCovers(deny, e)),
      );
      if (covered) continue;
    }
    const key = `${e.direction} ${e.identity} ${e.protocol} ${e.port} ${e.portPrefixLen} ${e.verdict}`;
    const seen = unique.get(key);
    if (!seen || e.ruleId < seen.ruleId) unique.set(key, e);
  }
  return [...unique.values()].sort(compareEntries);
}

function compareEntries(a: PolicyMapEntry, b: PolicyMapEntry): number {
  return (
    a.direction.localeCompare(b.direction) ||
    a.identity - b.identity ||
    a.protocol - b.protocol ||
    a.port - b.port ||
    a.portPrefixLen - b.portPrefixLen ||
    a.verdict.localeCompare(b.verdict)
  );
}
