/**
 * XDP-only packet bytes for the load balancer's tests (packets.ts has the
 * general builders): the DSR options, the TCP reset and ICMP errors the
 * load balancer answers with, and the xdp_md context of a test run.
 */
import { IPPROTO_TCP, inetChecksum, tcp, type TcpFields } from './packets.js';

export const IPPROTO_DSTOPTS = 60;
export const DSR_OPT4_TYPE = 0x9e;
export const DSR_OPT6_TYPE = 0x1e;

/** The IPv4 DSR option: type, length 8, port, address. */
export function dsrOpt4(addr: Buffer, port: number): Buffer {
  const b = Buffer.alloc(8);
  b[0] = DSR_OPT4_TYPE;
  b[1] = 8;
  b.writeUInt16BE(port, 2);
  addr.copy(b, 4);
  return b;
}

/** The IPv6 Destination Options header of DSR: one option (port, address) and a 2-byte PadN, 24 bytes. */
export function dsrOpt6(nextHeader: number, addr: Buffer, port: number): Buffer {
  const b = Buffer.alloc(24);
  b[0] = nextHeader;
  b[1] = 2;
  b[2] = DSR_OPT6_TYPE;
  b[3] = 18;
  b.writeUInt16BE(port, 4);
  addr.copy(b, 6);
  b[22] = 1;
  b[23] = 0;
  return b;
}

/** A TCP segment as tcp() builds it, but with window 0 (what a reset carries). */
export function tcpWindow0(src: Buffer, dst: Buffer, f: TcpFields): Buffer {
  const seg = tcp(src, dst, f);
  seg.writeUInt16BE(0, 14);
  seg.writeUInt16BE(0, 16);
  const pseudo = Buffer.alloc(src.length === 4 ? 12 : 40);
  if (src.length === 4) {
    src.copy(pseudo, 0);
    dst.copy(pseudo, 4);
    pseudo[9] = IPPROTO_TCP;
    pseudo.writeUInt16BE(seg.length, 10);
  } else {
    src.copy(pseudo, 0);
    dst.copy(pseudo, 16);
    pseudo.writeUInt32BE(seg.length, 32);
    pseudo[39] = IPPROTO_TCP;
  }
  seg.writeUInt16BE(inetChecksum(pseudo, seg), 16);
  return seg;
}

/** struct xdp_md for BPF_PROG_TEST_RUN: data 0, data_end = length, the receiving device. */
export function xdpCtx(ifindex: number, length: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(0, 0);
  b.writeUInt32LE(length, 4);
  b.writeUInt32LE(ifindex, 12);
  return b;
}
