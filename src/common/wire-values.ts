/** How values of the datapath's wire structs read to people: protocols, ports, addresses. */
import { formatIP } from './ip.js';

const PROTOCOLS: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'ICMPv6', 132: 'SCTP' };

export function protocolName(proto: number): string {
  return PROTOCOLS[proto] ?? String(proto);
}

/** A 16-bit field kept in network byte order, read as a host number. */
export function ntohs(n: number): number {
  return ((n & 0xff) << 8) | (n >> 8);
}

/** A port in host order as the 16-bit network-order field holds it (the same swap as ntohs). */
export const htons = ntohs;

/** An address in a key's 16-byte field (IPv4 in the first 4 bytes, zeros after), the inverse of formatKeyAddress. */
export function keyAddress(bytes: Uint8Array): Buffer {
  const out = Buffer.alloc(16);
  out.set(bytes);
  return out;
}

/** A key's 16-byte address field: IPv4 (AF_INET, 2) uses the first 4 bytes. */
export function formatKeyAddress(bytes: Uint8Array, family: number): string {
  return formatIP(bytes.subarray(0, family === 2 ? 4 : 16));
}
