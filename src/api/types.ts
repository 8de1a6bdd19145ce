/** Shapes of API answers that have no home in a subsystem. */
import type { MapSummary } from '../datapath/map-views.js';
import type { NodeProxyStatus } from '../proxy/node-proxy.js';
import type { ProxySockStats } from '../datapath/proxy-sock.js';

/** Services are shown as the load balancer produces them. */
export type { ServiceView, ServiceBackendView, Affinity } from '../loadbalancer/service.js';

export interface AgentStatus {
  node: string;
  version: string;
  pid: number;
  uptimeSec: number;
  socket: string;
  stateDir: string;
  podRanges: { ipv4: string; ipv6: string };
  router: { ipv4: string; ipv6: string };
  datapath: { bpffs: string; pinRoot: string; object: string; programsAttached: number };
  maps: MapSummary[];
  endpoints: number;
  /** Endpoints made ahead for the next adds (programs loaded): ready of target. */
  preparedEndpoints: { ready: number; target: number };
  policy: { policies: number; revision: number; identities: number; generation: number };
  monitor: { eventsReceived: number; subscribers: number };
  /** The L7 proxy; absent until a policy with HTTP rules first needs it. */
  proxy?: NodeProxyStatus;
  /** Socket redirection of the proxy's connections; absent when the agent runs with --no-proxy-redirect. */
  proxyRedirect?: ProxySockStats;
}


/** One imported policy as `policy list` shows it. */
export interface PolicySummaryView {
  /** "namespace/name", or "name" for a cluster-wide policy. */
  key: string;
  kind: string;
  name: string;
  namespace?: string;
  /** Rules (CiliumNetworkPolicy spec/specs entries; 1 for a NetworkPolicy). */
  rules: number;
  /** The directions its rules enforce. */
  directions: Array<'ingress' | 'egress'>;
}

export interface PolicyImportResult {
  imported: PolicySummaryView[];
  /** The repository's revision after the import. */
  revision: number;
  /** Endpoints whose policy map was rebuilt. */
  endpointsUpdated: number;
}

export interface PolicyDetail extends PolicySummaryView {
  /** The document as it was imported. */
  document: unknown;
}

export interface PolicyDeleteResult {
  deleted: string[];
  revision: number;
}

export interface TraceStep {
  direction: 'egress' | 'ingress';
  verdict: 'allow' | 'deny' | 'redirect';
  /** The deciding rule ("policy direction[index]"), absent for a default. */
  rule?: string;
  /** Why, in words: "rule ... allows", "no rule selects the destination: default allow", ... */
  reason: string;
}

export interface TracePeer {
  /** What the user asked for (labels, endpoint id, CIDR). */
  query: string;
  identity: number;
  labels: Record<string, string>;
  endpoint?: number;
}

export interface PolicyTraceResult {
  source: TracePeer;
  destination: TracePeer;
  port: number;
  protocol: string;
  /** The source's egress (absent when the source is outside the cluster: no policy of ours governs it). */
  egress?: TraceStep;
  ingress: TraceStep;
  verdict: 'allow' | 'deny' | 'redirect';
}

export interface IdentityView {
  id: number;
  kind: 'reserved' | 'endpoint' | 'cidr';
  labels: Record<string, string>;
  /** Local endpoints that carry it. */
  endpoints: number[];
}
