/**
 * Policy-map entries: a rule's peers times its port prefixes, and the final
 * set for one endpoint with the contract's guarantee (policy-entry.ts) that
 * no allow lies inside a deny's range for the same or a broader identity (nor
 * a redirect inside a deny's or an allow's). Also the proxy's HTTP rules.
 */
import { IDENTITY_ANY, identityClass } from '../common/identity.js';
import type { L7Entry } from '../common/l7-policy.js';
import { portRangeToPrefixes, type Direction, type PolicyMapEntry, type Verdict } from '../common/policy-entry.js';
import type { PeerRule } from './model.js';

/** The single entry of a direction no policy selects: everything allowed, by no rule. */
export function allowAllEntry(direction: Direction): PolicyMapEntry {
  return { direction, identity: IDENTITY_ANY, protocol: 0, port: 0, portPrefixLen: 0, verdict: 'allow', ruleId: 0 };
}

/**
 * Entries of one rule whose peers resolved to `identities` (policy-key
 * values). Ports with HTTP rules of an allow rule become redirects: the L7
 * proxy judges their requests (l7Entries() says by which rules).
 */
export function ruleEntries(rule: PeerRule, identities: readonly number[], ruleId: number): PolicyMapEntry[] {
  const ranges: Array<{ protocol: number; port: number; portPrefixLen: number; verdict: Verdict }> = [];
  if (rule.ports === undefined) ranges.push({ protocol: 0, port: 0, portPrefixLen: 0, verdict: rule.verdict });
  else
    for (const range of rule.ports) {
      const verdict: Verdict = rule.verdict === 'allow' && range.http ? 'redirect' : rule.verdict;
      for (const { port, prefixLen } of portRangeToPrefixes(range.first, range.last))
        ranges.push({ protocol: range.protocol, port, portPrefixLen: prefixLen, verdict });
    }
  const out: PolicyMapEntry[] = [];
  for (const identity of identities) for (const range of ranges) out.push({ direction: rule.direction, identity, ...range, ruleId });
  return out;
}

/** The HTTP rules one rule hands the proxy, per peer identity and port range. */
export function l7Entries(rule: PeerRule, identities: readonly number[], ruleId: number): L7Entry[] {
  const out: L7Entry[] = [];
  if (rule.verdict !== 'allow' || rule.ports === undefined) return out;
  for (const range of rule.ports) {
    if (!range.http) continue;
    for (const identity of identities)
      out.push({ direction: rule.direction, identity, firstPort: range.first, lastPort: range.last, rules: range.http, ruleId });
  }
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
 * Drops every allow or redirect that a deny for the same or a broader
 * identity covers (deny wins, so such an entry never decides), and every
 * redirect an allow covers so (allow wins over redirect: an L4 allow lets
 * every request through), merges equal entries keeping the lowest rule id,
 * and sorts. So within one identity the longest match is always right.
 */
export function finalizeEntries(entries: readonly PolicyMapEntry[]): PolicyMapEntry[] {
  const byVerdict = { deny: new Map<string, PolicyMapEntry[]>(), allow: new Map<string, PolicyMapEntry[]>() };
  for (const e of entries) {
    if (e.verdict === 'redirect') continue;
    const map = byVerdict[e.verdict];
    const key = `${e.direction} ${e.identity}`;
    const list = map.get(key);
    if (list) list.push(e);
    else map.set(key, [e]);
  }
  const coveredBy = (map: Map<string, PolicyMapEntry[]>, e: PolicyMapEntry): boolean =>
    lookupIdentities(e.identity).some((id) => (map.get(`${e.direction} ${id}`) ?? []).some((outer) => rangeCovers(outer, e)));
  const unique = new Map<string, PolicyMapEntry>();
  for (const e of entries) {
    if (e.verdict !== 'deny' && coveredBy(byVerdict.deny, e)) continue;
    if (e.verdict === 'redirect' && coveredBy(byVerdict.allow, e)) continue;
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
