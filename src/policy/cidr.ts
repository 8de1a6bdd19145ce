/**
 * CIDR peers and CIDR identities. A CIDR identity stands for one prefix some
 * policy names and carries a label "cidr:<X>" for every named prefix X that
 * contains it (and for 0.0.0.0/0 or ::/0); so "inside 10.0.0.0/8 but not
 * 10.1.0.0/16" is a label selector: has cidr:10.0.0.0/8, lacks cidr:10.1.0.0/16.
 */
import { invalid } from '../common/errors.js';
import { ReservedIdentity, isCidrIdentity } from '../common/identity.js';
import { maskBytes, parseIP, prefixContains, type Prefix } from '../common/ip.js';
import type { Labels } from '../common/labels.js';
import type { Policy } from './model.js';

export const CIDR_LABEL_PREFIX = 'cidr:';

export function cidrLabel(prefix: string): string {
  return CIDR_LABEL_PREFIX + prefix;
}

/**
 * Parses "ADDRESS/LENGTH" (or a bare address: its host prefix). Host bits are
 * cleared as Kubernetes and Cilium do, so existing policies import unchanged.
 */
export function parseCidr(text: string): Prefix {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  let parsed: ReturnType<typeof parseIP>;
  try {
    parsed = parseIP(address);
  } catch {
    throw invalid(`"${text}" is not a CIDR prefix (ADDRESS/LENGTH, e.g. 10.0.0.0/8)`);
  }
  const max = parsed.family === 4 ? 32 : 128;
  const lengthText = slash < 0 ? String(max) : text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(lengthText) || Number(lengthText) > max)
    throw invalid(`"${text}" has an invalid prefix length (0-${max})`);
  const length = Number(lengthText);
  return { family: parsed.family, bytes: maskBytes(parsed.bytes, length), length };
}

export function prefixWithin(inner: Prefix, outer: Prefix): boolean {
  return inner.family === outer.family && inner.length >= outer.length && prefixContains(outer, inner.bytes);
}

/**
 * Every prefix the policies name (cidr and except values), normalised and
 * sorted: the identity allocator gives each one a CIDR identity. Zero-length
 * prefixes are left out: the world identity already stands for them.
 */
export function referencedCidrs(policies: readonly Policy[]): string[] {
  const out = new Set<string>();
  for (const policy of policies)
    for (const spec of policy.specs)
      for (const rule of spec.rules)
        for (const peer of rule.peers) {
          if (peer.kind !== 'cidr') continue;
          for (const prefix of [peer.cidr, ...peer.except]) if (!prefix.endsWith('/0')) out.add(prefix);
        }
  return [...out].sort();
}

/** The prefix a CIDR identity stands for: the longest of its cidr: labels. */
export function ownPrefixOf(labels: Labels): Prefix | undefined {
  let best: Prefix | undefined;
  for (const key of Object.keys(labels)) {
    if (!key.startsWith(CIDR_LABEL_PREFIX)) continue;
    const prefix = parseCidr(key.slice(CIDR_LABEL_PREFIX.length));
    if (!best || prefix.length > best.length) best = prefix;
  }
  return best;
}

/**
 * The identity an address or prefix maps to, as the ipcache would map it:
 * the CIDR identity with the longest prefix that contains it, else world.
 */
export function identityForAddress(identities: ReadonlyArray<{ id: number; labels: Labels }>, text: string): number {
  const target = parseCidr(text);
  let best: { id: number; length: number } | undefined;
  for (const identity of identities) {
    if (!isCidrIdentity(identity.id)) continue;
    const own = ownPrefixOf(identity.labels);
    if (own && prefixWithin(target, own) && (!best || own.length > best.length)) best = { id: identity.id, length: own.length };
  }
  return best?.id ?? ReservedIdentity.world;
}
