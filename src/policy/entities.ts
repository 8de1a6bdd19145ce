/**
 * Cilium entities: names for peers that are not endpoints selected by labels.
 * Each becomes policy-key identities: a reserved identity, a class standing
 * for a whole range, or IDENTITY_ANY, so no entity expands per identity.
 */
import { IDENTITY_ANY, IDENTITY_CLASS_ENDPOINTS, IDENTITY_CLASS_WORLD, ReservedIdentity } from '../common/identity.js';

const NODE_SIDE = [
  ReservedIdentity.host,
  ReservedIdentity['remote-node'],
  ReservedIdentity.health,
  ReservedIdentity.init,
  ReservedIdentity.unmanaged,
  ReservedIdentity['kube-apiserver'],
  ReservedIdentity.ingress,
];

const ENTITIES: Readonly<Record<string, readonly number[]>> = {
  all: [IDENTITY_ANY],
  world: [IDENTITY_CLASS_WORLD],
  cluster: [...NODE_SIDE, IDENTITY_CLASS_ENDPOINTS],
  host: [ReservedIdentity.host],
  'remote-node': [ReservedIdentity['remote-node']],
  health: [ReservedIdentity.health],
  init: [ReservedIdentity.init],
  unmanaged: [ReservedIdentity.unmanaged],
  'kube-apiserver': [ReservedIdentity['kube-apiserver']],
  ingress: [ReservedIdentity.ingress],
};

export const ENTITY_NAMES: readonly string[] = Object.keys(ENTITIES);

/** The identities an entity stands for, or undefined for a name that is not an entity. */
export function entityIdentities(name: string): readonly number[] | undefined {
  return Object.hasOwn(ENTITIES, name) ? ENTITIES[name] : undefined;
}
