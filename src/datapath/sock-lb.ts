/**
 * Socket-level load balancing for the node's pods: sock.o (bpf/sock.c)
 * loaded over the node's LB maps and attached to a cgroup v2 directory, one
 * link per sock_addr hook, each pinned under <node>/links/sock_lb/ so the
 * programs stay attached while no agent runs. An agent that starts again
 * loads sock.o anew and swaps each pinned link's program in one
 * bpf_link_update: no socket ever sees no program. Detaching unpins and
 * destroys the links.
 *
 * Links attach in multi mode: several nodes on one machine all attach to
 * the same cgroup (the cgroup2 root by default) and each program acts only
 * for the sockets of its own node's pods (tnd_lb_netns).
 */
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { invalid } from '../common/errors.js';
import { BpfObject, attachCgroup, bpfObjectPath, type CgroupHook, type LinkInfo } from '../bpf/index.js';
import { attachPinned, detachPinned, pinnedLinks } from './pinned-links.js';
import { TndSockConfig } from '../bpf/generated/wire.js';
import { LB_MAPS, SOCK_PROGRAMS, type LbMaps } from './lb-maps.js';
import type { PinPaths } from './paths.js';

export type SockProgram = (typeof SOCK_PROGRAMS)[number];

const HOOKS: Record<SockProgram, CgroupHook> = {
  sock4_connect: 'connect4',
  sock6_connect: 'connect6',
  sock4_sendmsg: 'sendmsg4',
  sock6_sendmsg: 'sendmsg6',
  sock4_recvmsg: 'recvmsg4',
  sock6_recvmsg: 'recvmsg6',
  sock4_getpeer: 'getpeername4',
  sock6_getpeer: 'getpeername6',
};

/** Where the mounted cgroup v2 hierarchy is, read from a mounts table (/proc/self/mounts). */
export function cgroup2Root(mounts: string = readFileSync('/proc/self/mounts', 'utf8')): string {
  for (const line of mounts.split('\n')) {
    const [, dir, type] = line.split(' ');
    // Octal escapes (\040 for a space) are how the kernel writes odd paths.
    if (type === 'cgroup2' && dir) return dir.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  throw invalid('no cgroup v2 hierarchy is mounted (mount -t cgroup2 none /sys/fs/cgroup/unified): socket load balancing needs one');
}

/** The cgroup's id as the kernel reports it in link info: its directory's inode number. */
export function cgroupId(path: string): bigint {
  return statSync(path, { bigint: true }).ino;
}

export interface SockLbOptions {
  /** The cgroup v2 directory whose processes' sockets are balanced; default: the cgroup2 root. */
  cgroup?: string;
}

export class SockLb {
  private constructor(
    readonly paths: PinPaths,
    readonly cgroup: string,
    /** The links now in place, by program. */
    readonly links: ReadonlyMap<SockProgram, LinkInfo>,
  ) {}

  /** Where the links are pinned. */
  static linkDir(paths: PinPaths): string {
    return join(paths.links, 'sock_lb');
  }

  /**
   * Loads sock.o over `maps` and makes sure each program is attached to
   * `cgroup`: a pinned link there gets the new program (bpf_link_update),
   * a missing one is created and pinned; a link pinned for another cgroup
   * is replaced by one on this cgroup (attached first, then the old one goes).
   */
  static attach(maps: LbMaps, options: SockLbOptions = {}): SockLb {
    const cgroup = options.cgroup ?? cgroup2Root();
    if (!existsSync(cgroup) || !statSync(cgroup).isDirectory()) throw invalid(`cgroup "${cgroup}" is not a directory`);
    const id = cgroupId(cgroup);
    const dir = SockLb.linkDir(maps.paths);
    mkdirSync(dir, { recursive: true });
    const obj = BpfObject.open(bpfObjectPath('sock.o'), {
      constants: { CONFIG: TndSockConfig.encode({ maglevSize: maps.maglevSize }) },
      reuseMaps: Object.fromEntries(LB_MAPS.map((name) => [name, maps.get(name)])),
    });
    const links = new Map<SockProgram, LinkInfo>();
    try {
      obj.load();
      for (const name of SOCK_PROGRAMS) {
        const prog = obj.program(name);
        links.set(name, attachPinned(join(dir, name), prog, (info) => info.cgroupId === id, () => attachCgroup(prog, cgroup, HOOKS[name])));
      }
    } finally {
      // The links hold the programs; the object's own references can go.
      obj.close();
    }
    return new SockLb(maps.paths, cgroup, links);
  }

  /** The pinned links of the node, by program (none: not attached). */
  static pinned(paths: PinPaths): Map<SockProgram, LinkInfo> {
    const out = new Map<SockProgram, LinkInfo>();
    for (const [name, info] of pinnedLinks(SockLb.linkDir(paths)))
      if ((SOCK_PROGRAMS as readonly string[]).includes(name)) out.set(name as SockProgram, info);
    return out;
  }

  /** Detaches and unpins every socket LB link of the node; how many there were. */
  static detach(paths: PinPaths): number {
    return detachPinned(SockLb.linkDir(paths));
  }

  detach(): number {
    return SockLb.detach(this.paths);
  }
}
