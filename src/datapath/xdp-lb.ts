/**
 * The XDP load balancer of NodePort and ExternalIP frontends (bpf/xdp.c) on
 * the node's external interfaces: xdp.o loaded over the node's pinned LB
 * maps (and its endpoints map, so local backends are known), attached in
 * native mode through a bpf_link pinned at
 * <bpffs>/tendril/<node>/links/xdp_lb/<ifname>. The link outlives the
 * agent: an agent that starts again loads xdp.o anew and swaps the pinned
 * link's program in one bpf_link_update, so no packet meets a device
 * without the program. Detaching destroys and unpins the link.
 *
 * tnd_xdp_stats (what the program did, per CPU) is pinned beside the LB
 * maps and shared by every interface of the node, and so are the flow
 * slots tnd_xdp_flows and tnd_xdp_snat (FWD entries and the reply
 * translations of SNAT flows, bpf/lib/slot_xdp.h): a reloaded program
 * keeps every open flow's backend and SNAT port.
 */
import { existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { invalid } from '../common/errors.js';
import { BpfError, BpfLink, BpfMap, BpfObject, attachXdp, bpfObjectPath, u32, type LinkInfo } from '../bpf/index.js';
import { ifNameToIndex } from '../sys/index.js';
import { TndXdpConfig, tndXdpStatNames } from '../bpf/generated/wire.js';
import { checkIfname } from '../link/veth.js';
import { LB_CORE_MAPS, type LbMaps } from './lb-maps.js';
import type { PinPaths } from './paths.js';

/** The LB maps xdp.o uses: lb.h's (the socket LB's own maps it has not). */
export const XDP_LB_MAPS = LB_CORE_MAPS;

/** Node maps xdp.o shares through their pins (created there when the node has none yet). */
const SHARED_PINS = ['tnd_endpoints', 'tnd_events', 'tnd_metrics', 'tnd_xdp_stats', 'tnd_xdp_flows', 'tnd_xdp_snat'];

export type XdpMode = 'native' | 'generic';

export interface XdpLbAttachOptions {
  /** The device, by name (in the agent's netns) or index. */
  ifname?: string;
  ifindex?: number;
  /** Default 'native' (the driver's XDP); 'generic' for devices without it. */
  mode?: XdpMode;
}

export interface XdpLbLink {
  ifname: string;
  info: LinkInfo;
  /** True when an existing link got the new program; false when a link was created. */
  updated: boolean;
}

/**
 * xdp.o loaded over `maps` (M from the node's Maglev map), not attached;
 * the caller closes it. Tests and the bench run its program directly; the
 * bench loads its wrappers of the same code (`object`, relative to
 * build/bpf) the same way.
 */
export function loadXdpLb(maps: LbMaps, object = 'xdp.o'): BpfObject {
  const obj = BpfObject.open(bpfObjectPath(object), {
    constants: { CONFIG: TndXdpConfig.encode({ maglevSize: maps.maglevSize }) },
    reuseMaps: Object.fromEntries(XDP_LB_MAPS.map((name) => [name, maps.get(name)])),
    pinMaps: { dir: maps.paths.maps, names: SHARED_PINS },
  });
  try {
    obj.load();
  } catch (err) {
    obj.close();
    throw err;
  }
  return obj;
}

/** The device's name (the pin's name; "ifindex-N" when only its index is given) and index. */
function device(o: XdpLbAttachOptions): { ifname: string; ifindex: number } {
  if (o.ifname === undefined) {
    if (o.ifindex === undefined || !Number.isInteger(o.ifindex) || o.ifindex < 1) throw invalid('the XDP load balancer needs a device: a name or an ifindex');
    return { ifname: `ifindex-${o.ifindex}`, ifindex: o.ifindex };
  }
  checkIfname(o.ifname);
  let ifindex: number;
  try {
    ifindex = ifNameToIndex(o.ifname);
  } catch {
    throw invalid(`network device "${o.ifname}" does not exist in this namespace: name the node's external interface`);
  }
  if (o.ifindex !== undefined && o.ifindex !== ifindex) throw invalid(`device ${o.ifname} has ifindex ${ifindex}, not ${o.ifindex}`);
  return { ifname: o.ifname, ifindex };
}

export class XdpLb {
  /** Where the node's XDP links are pinned, one per device name. */
  static linkDir(paths: PinPaths): string {
    return join(paths.links, 'xdp_lb');
  }

  /**
   * Makes sure xdp_lb is attached to the device: a link pinned for it gets
   * the newly loaded program (bpf_link_update), else a link is created and
   * pinned. A pin left by a device that is gone (or re-created with another
   * index) is replaced.
   */
  static attach(maps: LbMaps, o: XdpLbAttachOptions): XdpLbLink {
    const { ifname, ifindex } = device(o);
    const mode = o.mode ?? 'native';
    const dir = XdpLb.linkDir(maps.paths);
    mkdirSync(dir, { recursive: true });
    const pin = join(dir, ifname);
    const obj = loadXdpLb(maps);
    try {
      const prog = obj.program('xdp_lb');
      const old = existsSync(pin) ? BpfLink.openPinned(pin) : undefined;
      try {
        if (old && old.info().ifindex === ifindex) {
          old.update(prog);
          return { ifname, info: old.info(), updated: true };
        }
        if (old) {
          // The device it was made for is gone; the link holds nothing any more.
          rmSync(pin);
          old.detach();
        }
        using link = attachXdp(prog, ifindex, mode);
        link.pin(pin);
        return { ifname, info: link.info(), updated: false };
      } finally {
        old?.close();
      }
    } finally {
      // The link holds the program; the object's own references can go.
      obj.close();
    }
  }

  /** The node's pinned XDP links, by device name. */
  static pinned(paths: PinPaths): Map<string, LinkInfo> {
    const out = new Map<string, LinkInfo>();
    const dir = XdpLb.linkDir(paths);
    if (!existsSync(dir)) return out;
    for (const name of readdirSync(dir)) {
      using link = BpfLink.openPinned(join(dir, name));
      out.set(name, link.info());
    }
    return out;
  }

  /** Detaches and unpins the link of `ifname`, or of every device; how many there were. */
  static detach(paths: PinPaths, ifname?: string): number {
    const dir = XdpLb.linkDir(paths);
    if (!existsSync(dir)) return 0;
    let n = 0;
    for (const name of readdirSync(dir)) {
      if (ifname !== undefined && name !== ifname) continue;
      const pin = join(dir, name);
      using link = BpfLink.openPinned(pin);
      try {
        link.detach();
      } catch (err) {
        // Its device is gone: the kernel detached it already.
        if (!(err instanceof BpfError)) throw err;
      }
      rmSync(pin);
      n++;
    }
    if (readdirSync(dir).length === 0) rmSync(dir, { recursive: true, force: true });
    return n;
  }

  /** What xdp_lb did on every device of the node, summed over CPUs, by enum tnd_xdp_stat name. */
  static stats(paths: PinPaths): Record<string, number> {
    const out: Record<string, number> = {};
    const path = join(paths.maps, 'tnd_xdp_stats');
    if (!existsSync(path)) return out;
    using map = BpfMap.openPinned(path);
    for (const [slot, name] of Object.entries(tndXdpStatNames)) {
      if (Number(slot) >= map.maxEntries) continue;
      const v = map.lookup(u32.encode(Number(slot)));
      let sum = 0n;
      for (let at = 0; v && at + 8 <= v.length; at += 8) sum += v.readBigUInt64LE(at);
      out[name] = Number(sum);
    }
    return out;
  }
}
