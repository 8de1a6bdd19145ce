/** Attaching programs through bpf_link_create: TCX and XDP on network devices, sock_addr and sock_ops hooks on cgroups, sk_msg on a sockmap. */
import { closeSync, openSync } from 'node:fs';
import { bpf } from './libbpf.js';
import { BpfError, EINVAL } from './errors.js';
import { BpfLink } from './link.js';
import type { BpfProgram } from './program.js';
import type { BpfMap } from './map.js';

// enum bpf_attach_type; libbpf 1.1 predates TCX but passes the type through.
const BPF_XDP = 37;
const BPF_TCX_INGRESS = 46;
const BPF_TCX_EGRESS = 47;
const BPF_SK_MSG_VERDICT = 7;
const XDP_FLAGS_SKB_MODE = 1 << 1;
const XDP_FLAGS_DRV_MODE = 1 << 2;
const ENODEV = 19;
const EEXIST = 17;
const LINK_CREATE_OPTS_SIZE = 64; // sizeof(struct bpf_link_create_opts) in libbpf 1.1; flags@8

function linkCreate(prog: BpfProgram, ifindex: number, attachType: number, flags: number, what: string): BpfLink {
  if (!Number.isInteger(ifindex) || ifindex <= 0)
    throw new BpfError(`Cannot attach ${what}: ifindex ${ifindex} names no device`, ENODEV);
  const opts = Buffer.alloc(LINK_CREATE_OPTS_SIZE);
  opts.writeBigUInt64LE(BigInt(LINK_CREATE_OPTS_SIZE), 0);
  opts.writeUInt32LE(flags, 8);
  const fd = bpf.linkCreate(prog.fd, ifindex, attachType, opts) as number;
  if (fd < 0) {
    const hint = -fd === ENODEV ? ' (no such device in this network namespace)' : -fd === EEXIST ? ' (the device already has one)' : '';
    throw new BpfError(`Cannot attach ${what}${hint}`, -fd);
  }
  return new BpfLink(fd, what);
}

/** Attaches a tc program (SEC("tc")) to a device's ingress or egress through a TCX link. */
export function attachTcx(prog: BpfProgram, ifindex: number, direction: 'ingress' | 'egress'): BpfLink {
  if (direction !== 'ingress' && direction !== 'egress')
    throw new BpfError(`Cannot attach "${prog.name}": direction must be "ingress" or "egress", got "${String(direction)}"`, EINVAL);
  const type = direction === 'ingress' ? BPF_TCX_INGRESS : BPF_TCX_EGRESS;
  return linkCreate(prog, ifindex, type, 0, `TCX ${direction} program "${prog.name}" to ifindex ${ifindex}`);
}

/** Attaches an XDP program through a link; without `mode` the kernel picks native if the driver has it. */
export function attachXdp(prog: BpfProgram, ifindex: number, mode?: 'native' | 'generic'): BpfLink {
  const flags = mode === 'native' ? XDP_FLAGS_DRV_MODE : mode === 'generic' ? XDP_FLAGS_SKB_MODE : 0;
  return linkCreate(prog, ifindex, BPF_XDP, flags, `XDP program "${prog.name}" to ifindex ${ifindex}${mode ? ` (${mode})` : ''}`);
}

/**
 * The cgroup hooks (enum bpf_attach_type): sock_addr ones and sock_ops. A
 * program's SEC() ("cgroup/connect4") fixes its hook when it is loaded; the
 * link must name the same one.
 */
export const CgroupHook = {
  sock_ops: 3,
  connect4: 10,
  connect6: 11,
  sendmsg4: 14,
  sendmsg6: 15,
  recvmsg4: 19,
  recvmsg6: 20,
  getpeername4: 29,
  getpeername6: 30,
} as const;
export type CgroupHook = keyof typeof CgroupHook;

/**
 * Attaches an sk_msg program (SEC("sk_msg")) to a sockmap or sockhash
 * through a link (Linux 6.10): it runs for every message a socket in the
 * map sends.
 */
export function attachSkMsg(prog: BpfProgram, map: BpfMap): BpfLink {
  const what = `sk_msg program "${prog.name}" to map "${map.name}"`;
  const opts = Buffer.alloc(LINK_CREATE_OPTS_SIZE);
  opts.writeBigUInt64LE(BigInt(LINK_CREATE_OPTS_SIZE), 0);
  const fd = bpf.linkCreate(prog.fd, map.fd, BPF_SK_MSG_VERDICT, opts) as number;
  if (fd < 0) throw new BpfError(`Cannot attach ${what}`, -fd);
  return new BpfLink(fd, what);
}

/**
 * Attaches a cgroup sock_addr or sock_ops program to a cgroup v2 directory through a
 * link. Links always attach in multi mode (BPF_F_ALLOW_MULTI): programs of
 * other owners on the same cgroup and hook stay and all run, in attach
 * order; the program applies to the sockets of every process in the cgroup
 * and its descendants.
 */
export function attachCgroup(prog: BpfProgram, cgroupPath: string, hook: CgroupHook): BpfLink {
  const type = CgroupHook[hook];
  const what = `cgroup program "${prog.name}" to ${hook} of "${cgroupPath}"`;
  if (type === undefined) throw new BpfError(`Cannot attach ${what}: no such hook (${Object.keys(CgroupHook).join(', ')})`, EINVAL);
  let dir: number;
  try {
    dir = openSync(cgroupPath, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new BpfError(`Cannot attach ${what}: cannot open the cgroup directory`, Math.abs(e.errno ?? EINVAL));
  }
  try {
    const opts = Buffer.alloc(LINK_CREATE_OPTS_SIZE);
    opts.writeBigUInt64LE(BigInt(LINK_CREATE_OPTS_SIZE), 0);
    const fd = bpf.linkCreate(prog.fd, dir, type, opts) as number;
    if (fd < 0) {
      const hint = -fd === EINVAL ? ' (not a cgroup v2 directory, or the program was loaded for another hook)' : '';
      throw new BpfError(`Cannot attach ${what}${hint}`, -fd);
    }
    return new BpfLink(fd, what);
  } finally {
    closeSync(dir);
  }
}
