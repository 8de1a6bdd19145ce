/**
 * The veth pair that joins a pod's network namespace to the node's: the host
 * side stays in the node netns (where the agent runs), the peer becomes the
 * pod's interface. Addresses and routes of the pod side point at the node's
 * router address, which the datapath answers for (ARP / neighbour discovery).
 */
import { readFileSync, writeFileSync, statSync } from 'node:fs';
import { TendrilError, invalid } from '../common/errors.js';
import { ipBatch, run } from './exec.js';

export interface VethSpec {
  hostName: string;
  hostMac: string;
  /** The pod netns; empty: the peer stays in the caller's netns (a runtime such as Docker moves it). */
  netns: string;
  podIfname: string;
  podMac: string;
}

export interface PodAddressing {
  ipv4: string;
  ipv6: string;
  routerIPv4: string;
  routerIPv6: string;
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

export function checkIfname(name: string): void {
  if (!IFNAME.test(name)) throw invalid(`interface name "${name}" is invalid (1-15 letters, digits, "_", "-", ".")`);
}

/** Identity of a network namespace file: its inode (two paths to one netns share it). */
export function netnsInode(path: string): number {
  let st;
  try {
    st = statSync(path);
  } catch {
    throw invalid(`netns path "${path}" does not exist`);
  }
  if (!st.isFile()) throw invalid(`netns path "${path}" is not a network namespace file`);
  return st.ino;
}

/** Creates the pair, both ends down, the peer already moved into the pod netns (if one is named). */
export async function createVeth(spec: VethSpec): Promise<void> {
  checkIfname(spec.hostName);
  checkIfname(spec.podIfname);
  try {
    await ipBatch([
      `link add ${spec.hostName} address ${spec.hostMac} type veth peer name ${spec.podIfname} address ${spec.podMac}${spec.netns ? ` netns ${spec.netns}` : ''}`,
    ]);
  } catch (err) {
    const text = (err as Error).message;
    if (/File exists/.test(text)) throw new TendrilError('conflict', `Cannot create ${spec.podIfname} in "${spec.netns}": an interface with that name exists there`);
    if (/netns|Invalid/.test(text)) throw invalid(`"${spec.netns}" is not a network namespace`);
    throw err;
  }
  // The host side needs no IPv6 address of its own: BPF answers the pod, and
  // no link-local chatter (MLD, neighbour discovery) should reach the pod
  // from it. IPv6 stays enabled so the node's stack can route to the pod
  // (NodePort packets the XDP load balancer hands it), over a static
  // neighbour entry (setLinkUpWithRoute).
  writeFileSync(`/proc/sys/net/ipv6/conf/${spec.hostName}/addr_gen_mode`, '1');
}

/** Gives the pod side its addresses and default routes via the router, and brings it up. */
export async function addressPod(spec: VethSpec, addr: PodAddressing): Promise<void> {
  const dev = spec.podIfname;
  await ipBatch(
    [
      `addr add ${addr.ipv4}/32 dev ${dev}`,
      `addr add ${addr.ipv6}/128 dev ${dev} nodad`,
      `link set ${dev} up`,
      `route add ${addr.routerIPv4} dev ${dev} scope link`,
      `route add default via ${addr.routerIPv4} dev ${dev}`,
      `route add ${addr.routerIPv6} dev ${dev}`,
      `route add default via ${addr.routerIPv6} dev ${dev}`,
    ],
    { netns: spec.netns },
  );
}

/**
 * Brings the host side up and routes the pod's addresses to it, so the
 * node's stack can reach the pod (replies from outside the node, the node's
 * own traffic, NodePort packets the XDP load balancer hands to the stack).
 * Pod-to-pod traffic never uses these routes: BPF delivers it. The routes
 * go away with the device.
 */
export async function setLinkUpWithRoute(name: string, ipv4: string, ipv6?: { address: string; podMac: string }): Promise<void> {
  checkIfname(name);
  const v6 = ipv6 ? [`route replace ${ipv6.address}/128 dev ${name}`, `neigh replace ${ipv6.address} lladdr ${ipv6.podMac} dev ${name} nud permanent`] : [];
  await ipBatch([`link set ${name} up`, `route replace ${ipv4}/32 dev ${name}`, ...v6]);
}

export async function deleteLink(name: string): Promise<void> {
  if (!linkExists(name)) return;
  try {
    await run('ip', ['link', 'del', name]);
  } catch (err) {
    if (linkExists(name)) throw err;
  }
}

/** Whether a link of this name exists in the caller's network namespace. */
export function linkExists(name: string): boolean {
  // /proc/net/dev is per network namespace of the reader (unlike /sys under nsenter).
  return readFileSync('/proc/net/dev', 'utf8')
    .split('\n')
    .some((line) => line.trimStart().startsWith(`${name}:`));
}
