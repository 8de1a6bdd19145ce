/**
 * A CIDR peer as written: a prefix and the prefixes inside it to leave out
 * (Cilium's fromCIDR/fromCIDRSet, Kubernetes' ipBlock).
 */
import { formatPrefix } from '../common/ip.js';
import { parseCidr, prefixWithin } from './cidr.js';
import type { Field } from './field.js';
import type { Peer } from './model.js';

/** Reads `cidr` (a string field) and `except` (a list field, or undefined where the format has none). */
export function cidrPeer(cidr: Field, except: Field | undefined): Peer {
  const outer = cidr.check(() => parseCidr(cidr.string()));
  const excepted = (except?.list() ?? []).map((item) => {
    const inner = item.check(() => parseCidr(item.string()));
    if (!prefixWithin(inner, outer)) item.fail(`"${item.value as string}" is not inside cidr ${formatPrefix(outer)}`);
    return formatPrefix(inner);
  });
  return { kind: 'cidr', cidr: formatPrefix(outer), except: [...new Set(excepted)].sort() };
}
