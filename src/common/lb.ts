/**
 * The load balancer's model, shared by the service manager
 * (src/loadbalancer/, what users ask for) and the datapath's LB maps
 * (src/datapath/lb-maps.ts, what the kernel reads). The manager turns a
 * service into frontend entries, backend entries and a Maglev table; the
 * datapath writes them, one map entry each.
 *
 * Addresses are strings as users write them ("10.96.0.10", "fd10:96::a");
 * ports are host-order numbers.
 */

export type LbProtocol = 'TCP' | 'UDP';
/**
 * HostPort: an endpoint's port map ("8080:80/TCP"), owned by that endpoint:
 * made, restored and removed with it, never changed through `service`.
 */
export type ServiceType = 'ClusterIP' | 'NodePort' | 'ExternalIP' | 'HostPort';
export type LbMode = 'snat' | 'dsr';
/** A terminating backend keeps its connections but gets no new ones. */
export type BackendState = 'active' | 'terminating';

/**
 * Who reaches a frontend entry: pods of the node (cluster: connect() and
 * packets from endpoints), or clients outside the node arriving on its
 * external interface (nodeport: any node address at that port; external: an
 * ExternalIP routed to the node). A NodePort service has a cluster frontend
 * and a nodeport one.
 */
export type FrontendScope = 'cluster' | 'nodeport' | 'external';

/**
 * A pod's port published on the node (hostPort): any node address at
 * hostPort reaches the pod's containerPort, from outside the node. The load
 * balancer serves it as a nodeport-scope frontend with the pod as its one
 * backend, in each of the pod's families.
 */
export interface PortMap {
  hostPort: number;
  containerPort: number;
  protocol: LbProtocol;
}

export interface Frontend {
  /** For scope "nodeport": "0.0.0.0" or "::" (every address of the node in that family). */
  address: string;
  port: number;
  protocol: LbProtocol;
}

export interface BackendEntry {
  /** Node-wide backend id, 1..2^32-1; 0 is "none" in a Maglev slot. */
  id: number;
  address: string;
  port: number;
  protocol: LbProtocol;
  state: BackendState;
}

export interface FrontendEntry {
  frontend: Frontend;
  scope: FrontendScope;
  /** The service's id: also its reverse-NAT id (replies are rewritten back to `frontend`). */
  serviceId: number;
  mode: LbMode;
  /** Client-IP affinity: a client keeps its backend while it was seen within this many seconds; 0 = none. */
  affinityTimeoutSec: number;
  /** The Maglev table (tnd_lb_maglev) that picks this service's backends. */
  maglevId: number;
  /** Active backends; 0: the datapath refuses new connections (ECONNREFUSED, TCP reset, ICMP unreachable), never black-holes them. */
  activeBackends: number;
}

/**
 * What the manager needs from the datapath. Writes are ordered by the caller
 * so a lookup never dangles: backends, then the Maglev table, then the
 * frontend; deletion the other way round.
 */
export interface LbDatapath {
  /** M: the prime number of slots of every Maglev table. */
  readonly maglevSize: number;
  setBackend(b: BackendEntry): void;
  deleteBackend(id: number): void;
  /** `table` has maglevSize backend ids. */
  setMaglev(id: number, table: Uint32Array): void;
  /** setMaglev() for many tables at once, where the datapath does that faster (a restore writes them all). */
  setMaglevBatch?(tables: Array<[number, Uint32Array]>): Promise<void>;
  deleteMaglev(id: number): void;
  setFrontend(f: FrontendEntry): void;
  deleteFrontend(frontend: Frontend, scope: FrontendScope): void;
  /** New connections the datapath sent to each backend (by id) since the backend was set. */
  backendConnections(): Map<number, number>;
}
