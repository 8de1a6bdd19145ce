/**
 * The policy model both formats are read into: a policy has specs, a spec
 * selects endpoints and enforces directions, and its peer rules say which
 * peers may (or may not) talk to those endpoints on which ports.
 */
import type { LabelSelector } from '../common/selector.js';
import type { HttpRule } from '../common/l7-policy.js';
import type { Direction, Verdict } from '../common/policy-entry.js';

export type PolicyKind = 'CiliumNetworkPolicy' | 'NetworkPolicy';

/** A set of peer identities, before the identities are known. */
export type Peer =
  /** One number for the policy key: a reserved identity, a class, or IDENTITY_ANY. */
  | { kind: 'identity'; identity: number }
  /** Endpoints whose labels the selector matches (already scoped to a namespace where the format says so). */
  | { kind: 'endpoints'; selector: LabelSelector }
  /** Addresses inside `cidr` but outside every `except`: normalised prefixes. */
  | { kind: 'cidr'; cidr: string; except: readonly string[] };

/** An inclusive destination port range of one protocol (6, 17 or 132); 0-65535 is every port. */
export interface PortRange {
  protocol: number;
  first: number;
  last: number;
  /**
   * TCP only: the HTTP requests allowed on these ports (any rule matching
   * allows). Present on an allow rule, the flow goes through the L7 proxy.
   */
  http?: readonly HttpRule[];
}

/** One item of ingress, egress, ingressDeny or egressDeny. */
export interface PeerRule {
  /** Where the rule is in the document, e.g. "specs[0].ingress[1]"; names it for the monitor and trace. */
  path: string;
  direction: Direction;
  verdict: Verdict;
  /** Any of these peers (empty: none). */
  peers: readonly Peer[];
  /** Only these ports; undefined = every port of every protocol. */
  ports: readonly PortRange[] | undefined;
}

/** One Cilium rule (spec or specs[i]) or a NetworkPolicy's spec. */
export interface PolicySpec {
  path: string;
  /** The endpoints the spec applies to (scoped to the policy's namespace when it has one). */
  subject: LabelSelector;
  /** Directions in which a selected endpoint becomes default-deny. */
  enforces: Readonly<Record<Direction, boolean>>;
  /** Only in enforced directions: a rule never applies where its spec leaves the endpoint default-allow. */
  rules: readonly PeerRule[];
}

export interface Policy {
  kind: PolicyKind;
  name: string;
  /** Undefined for a cluster-wide CiliumNetworkPolicy. */
  namespace: string | undefined;
  /** "namespace/name", or "name" when cluster-wide. */
  key: string;
  /** The document as imported (JSON value), with apiVersion and kind filled in when a List implied them. */
  document: unknown;
  specs: readonly PolicySpec[];
}

export function policyKey(namespace: string | undefined, name: string): string {
  return namespace === undefined ? name : `${namespace}/${name}`;
}
