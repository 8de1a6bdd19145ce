/**
 * The route netlink messages an endpoint needs (a veth pair, addresses,
 * routes, a neighbour entry, link up and delete), built as the kernel's
 * rtnetlink structures: a family header, then attributes (type, length,
 * value, padded to 4 bytes). Sent with netlinkRequest (sys/netlink.ts).
 */
import { parseIP, parseMac } from '../common/ip.js';
import { NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, type NetlinkMessage } from '../sys/netlink.js';

const RTM_NEWLINK = 16;
const RTM_DELLINK = 17;
const RTM_NEWADDR = 20;
const RTM_NEWROUTE = 24;
const RTM_NEWNEIGH = 28;

const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_INET6 = 10;
const IFF_UP = 0x1;

const IFLA_ADDRESS = 1;
const IFLA_IFNAME = 3;
const IFLA_LINKINFO = 18;
const IFLA_NET_NS_FD = 28;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const NLA_F_NESTED = 0x8000;

const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const IFA_F_NODAD = 0x02;

const RTA_DST = 1;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RT_TABLE_MAIN = 254;
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RT_SCOPE_LINK = 253;
const RTN_UNICAST = 1;

const NDA_DST = 1;
const NDA_LLADDR = 2;
const NUD_PERMANENT = 0x80;

function attr(type: number, value: Buffer): Buffer {
  const len = 4 + value.length;
  const out = Buffer.alloc((len + 3) & ~3);
  out.writeUInt16LE(len, 0);
  out.writeUInt16LE(type, 2);
  value.copy(out, 4);
  return out;
}

const nested = (type: number, ...attrs: Buffer[]) => attr(type | NLA_F_NESTED, Buffer.concat(attrs));
const str = (type: number, s: string) => attr(type, Buffer.from(`${s}\0`));
const u32 = (type: number, v: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return attr(type, b);
};
const bytes = (type: number, b: Uint8Array) => attr(type, Buffer.from(b));

/** struct ifinfomsg. */
function ifinfomsg(o: { index?: number; flags?: number; change?: number } = {}): Buffer {
  const b = Buffer.alloc(16);
  b.writeUInt8(AF_UNSPEC, 0);
  b.writeInt32LE(o.index ?? 0, 4);
  b.writeUInt32LE(o.flags ?? 0, 8);
  b.writeUInt32LE(o.change ?? 0, 12);
  return b;
}

export interface VethPairSpec {
  hostName: string;
  hostMac: string;
  peerName: string;
  peerMac: string;
  /** An open fd of the namespace the peer is created in; absent: the caller's. */
  peerNetnsFd?: number;
}

/** A veth pair, both ends down; fails if either name is taken. */
export function addVethPair(s: VethPairSpec): NetlinkMessage {
  const peer = Buffer.concat([ifinfomsg(), str(IFLA_IFNAME, s.peerName), bytes(IFLA_ADDRESS, parseMac(s.peerMac)),
    ...(s.peerNetnsFd !== undefined ? [u32(IFLA_NET_NS_FD, s.peerNetnsFd)] : []),
  ]);
  const payload = Buffer.concat([
    ifinfomsg(),
    str(IFLA_IFNAME, s.hostName),
    bytes(IFLA_ADDRESS, parseMac(s.hostMac)),
    nested(IFLA_LINKINFO, str(IFLA_INFO_KIND, 'veth'), nested(IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer))),
  ]);
  return { type: RTM_NEWLINK, flags: NLM_F_CREATE | NLM_F_EXCL, payload, what: `add veth ${s.hostName} with peer ${s.peerName}` };
}

export function setLinkUp(index: number, name: string): NetlinkMessage {
  return { type: RTM_NEWLINK, flags: 0, payload: ifinfomsg({ index, flags: IFF_UP, change: IFF_UP }), what: `set ${name} up` };
}

export function deleteLinkByName(name: string): NetlinkMessage {
  return { type: RTM_DELLINK, flags: 0, payload: Buffer.concat([ifinfomsg(), str(IFLA_IFNAME, name)]), what: `delete link ${name}` };
}

/** A host address (/32 or /128) on a link; IPv6 without duplicate address detection. */
export function addHostAddress(index: number, address: string): NetlinkMessage {
  const { family, bytes: addr } = parseIP(address);
  const head = Buffer.alloc(8);
  head.writeUInt8(family === 4 ? AF_INET : AF_INET6, 0);
  head.writeUInt8(family === 4 ? 32 : 128, 1);
  head.writeUInt8(family === 6 ? IFA_F_NODAD : 0, 2);
  head.writeUInt8(RT_SCOPE_UNIVERSE, 3);
  head.writeUInt32LE(index, 4);
  return { type: RTM_NEWADDR, flags: NLM_F_CREATE | NLM_F_EXCL, payload: Buffer.concat([head, bytes(IFA_LOCAL, addr), bytes(IFA_ADDRESS, addr)]), what: `add address ${address}` };
}

export interface RouteSpec {
  /** A host route to this address, or the default route when absent. */
  to?: string;
  family: 4 | 6;
  via?: string;
  oif: number;
  /** Replace a route to the same destination instead of failing. */
  replace?: boolean;
}

export function addRoute(r: RouteSpec): NetlinkMessage {
  const head = Buffer.alloc(12);
  head.writeUInt8(r.family === 4 ? AF_INET : AF_INET6, 0);
  head.writeUInt8(r.to ? (r.family === 4 ? 32 : 128) : 0, 1); // dst_len
  head.writeUInt8(RT_TABLE_MAIN, 4);
  head.writeUInt8(RTPROT_BOOT, 5);
  // A route without a gateway reaches its destination on the link itself.
  head.writeUInt8(r.via ? RT_SCOPE_UNIVERSE : RT_SCOPE_LINK, 6);
  head.writeUInt8(RTN_UNICAST, 7);
  const attrs = [u32(RTA_OIF, r.oif)];
  if (r.to) attrs.push(bytes(RTA_DST, parseIP(r.to).bytes));
  if (r.via) attrs.push(bytes(RTA_GATEWAY, parseIP(r.via).bytes));
  const flags = NLM_F_CREATE | (r.replace ? NLM_F_REPLACE : NLM_F_EXCL);
  return { type: RTM_NEWROUTE, flags, payload: Buffer.concat([head, ...attrs]), what: `add route ${r.to ?? 'default'}${r.via ? ` via ${r.via}` : ''}` };
}

/** A permanent neighbour entry (address -> MAC) on a link, replacing any other. */
export function replaceNeighbour(index: number, address: string, mac: string): NetlinkMessage {
  const { family, bytes: addr } = parseIP(address);
  const head = Buffer.alloc(12);
  head.writeUInt8(family === 4 ? AF_INET : AF_INET6, 0);
  head.writeInt32LE(index, 4);
  head.writeUInt16LE(NUD_PERMANENT, 8);
  return {
    type: RTM_NEWNEIGH,
    flags: NLM_F_CREATE | NLM_F_REPLACE,
    payload: Buffer.concat([head, bytes(NDA_DST, addr), bytes(NDA_LLADDR, parseMac(mac))]),
    what: `set neighbour ${address} to ${mac}`,
  };
}
