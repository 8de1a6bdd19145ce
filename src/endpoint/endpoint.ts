/** An endpoint: one pod network namespace attached to the node. */
import type { Labels } from '../common/labels.js';
import type { PortMap } from '../common/lb.js';

export interface Endpoint {
  id: number;
  netns: string;
  /** Inode of the netns file: identifies the namespace whatever path names it. */
  netnsInode: number;
  ifname: string;
  hostIfname: string;
  ifindex: number;
  podMac: string;
  hostMac: string;
  ipv4: string;
  ipv6: string;
  labels: Labels;
  identity: number;
  /** hostPort-style port maps: node address:hostPort reaches the pod's containerPort (absent in older state files: none). */
  portMaps?: PortMap[];
  /** Made by a CNI ADD: the attachment's network name and container id (its ifname is `ifname`). */
  attachment?: CniAttachment;
  /** Made by tendril-docker's CreateEndpoint: Docker's network and endpoint ids (netns is empty: Docker moves the pod side). */
  docker?: DockerAttachment;
  /** The IPAM reservation whose addresses the endpoint uses (Docker's IPAM); absent: it owns its addresses. */
  reservation?: string;
  /** Carries nothing until EndpointManager.unhold (host side down, no endpoints-map entry). */
  held?: boolean;
  /** endpointDatapathVersion() of the programs attached (absent in older state files: replaced at the next restore). */
  datapath?: string;
  createdAt: string;
}

export interface CniAttachment {
  network: string;
  containerId: string;
}

export interface DockerAttachment {
  networkId: string;
  endpointId: string;
  /** Whether Docker configures the IPv6 address in the container (a network made with --ipv6). */
  ipv6: boolean;
}

export const MAX_ENDPOINT_ID = 0xffff;
