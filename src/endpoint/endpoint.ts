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
  createdAt: string;
}

export interface CniAttachment {
  network: string;
  containerId: string;
}

export const MAX_ENDPOINT_ID = 0xffff;
