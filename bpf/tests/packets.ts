/**
 * Packet bytes for the datapath's packet-level tests: Ethernet, ARP, IPv4,
 * IPv6, TCP, UDP, ICMP and ICMPv6 (echo, neighbour discovery), with correct
 * lengths and checksums unless a test asks otherwise. Written from the RFCs,
 * independently of the C code, so a test compares the datapath against a
 * second implementation.
 */
import { isIPv4, isIPv6 } from 'node:net';

export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const IPPROTO_ICMPV6 = 58;
export const IPPROTO_SCTP = 132;
export const IPPROTO_HOPOPTS = 0;
export const IPPROTO_FRAGMENT = 44;

export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;

/** "02:00:00:00:00:01" -> 6 bytes. */
export function mac(s: string): Buffer {
  const parts = s.split(':');
  if (parts.length !== 6) throw new Error(`Not a MAC address: "${s}"`);
  return Buffer.from(parts.map((h) => parseInt(h, 16)));
}

/** "10.200.0.2" -> 4 bytes. */
export function ip4(s: string): Buffer {
  if (!isIPv4(s)) throw new Error(`Not an IPv4 address: "${s}"`);
  return Buffer.from(s.split('.').map(Number));
}

/** "fd10:200::2" -> 16 bytes (:: expanded). */
export function ip6(s: string): Buffer {
  if (!isIPv6(s)) throw new Error(`Not an IPv6 address: "${s}"`);
  const [head, tail] = s.includes('::') ? s.split('::') : [s, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
  const b = Buffer.alloc(16);
  groups.forEach((g, i) => b.writeUInt16BE(parseInt(g, 16), i * 2));
  return b;
}

/** Solicited-node multicast address of an IPv6 address (ff02::1:ffXX:XXXX). */
export function solicitedNode(addr: Buffer): Buffer {
  const b = ip6('ff02::1:ff00:0');
  addr.copy(b, 13, 13, 16);
  return b;
}

/** The multicast MAC of an IPv6 multicast address (33:33 + last 4 bytes). */
export function multicastMac(addr: Buffer): Buffer {
  return Buffer.concat([Buffer.from([0x33, 0x33]), addr.subarray(12, 16)]);
}

/** Network-order 16-bit value as it reads through a little-endian codec (ports in map keys). */
export function be16(n: number): number {
  return ((n & 0xff) << 8) | (n >> 8);
}

/** RFC 1071 Internet checksum over the concatenation of `parts`. */
export function inetChecksum(...parts: Buffer[]): number {
  const b = Buffer.concat(parts);
  let sum = 0;
  for (let i = 0; i < b.length; i += 2) sum += (b[i]! << 8) | (b[i + 1] ?? 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

export function eth(dst: Buffer, src: Buffer, type: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(14);
  dst.copy(h, 0);
  src.copy(h, 6);
  h.writeUInt16BE(type, 12);
  return Buffer.concat([h, payload]);
}

export interface ArpFields {
  op: 1 | 2;
  sha: Buffer;
  spa: Buffer;
  tha: Buffer;
  tpa: Buffer;
}

/** RFC 826 body for Ethernet/IPv4. */
export function arp(f: ArpFields): Buffer {
  const b = Buffer.alloc(28);
  b.writeUInt16BE(1, 0); // Ethernet
  b.writeUInt16BE(ETH_P_IP, 2);
  b[4] = 6;
  b[5] = 4;
  b.writeUInt16BE(f.op, 6);
  f.sha.copy(b, 8);
  f.spa.copy(b, 14);
  f.tha.copy(b, 18);
  f.tpa.copy(b, 24);
  return b;
}

export interface Ipv4Fields {
  src: Buffer;
  dst: Buffer;
  proto: number;
  ttl?: number;
  id?: number;
  /** flags and fragment offset, as the 16-bit field (0x4000 = DF) */
  fragOff?: number;
  /** IP options, a multiple of 4 bytes */
  options?: Buffer;
  /** type of service / DSCP+ECN byte (default 0) */
  tos?: number;
}

export function ipv4(f: Ipv4Fields, payload: Buffer): Buffer {
  const opts = f.options ?? Buffer.alloc(0);
  const h = Buffer.alloc(20 + opts.length);
  h[0] = 0x40 | (h.length / 4);
  h[1] = f.tos ?? 0;
  h.writeUInt16BE(h.length + payload.length, 2);
  h.writeUInt16BE(f.id ?? 0x1234, 4);
  h.writeUInt16BE(f.fragOff ?? 0x4000, 6);
  h[8] = f.ttl ?? 64;
  h[9] = f.proto;
  f.src.copy(h, 12);
  f.dst.copy(h, 16);
  opts.copy(h, 20);
  h.writeUInt16BE(inetChecksum(h), 10);
  return Buffer.concat([h, payload]);
}

/** True when the IPv4 header at the start of `b` has a valid checksum. */
export function ipv4ChecksumOk(b: Buffer): boolean {
  return inetChecksum(b.subarray(0, (b[0]! & 0x0f) * 4)) === 0;
}

export interface Ipv6Fields {
  src: Buffer;
  dst: Buffer;
  nextHeader: number;
  hopLimit?: number;
}

export function ipv6(f: Ipv6Fields, payload: Buffer): Buffer {
  const h = Buffer.alloc(40);
  h.writeUInt32BE(0x60000000, 0);
  h.writeUInt16BE(payload.length, 4);
  h[6] = f.nextHeader;
  h[7] = f.hopLimit ?? 64;
  f.src.copy(h, 8);
  f.dst.copy(h, 24);
  return Buffer.concat([h, payload]);
}

/** Pseudo-header of an L4 checksum: IPv4 (12 bytes) or IPv6 (40 bytes) by address size. */
function pseudoHeader(src: Buffer, dst: Buffer, proto: number, len: number): Buffer {
  if (src.length === 4) {
    const p = Buffer.alloc(12);
    src.copy(p, 0);
    dst.copy(p, 4);
    p[9] = proto;
    p.writeUInt16BE(len, 10);
    return p;
  }
  const p = Buffer.alloc(40);
  src.copy(p, 0);
  dst.copy(p, 16);
  p.writeUInt32BE(len, 32);
  p[39] = proto;
  return p;
}

/** Sets the checksum at `at` of an L4 segment from its pseudo-header. */
function withL4Checksum(seg: Buffer, at: number, src: Buffer, dst: Buffer, proto: number): Buffer {
  seg.writeUInt16BE(0, at);
  seg.writeUInt16BE(inetChecksum(pseudoHeader(src, dst, proto, seg.length), seg), at);
  return seg;
}

/** True when an L4 segment's checksum (pseudo-header included) is valid. */
export function l4ChecksumOk(seg: Buffer, src: Buffer, dst: Buffer, proto: number): boolean {
  return inetChecksum(pseudoHeader(src, dst, proto, seg.length), seg) === 0;
}

export interface TcpFields {
  sport: number;
  dport: number;
  flags: number;
  seq?: number;
  ack?: number;
  payload?: Buffer;
  /** default 65535 */
  window?: number;
}

export function tcp(src: Buffer, dst: Buffer, f: TcpFields): Buffer {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(f.sport, 0);
  h.writeUInt16BE(f.dport, 2);
  h.writeUInt32BE(f.seq ?? 1000, 4);
  h.writeUInt32BE(f.ack ?? 0, 8);
  h[12] = 5 << 4;
  h[13] = f.flags;
  h.writeUInt16BE(f.window ?? 65535, 14);
  return withL4Checksum(Buffer.concat([h, f.payload ?? Buffer.alloc(0)]), 16, src, dst, IPPROTO_TCP);
}

export function udp(src: Buffer, dst: Buffer, sport: number, dport: number, payload: Buffer): Buffer {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt16BE(8 + payload.length, 4);
  return withL4Checksum(Buffer.concat([h, payload]), 6, src, dst, IPPROTO_UDP);
}

/** ICMPv4 message: type, code, then `rest` (for echo: identifier, sequence, data). */
export function icmp4(type: number, code: number, rest: Buffer): Buffer {
  const b = Buffer.concat([Buffer.from([type, code, 0, 0]), rest]);
  b.writeUInt16BE(inetChecksum(b), 2);
  return b;
}

/** ICMPv6 message with its checksum over the IPv6 pseudo-header. */
export function icmp6(src: Buffer, dst: Buffer, type: number, code: number, rest: Buffer): Buffer {
  return withL4Checksum(Buffer.concat([Buffer.from([type, code, 0, 0]), rest]), 2, src, dst, IPPROTO_ICMPV6);
}

/** Identifier, sequence number and data of an echo request or reply. */
export function echoBody(id: number, seq: number, data: Buffer = Buffer.from('tendril-ping-0123456789')): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt16BE(id, 0);
  b.writeUInt16BE(seq, 2);
  return Buffer.concat([b, data]);
}

/** Body of a neighbour solicitation or advertisement: flags word, target, options. */
export function ndBody(flags: number, target: Buffer, options: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32BE(flags >>> 0, 0);
  return Buffer.concat([b, target, options]);
}

/** A link-layer address option (1 = source, 2 = target). */
export function ndLladdrOption(type: 1 | 2, addr: Buffer): Buffer {
  return Buffer.concat([Buffer.from([type, 1]), addr]);
}

/** A hop-by-hop options header with a router alert (as MLD reports carry), 8 bytes. */
export function hopByHopRouterAlert(nextHeader: number): Buffer {
  return Buffer.from([nextHeader, 0, 5, 2, 0, 0, 1, 0]);
}

const CRC32C_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC32c (Castagnoli), SCTP's checksum (RFC 4960 appendix B, RFC 3309). */
export function crc32c(b: Buffer): number {
  let c = 0xffffffff;
  for (const x of b) c = CRC32C_TABLE[(c ^ x) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** An SCTP INIT chunk (RFC 4960 3.3.2) without parameters. */
export function sctpInit(initiateTag: number): Buffer {
  const c = Buffer.alloc(20);
  c[0] = 1; // INIT
  c.writeUInt16BE(20, 2);
  c.writeUInt32BE(initiateTag >>> 0, 4);
  c.writeUInt32BE(65536, 8); // a_rwnd
  c.writeUInt16BE(10, 12); // outbound streams
  c.writeUInt16BE(10, 14); // inbound streams
  c.writeUInt32BE(1, 16); // initial TSN
  return c;
}

/** SCTP packet: common header (ports, verification tag, CRC32c, stored as the kernel stores it) and chunks. */
export function sctp(sport: number, dport: number, o: { vtag?: number; chunks?: Buffer } = {}): Buffer {
  const h = Buffer.alloc(12);
  h.writeUInt16BE(sport, 0);
  h.writeUInt16BE(dport, 2);
  h.writeUInt32BE((o.vtag ?? 0) >>> 0, 4);
  const pkt = Buffer.concat([h, o.chunks ?? sctpInit(0x11223344)]);
  pkt.writeUInt32LE(crc32c(pkt), 8);
  return pkt;
}

/** The DSR option of IPv4 (bpf/lib/common.h struct tnd_dsr_opt4): type 0x9e, length 8, port, address. */
export function dsrOption4(addr: Buffer, port: number, o: { type?: number; len?: number } = {}): Buffer {
  const b = Buffer.alloc(8);
  b[0] = o.type ?? 0x9e;
  b[1] = o.len ?? 8;
  b.writeUInt16BE(port, 2);
  addr.copy(b, 4);
  return b;
}

export const IPPROTO_DSTOPTS = 60;

/** The DSR destination options header of IPv6 (struct tnd_dsr_opt6): option 0x1e (18 bytes) and a PadN, 24 bytes. */
export function dsrOption6(nextHeader: number, addr: Buffer, port: number, o: { len?: number; hdrlen?: number } = {}): Buffer {
  const b = Buffer.alloc(24);
  b[0] = nextHeader;
  b[1] = o.hdrlen ?? 2;
  b[2] = 0x1e;
  b[3] = o.len ?? 18;
  b.writeUInt16BE(port, 4);
  addr.copy(b, 6);
  b[22] = 1; // PadN
  b[23] = 0;
  return b;
}
