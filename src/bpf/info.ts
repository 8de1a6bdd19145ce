/** bpf_obj_get_info_by_fd for maps, programs and links: the few fields we use. */
import { bpf } from './libbpf.js';
import { check } from './errors.js';

// Larger than any of the kernel's info structs today; the kernel fills what it knows
// and requires the rest to be zero.
const INFO_BUF_SIZE = 512;

function infoOf(fd: number, what: string): Buffer {
  const buf = Buffer.alloc(INFO_BUF_SIZE);
  const len = [INFO_BUF_SIZE];
  check(bpf.objGetInfoByFd(fd, buf, len) as number, () => `Cannot read info of ${what} (fd ${fd})`);
  return buf;
}

const cString = (b: Buffer) => {
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 ? b.length : end);
};

export interface MapInfo { type: number; id: number; keySize: number; valueSize: number; maxEntries: number; flags: number; name: string }

/** struct bpf_map_info: type@0 id@4 key_size@8 value_size@12 max_entries@16 map_flags@20 name[16]@24. */
export function mapInfo(fd: number): MapInfo {
  const b = infoOf(fd, 'map');
  return {
    type: b.readUInt32LE(0),
    id: b.readUInt32LE(4),
    keySize: b.readUInt32LE(8),
    valueSize: b.readUInt32LE(12),
    maxEntries: b.readUInt32LE(16),
    flags: b.readUInt32LE(20),
    name: cString(b.subarray(24, 40)),
  };
}

export interface ProgInfo {
  type: number;
  id: number;
  name: string;
  /** Instructions the verifier processed to load the program (its cost to load; 0 before Linux 5.16). */
  verifiedInsns: number;
}

/** struct bpf_prog_info: type@0 id@4 name[16]@64 verified_insns@216. */
export function progInfo(fd: number): ProgInfo {
  const b = infoOf(fd, 'program');
  return { type: b.readUInt32LE(0), id: b.readUInt32LE(4), name: cString(b.subarray(64, 80)), verifiedInsns: b.readUInt32LE(216) };
}

export interface LinkInfo {
  id: number;
  progId: number;
  type: number;
  ifindex?: number;
  attachType?: number;
  /** Cgroup links: the cgroup's id (the inode number of its directory). */
  cgroupId?: bigint;
}

const BPF_LINK_TYPE_CGROUP = 3;
const BPF_LINK_TYPE_XDP = 6;
const BPF_LINK_TYPE_TCX = 11;
const BPF_LINK_TYPE_NETKIT = 13;

/** struct bpf_link_info: type@0 id@4 prog_id@8, union@16 (xdp: ifindex; tcx/netkit: ifindex, attach_type; cgroup: cgroup_id u64, attach_type). */
export function linkInfo(fd: number): LinkInfo {
  const b = infoOf(fd, 'link');
  const info: LinkInfo = { type: b.readUInt32LE(0), id: b.readUInt32LE(4), progId: b.readUInt32LE(8) };
  if (info.type === BPF_LINK_TYPE_XDP) info.ifindex = b.readUInt32LE(16);
  if (info.type === BPF_LINK_TYPE_CGROUP) {
    info.cgroupId = b.readBigUInt64LE(16);
    info.attachType = b.readUInt32LE(24);
  }
  if (info.type === BPF_LINK_TYPE_TCX || info.type === BPF_LINK_TYPE_NETKIT) {
    info.ifindex = b.readUInt32LE(16);
    info.attachType = b.readUInt32LE(20);
  }
  return info;
}
