/** Attaching programs to network devices through bpf_link_create: TCX and XDP. */
import { bpf } from './libbpf.js';
import { BpfError, EINVAL } from './errors.js';
import { BpfLink } from './link.js';
import type { BpfProgram } from './program.js';

// enum bpf_attach_type; libbpf 1.1 predates TCX but passes the type through.
const BPF_XDP = 37;
const BPF_TCX_INGRESS = 46;
const BPF_TCX_EGRESS = 47;
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
