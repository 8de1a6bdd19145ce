/**
 * The datapath's policy lookup, in TypeScript: for the exact identity, its
 * class and IDENTITY_ANY, the longest matching entry (a protocol's entries
 * are longer than protocol-0 ones, longer port prefixes longer still); a deny
 * among them wins, else an allow allows, else a redirect sends the connection
 * to the L7 proxy, else the packet is dropped. Trace
 * and tests use this, so they cannot disagree with the datapath.
 */
import type { Direction, PolicyMapEntry, Verdict } from '../common/policy-entry.js';
import { lookupIdentities } from './entries.js';

export interface LookupResult {
  verdict: Verdict;
  /** The deciding entry; undefined when nothing matched (default deny). */
  entry: PolicyMapEntry | undefined;
}

export function lookupEntries(
  entries: readonly PolicyMapEntry[],
  direction: Direction,
  identity: number,
  protocol: number,
  port: number,
): LookupResult {
  const found: PolicyMapEntry[] = [];
  for (const candidate of lookupIdentities(identity)) {
    let best: PolicyMapEntry | undefined;
    for (const e of entries) {
      if (e.direction !== direction || e.identity !== candidate || !matches(e, protocol, port)) continue;
      if (!best || matchLength(e) > matchLength(best)) best = e;
    }
    if (best) found.push(best);
  }
  const deny = found.find((e) => e.verdict === 'deny');
  if (deny) return { verdict: 'deny', entry: deny };
  const allow = found.find((e) => e.verdict === 'allow');
  if (allow) return { verdict: 'allow', entry: allow };
  const redirect = found[0];
  return redirect ? { verdict: 'redirect', entry: redirect } : { verdict: 'deny', entry: undefined };
}

function matches(e: PolicyMapEntry, protocol: number, port: number): boolean {
  if (e.protocol === 0) return true;
  if (e.protocol !== protocol) return false;
  const shift = 16 - e.portPrefixLen;
  return port >>> shift === e.port >>> shift;
}

/** Protocol-0 entries match on identity and direction alone, so they are the shortest. */
function matchLength(e: PolicyMapEntry): number {
  return e.protocol === 0 ? -1 : e.portPrefixLen;
}
