/**
 * tc clsact attachment through libbpf's netlink calls (bpf_tc_*): a direct-
 * action cls_bpf filter at a device's ingress or egress, identified by a
 * handle and priority. Replacing the filter's program is one netlink request
 * with BPF_TC_F_REPLACE: atomic, no moment without a program. Filters belong
 * to the device, so they outlive the process that made them and go with the
 * device. Unlike a TCX link, no RCU grace period is waited for on attach, which
 * keeps endpoint creation fast.
 */
import { bpf } from './libbpf.js';
import { BpfError, EINVAL } from './errors.js';
import type { BpfProgram } from './program.js';

export type TcDirection = 'ingress' | 'egress';

const BPF_TC_INGRESS = 1 << 0;
const BPF_TC_EGRESS = 1 << 1;
const BPF_TC_F_REPLACE = 1 << 0;
const HOOK_SIZE = 24; // sizeof(struct bpf_tc_hook): sz, ifindex@8, attach_point@12, parent@16
const OPTS_SIZE = 32; // sizeof(struct bpf_tc_opts): sz, prog_fd@8, flags@12, prog_id@16, handle@20, priority@24
const EEXIST = 17;
const ENOENT = 2;
const ENODEV = 19;

/** Where a filter sits: its handle and priority tell it apart from others on the hook. */
export interface TcFilterId {
  handle: number;
  priority: number;
}

export const DEFAULT_TC_FILTER: TcFilterId = { handle: 1, priority: 1 };

function hook(ifindex: number, points: number): Buffer {
  if (!Number.isInteger(ifindex) || ifindex <= 0) throw new BpfError(`Cannot use tc on ifindex ${ifindex}: it names no device`, ENODEV);
  const b = Buffer.alloc(HOOK_SIZE);
  b.writeBigUInt64LE(BigInt(HOOK_SIZE), 0);
  b.writeInt32LE(ifindex, 8);
  b.writeUInt32LE(points, 12);
  return b;
}

function opts(id: TcFilterId, progFd = 0, flags = 0): Buffer {
  const b = Buffer.alloc(OPTS_SIZE);
  b.writeBigUInt64LE(BigInt(OPTS_SIZE), 0);
  b.writeInt32LE(progFd, 8);
  b.writeUInt32LE(flags, 12);
  b.writeUInt32LE(id.handle, 20);
  b.writeUInt32LE(id.priority, 24);
  return b;
}

const point = (direction: TcDirection): number => {
  if (direction === 'ingress') return BPF_TC_INGRESS;
  if (direction === 'egress') return BPF_TC_EGRESS;
  throw new BpfError(`tc direction must be "ingress" or "egress", got "${String(direction)}"`, EINVAL);
};

/**
 * Attaches `prog` as the filter `id` at the device's ingress or egress,
 * creating the clsact qdisc when missing and replacing the program of an
 * existing filter atomically. Returns the attached program's id.
 */
export function attachTc(prog: BpfProgram, ifindex: number, direction: TcDirection, id: TcFilterId = DEFAULT_TC_FILTER): number {
  const what = `tc ${direction} program "${prog.name}" to ifindex ${ifindex}`;
  const h = hook(ifindex, point(direction));
  const created = bpf.tcHookCreate(h) as number;
  if (created < 0 && -created !== EEXIST) throw new BpfError(`Cannot attach ${what}: clsact qdisc`, -created);
  const o = opts(id, prog.fd, BPF_TC_F_REPLACE);
  const ret = bpf.tcAttach(h, o) as number;
  if (ret < 0) throw new BpfError(`Cannot attach ${what}`, -ret);
  return o.readUInt32LE(16);
}

/** The program id of filter `id`, or undefined when there is none. */
export function queryTc(ifindex: number, direction: TcDirection, id: TcFilterId = DEFAULT_TC_FILTER): number | undefined {
  const o = opts(id);
  const ret = bpf.tcQuery(hook(ifindex, point(direction)), o) as number;
  if (ret < 0) {
    if (-ret === ENOENT || -ret === ENODEV || -ret === EINVAL) return undefined;
    throw new BpfError(`Cannot query tc ${direction} filter of ifindex ${ifindex}`, -ret);
  }
  return o.readUInt32LE(16);
}

/** Removes filter `id`; a missing filter or device is not an error. */
export function detachTc(ifindex: number, direction: TcDirection, id: TcFilterId = DEFAULT_TC_FILTER): void {
  const ret = bpf.tcDetach(hook(ifindex, point(direction)), opts(id)) as number;
  if (ret < 0 && ![ENOENT, ENODEV, EINVAL].includes(-ret)) throw new BpfError(`Cannot detach tc ${direction} filter of ifindex ${ifindex}`, -ret);
}
