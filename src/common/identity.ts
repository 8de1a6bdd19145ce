/**
 * Security identities: the numbers the datapath compares instead of labels.
 * One identity per distinct label set, shared by every endpoint with that
 * set. The numbering (Cilium's, so its users recognise it):
 *   0              no identity; in a policy key, "any identity"
 *   1..255         reserved: the node, the world and the other entities
 *   256..2^24-1    endpoint identities, allocated cluster-wide (kvstore)
 *   2^24..         CIDR identities, allocated by each node for the prefixes
 *                  its policies name (node-local scope)
 * Policy keys also use two class values that stand for a whole range, so a
 * wildcard rule is one map entry however many identities exist.
 * bpf/lib/common.h declares the same numbers (enum tnd_identity); a test
 * checks the two agree.
 */
export const IDENTITY_ANY = 0;

export const ReservedIdentity = {
  host: 1,
  world: 2,
  unmanaged: 3,
  health: 4,
  init: 5,
  'remote-node': 6,
  'kube-apiserver': 7,
  ingress: 8,
} as const;
export type ReservedName = keyof typeof ReservedIdentity;

export const ENDPOINT_IDENTITY_MIN = 256;
export const ENDPOINT_IDENTITY_MAX = (1 << 24) - 1;
export const CIDR_IDENTITY_MIN = 1 << 24;
export const CIDR_IDENTITY_MAX = 0x7effffff;

/** Policy-key classes: every endpoint identity; every world identity (world and CIDR identities). */
export const IDENTITY_CLASS_ENDPOINTS = 0x7fff0001;
export const IDENTITY_CLASS_WORLD = 0x7fff0002;

export function isEndpointIdentity(id: number): boolean {
  return id >= ENDPOINT_IDENTITY_MIN && id <= ENDPOINT_IDENTITY_MAX;
}

export function isCidrIdentity(id: number): boolean {
  return id >= CIDR_IDENTITY_MIN && id <= CIDR_IDENTITY_MAX;
}

/** The class value a datapath lookup tries after the exact identity, or undefined. */
export function identityClass(id: number): number | undefined {
  if (isEndpointIdentity(id)) return IDENTITY_CLASS_ENDPOINTS;
  if (id === ReservedIdentity.world || isCidrIdentity(id)) return IDENTITY_CLASS_WORLD;
  return undefined;
}

/** The label set of a reserved identity: one key "reserved:<name>" with an empty value. */
export function reservedLabels(name: ReservedName): Record<string, string> {
  return { [`reserved:${name}`]: '' };
}
