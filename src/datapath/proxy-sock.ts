/**
 * Socket redirection for the L7 proxy's connections (bpf/proxy_sock.c): the
 * sock_ops program on a cgroup v2 directory (the cgroup2 root by default)
 * puts both ends of each proxy leg into tnd_proxy_socks, and the sk_msg
 * program on that map hands each message straight to the peer socket. Both
 * links are pinned under <node>/links/proxy_sock/ and get new programs in
 * place when an agent starts again; the two maps are pinned with the node's.
 *
 * Several nodes on one machine each attach their own programs to the same
 * cgroup; each acts only for its own flows (tnd_proxy_flows) and its own
 * proxy (the node's netns cookie).
 */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { invalid } from '../common/errors.js';
import { BpfError, BpfMap, BpfObject, attachCgroup, attachSkMsg, bpfObjectPath, u32, type LinkInfo } from '../bpf/index.js';
import { TndProxySockConfig, TndProxySockStat } from '../bpf/generated/wire.js';
import { currentNetnsCookie } from '../sys/index.js';
import type { NodeMaps } from './node-maps.js';
import type { PinPaths } from './paths.js';
import { attachPinned, detachPinned, pinnedLinks } from './pinned-links.js';
import { cgroup2Root, cgroupId } from './sock-lb.js';

/** Maps of proxy_sock.o that are its own (pinned with the node's maps). */
export const PROXY_SOCK_MAPS = ['tnd_proxy_socks', 'tnd_proxy_sk', 'tnd_proxy_upstreams', 'tnd_proxy_sock_stats'] as const;
/** The node maps it has (bpf/lib/ headers it shares with lxc.o): the flows, and what a policy re-check reads. */
const SHARED_MAPS = ['tnd_proxy_flows', 'tnd_proxy_config', 'tnd_policy', 'tnd_policy_gen', 'tnd_endpoints', 'tnd_ipcache', 'tnd_events', 'tnd_metrics'] as const;

/** What the redirection did since its maps were made (summed over CPUs). */
export interface ProxySockStats {
  /** Sockets that joined the map: both ends of each proxy leg. */
  joined: number;
  /** Messages handed straight to the peer socket. */
  redirected: number;
  /** Messages of joined sockets that went through TCP/IP (no peer yet, or after a policy change). */
  usualWay: number;
}

export interface ProxySockOptions {
  /** The cgroup v2 directory whose sockets may be redirected; default: the cgroup2 root. */
  cgroup?: string;
}

export class ProxySockRedirect {
  /** Where the links are pinned. */
  static linkDir(paths: PinPaths): string {
    return join(paths.links, 'proxy_sock');
  }

  /** Loads proxy_sock.o over the node's maps and attaches (or updates) both links. */
  static attach(maps: NodeMaps, options: ProxySockOptions = {}): Map<string, LinkInfo> {
    const cgroup = options.cgroup ?? cgroup2Root();
    if (!existsSync(cgroup) || !statSync(cgroup).isDirectory()) throw invalid(`cgroup "${cgroup}" is not a directory`);
    const id = cgroupId(cgroup);
    const dir = ProxySockRedirect.linkDir(maps.paths);
    mkdirSync(dir, { recursive: true });
    const obj = BpfObject.open(bpfObjectPath('proxy_sock.o'), {
      // The proxy runs in the agent's netns, the node's.
      constants: { CONFIG: TndProxySockConfig.encode({ nodeNetnsCookie: currentNetnsCookie() }) },
      pinMaps: { dir: maps.paths.maps, names: [...PROXY_SOCK_MAPS] },
      reuseMaps: Object.fromEntries(SHARED_MAPS.map((name) => [name, maps.raw.get(name)!])),
    });
    const links = new Map<string, LinkInfo>();
    try {
      obj.load();
      const sockops = obj.program('proxy_sockops');
      links.set('proxy_sockops', attachPinned(join(dir, 'proxy_sockops'), sockops, (info) => info.cgroupId === id, () => attachCgroup(sockops, cgroup, 'sock_ops')));
      const msg = obj.program('proxy_sk_msg');
      const socks = obj.map('tnd_proxy_socks');
      links.set('proxy_sk_msg', attachPinned(join(dir, 'proxy_sk_msg'), msg, () => true, () => attachSkMsg(msg, socks)));
    } finally {
      // The links hold the programs; the object's own references can go.
      obj.close();
    }
    return links;
  }

  /** The node's pinned links, by program (none: not attached). */
  static pinned(paths: PinPaths): Map<string, LinkInfo> {
    return pinnedLinks(ProxySockRedirect.linkDir(paths));
  }

  /** The node's counters, or undefined when the redirection was never attached. */
  static stats(paths: PinPaths): ProxySockStats | undefined {
    let map: BpfMap;
    try {
      map = BpfMap.openPinned(join(paths.maps, 'tnd_proxy_sock_stats'));
    } catch (err) {
      if (err instanceof BpfError && err.code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      const sum = (stat: number): number => {
        const v = map.lookup(u32.encode(stat))!;
        let n = 0n;
        for (let off = 0; off < v.length; off += 8) n += v.readBigUInt64LE(off);
        return Number(n);
      };
      return { joined: sum(TndProxySockStat.TND_PSOCK_JOINED), redirected: sum(TndProxySockStat.TND_PSOCK_REDIRECTED), usualWay: sum(TndProxySockStat.TND_PSOCK_USUAL_WAY) };
    } finally {
      map.close();
    }
  }

  /** Detaches and unpins both links; how many there were. */
  static detach(paths: PinPaths): number {
    return detachPinned(ProxySockRedirect.linkDir(paths));
  }
}
