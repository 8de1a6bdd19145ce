/**
 * Identities as the identity allocator hands them to the resolver: reserved
 * ones, endpoint ones with user labels, and CIDR ones labelled with every
 * referenced prefix that contains them.
 */
import { CIDR_IDENTITY_MIN, ReservedIdentity, reservedLabels, type ReservedName } from '../../common/identity.js';
import { parseCidr, prefixWithin } from '../cidr.js';
import type { IdentityLabels } from '../identity-index.js';

export function reservedIdentities(): IdentityLabels[] {
  return (Object.keys(ReservedIdentity) as ReservedName[]).map((name) => ({
    id: ReservedIdentity[name],
    labels: name === 'world' ? { ...reservedLabels('world'), 'cidr:0.0.0.0/0': '', 'cidr:::/0': '' } : reservedLabels(name),
  }));
}

/** One CIDR identity per prefix, from CIDR_IDENTITY_MIN + offset on. */
export function cidrIdentities(prefixes: readonly string[], offset = 0): IdentityLabels[] {
  return prefixes.map((own, i) => {
    const ownPrefix = parseCidr(own);
    const labels: Record<string, string> = { 'reserved:world': '', [ownPrefix.family === 4 ? 'cidr:0.0.0.0/0' : 'cidr:::/0']: '' };
    for (const other of prefixes) if (prefixWithin(ownPrefix, parseCidr(other))) labels[`cidr:${other}`] = '';
    return { id: CIDR_IDENTITY_MIN + offset + i, labels };
  });
}

export function endpointIdentity(id: number, labels: Record<string, string>, namespace?: string): IdentityLabels {
  return { id, labels: namespace === undefined ? labels : { ...labels, 'io.kubernetes.pod.namespace': namespace } };
}
