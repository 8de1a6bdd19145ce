/**
 * The pods whose sockets the socket load balancer serves. Its programs hang
 * on a cgroup that every process of the machine is under (several nodes, and
 * processes that are no pod at all, share it), so they act only for sockets
 * in a network namespace registered here by its cookie: this node's pods.
 */
import type { Endpoint } from '../endpoint/endpoint.js';
import { netnsCookie } from '../sys/netns.js';

/** What the datapath keeps (LbMaps): netns cookie -> endpoint. */
export interface PodNetnsTable {
  registerPodNetns(cookie: bigint, endpointId: number, ipv4?: string, ipv6?: string): void;
  unregisterPodNetns(cookie: bigint): boolean;
  podNetns(): Map<bigint, number>;
}

export class PodNamespaces {
  private readonly cookies = new Map<number, bigint>();

  constructor(
    private readonly table: PodNetnsTable,
    private readonly cookieOf: (netnsPath: string) => bigint = netnsCookie,
  ) {}

  /** From now on, connect() and sendmsg() in the endpoint's namespace reach services. */
  register(ep: Endpoint): void {
    const cookie = this.cookieOf(ep.netns);
    const old = this.cookies.get(ep.id);
    if (old !== undefined && old !== cookie) this.table.unregisterPodNetns(old);
    this.table.registerPodNetns(cookie, ep.id, ep.ipv4 || undefined, ep.ipv6 || undefined);
    this.cookies.set(ep.id, cookie);
  }

  unregister(endpointId: number): void {
    const cookie = this.cookies.get(endpointId);
    if (cookie === undefined) return;
    this.table.unregisterPodNetns(cookie);
    this.cookies.delete(endpointId);
  }

  /**
   * Drops what the table holds for namespaces that are no endpoint of ours
   * any more (endpoints removed while no agent ran): after a restore.
   */
  prune(): number {
    let removed = 0;
    for (const [cookie, endpointId] of this.table.podNetns()) {
      if (this.cookies.get(endpointId) === cookie) continue;
      this.table.unregisterPodNetns(cookie);
      removed++;
    }
    return removed;
  }
}
