/**
 * The veth pair that joins a pod's network namespace to the node's: the host
 * side stays in the node netns (where the agent runs), the peer becomes the
 * pod's interface. Addresses and routes of the pod side point at the node's
 * router address, which the datapath answers for (ARP / neighbour discovery).
 */
import { closeSync, openSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { TendrilError, invalid } from '../common/errors.js';
import { ifNameToIndex } from '../sys/index.js';
import { inNetns } from '../sys/netns.js';
import { netlinkRequest, netlinkRequestAsync, type NetlinkError } from '../sys/netlink.js';
import { addHostAddress, addRoute, addVethPair, deleteLinkByName, replaceNeighbour, setLinkUp } from './rtnl.js';

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
export function createVeth(spec: VethSpec): void {
  checkIfname(spec.hostName);
  checkIfname(spec.podIfname);
  let nsFd: number | undefined;
  try {
    if (spec.netns) nsFd = openSync(spec.netns, 'r');
  } catch {
    throw invalid(`"${spec.netns}" is not a network namespace`);
  }
  try {
    netlinkRequest([addVethPair({ hostName: spec.hostName, hostMac: spec.hostMac, peerName: spec.podIfname, peerMac: spec.podMac, ...(nsFd !== undefined ? { peerNetnsFd: nsFd } : {}) })]);
  } catch (err) {
    const code = (err as NetlinkError).code;
    // The host name is the agent's own and fresh: a name taken is the pod's.
    if (code === 'EEXIST') throw new TendrilError('conflict', `Cannot create ${spec.podIfname} in "${spec.netns}": an interface with that name exists there`);
    if (code === 'EINVAL' || code === 'EBADF') throw invalid(`"${spec.netns}" is not a network namespace`);
    throw err;
  } finally {
    if (nsFd !== undefined) closeSync(nsFd);
  }
  // The host side needs no IPv6 address of its own: BPF answers the pod, and
  // no link-local chatter (MLD, neighbour discovery) should reach the pod
  // from it. IPv6 stays enabled so the node's stack can route to the pod
  // (NodePort packets the XDP load balancer hands it), over a static
  // neighbour entry (setLinkUpWithRoute).
  writeFileSync(`/proc/sys/net/ipv6/conf/${spec.hostName}/addr_gen_mode`, '1');
}

/** Gives the pod side its addresses and default routes via the router, and brings it up. */
export function addressPod(spec: VethSpec, addr: PodAddressing): void {
  const dev = inNetns(spec.netns, () => ifNameToIndex(spec.podIfname));
  netlinkRequest(
    [
      addHostAddress(dev, addr.ipv4),
      addHostAddress(dev, addr.ipv6),
      setLinkUp(dev, spec.podIfname),
      // The router is on the link (a /32 has no subnet to find it in).
      addRoute({ family: 4, to: addr.routerIPv4, oif: dev }),
      addRoute({ family: 4, via: addr.routerIPv4, oif: dev }),
      addRoute({ family: 6, to: addr.routerIPv6, oif: dev }),
      addRoute({ family: 6, via: addr.routerIPv6, oif: dev }),
    ],
    spec.netns,
  );
}

/**
 * Brings the host side up and routes the pod's addresses to it, so the
 * node's stack can reach the pod (replies from outside the node, the node's
 * own traffic, NodePort packets the XDP load balancer hands to the stack).
 * Pod-to-pod traffic never uses these routes: BPF delivers it. The routes
 * go away with the device.
 */
export function setLinkUpWithRoute(name: string, ipv4: string, ipv6?: { address: string; podMac: string }): void {
  checkIfname(name);
  const index = ifNameToIndex(name);
  const v6 = ipv6 ? [addRoute({ family: 6, to: ipv6.address, oif: index, replace: true }), replaceNeighbour(index, ipv6.address, ipv6.podMac)] : [];
  netlinkRequest([setLinkUp(index, name), addRoute({ family: 4, to: ipv4, oif: index, replace: true }), ...v6]);
}

/**
 * Deletes the link (a veth takes its peer along). Resolves once the kernel
 * has unlisted both: from then on nothing finds or uses them. The kernel's
 * clean-up after that (it waits for an RCU grace period, 10-20 ms here)
 * goes on in the background; a refusal still rejects, since the link then
 * stays listed.
 */
export async function deleteLink(name: string): Promise<void> {
  if (!linkExists(name)) return;
  let answered = false;
  const request = netlinkRequestAsync([deleteLinkByName(name)])
    .catch((err) => {
      if (linkExists(name)) throw err;
    })
    .finally(() => (answered = true));
  // The unlisting comes within a millisecond or two of the request.
  const unlisted = (async () => {
    while (!answered && linkExists(name)) await new Promise((resolve) => setTimeout(resolve, 1));
  })();
  await Promise.race([request, unlisted]);
}

/** Names of the links in the caller's network namespace. */
export function listLinks(): string[] {
  // /proc/net/dev is per network namespace of the reader (unlike /sys under nsenter).
  return readFileSync('/proc/net/dev', 'utf8')
    .split('\n')
    .slice(2) // two header lines
    .map((line) => line.split(':')[0]!.trim())
    .filter(Boolean);
}

/** Whether a link of this name exists in the caller's network namespace. */
export function linkExists(name: string): boolean {
  return listLinks().includes(name);
}
