/**
 * What the agent hands the L7 proxy, and what the proxy reports back: the
 * contract between the policy resolver, the proxy supervisor and the proxy
 * worker processes (over Node's IPC channel, so plain JSON values only).
 *
 * A flow reaches the proxy when the datapath's verdict for its first packet
 * was TND_POLICY_REDIRECT in the source endpoint's egress policy, the
 * destination endpoint's ingress policy, or both (the datapath records which,
 * and both identities, in the proxy flow map). Each request of the flow is then
 * judged by the entries of the direction(s) that redirected it: every such
 * direction must allow the request.
 */
import type { Direction } from './policy-entry.js';

/** One item of a CiliumNetworkPolicy's toPorts[].rules.http; every field present must match. */
export interface HttpRule {
  /** Regular expression source matched against the whole method (anchored: ^(?:...)$). */
  method?: string;
  /** Regular expression source matched against the whole normalised path (no query). */
  path?: string;
  /** Regular expression source matched against the whole Host header value, as sent (port included if the client sent one). */
  host?: string;
  /** Required headers, each "Name" (present) or "Name: value" (present with exactly that value). */
  headers?: readonly string[];
}

/**
 * The HTTP rules of one endpoint for one (direction, peer identity key, TCP port
 * range). identity is as in a policy map entry: an exact identity, a class value
 * or IDENTITY_ANY (lookupIdentities() in src/policy/entries.ts lists the keys a
 * peer matches). A request is allowed by the endpoint in that direction when
 * any rule of any entry that matches the peer and the port allows it.
 */
export interface L7Entry {
  direction: Direction;
  identity: number;
  /** Inclusive TCP destination port range. */
  firstPort: number;
  lastPort: number;
  rules: readonly HttpRule[];
  /** The policy rule these came from (the agent's rule table), for events. */
  ruleId: number;
}

export interface L7EndpointPolicy {
  endpointId: number;
  entries: readonly L7Entry[];
}

/** The whole node's L7 policy; a new revision replaces the previous one entirely. */
export interface L7PolicyTable {
  revision: number;
  endpoints: readonly L7EndpointPolicy[];
  /** Rule id -> "policy ingress[0]" style names, so events can say which rule decided. */
  ruleNames: Readonly<Record<number, string>>;
}

/** What the datapath recorded about a flow it steered into the proxy (tnd_proxy_flows). */
export interface ProxyFlow {
  srcIdentity: number;
  dstIdentity: number;
  /** 0 when the source is not a local endpoint. */
  srcEndpoint: number;
  /** 0 when the destination is not a local endpoint. */
  dstEndpoint: number;
  /** The source endpoint's egress policy redirected the flow. */
  egress: boolean;
  /** The destination endpoint's ingress policy redirected the flow. */
  ingress: boolean;
}

/** One HTTP request the proxy judged: `tendril monitor --type l7`. */
export interface L7Event {
  /** Unix time in ms when the request head was complete. */
  time: number;
  srcIdentity: number;
  dstIdentity: number;
  srcEndpoint: number;
  dstEndpoint: number;
  /** "10.200.0.5:41234" / "[fd00::5]:41234" */
  source: string;
  /** The original destination, "10.200.0.7:80". */
  destination: string;
  method: string;
  /** The path as normalised for matching (what the rules saw). */
  path: string;
  host?: string;
  verdict: 'allow' | 'deny';
  /** Response status: the upstream's, 403 for a denial, 400/408/431/502/504 for errors the proxy answered itself. */
  status: number;
  /** From the complete request head to the complete response head, in ms (fractional). */
  latencyMs: number;
  /** The rule that allowed the request (0 when denied or unknown). */
  ruleId: number;
}

/** Agent -> proxy worker. */
export type ProxyCommand =
  | { type: 'policy'; table: L7PolicyTable }
  /** Whether anyone is watching L7 events; workers skip building them when not. */
  | { type: 'monitor'; enabled: boolean }
  | { type: 'shutdown' };

/** Proxy worker -> agent. */
export type ProxyReport =
  /** The worker listens and takes flows. */
  | { type: 'ready'; worker: number; pid: number }
  /** The worker applies this policy revision to every request from now on. */
  | { type: 'applied'; worker: number; revision: number }
  | { type: 'events'; worker: number; events: L7Event[] }
  | { type: 'stats'; worker: number; stats: ProxyStats };

export interface ProxyStats {
  connections: number;
  activeConnections: number;
  requests: number;
  allowed: number;
  denied: number;
  errors: number;
}
