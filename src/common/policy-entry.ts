/**
 * What a resolved policy becomes for one endpoint: entries of its policy map.
 * The datapath looks a new connection up as (peer identity, direction,
 * protocol, destination port) by longest prefix: the exact identity, then
 * its class (see identity.ts), then IDENTITY_ANY. A deny found by any of the
 * three wins; else an allow found by any of them allows; else the packet is
 * dropped. An endpoint that no policy selects in a direction gets one
 * allow-all entry there (ruleId 0), so the datapath itself is always
 * default-deny and a whole policy swaps in one step.
 *
 * Within one (identity, direction) the resolver guarantees that no allow
 * entry lies inside a deny entry's range, so the longest match is the right
 * answer (deny wins over allow even when the allow is more specific).
 */
export type Direction = 'ingress' | 'egress';
/**
 * redirect: allowed at L3/L4, but only through the L7 proxy, which judges each
 * HTTP request (src/common/l7-policy.ts). Between the three, deny wins over
 * allow, and allow over redirect (an L4-only allow lets every request through,
 * so the flow need not touch the proxy).
 */
export type Verdict = 'allow' | 'deny' | 'redirect';

export interface PolicyMapEntry {
  direction: Direction;
  /** Exact identity, IDENTITY_ANY, or a class value (identity.ts). */
  identity: number;
  /** IP protocol number: 6 TCP, 17 UDP, 132 SCTP; 0 = any protocol (then port and portPrefixLen are 0). */
  protocol: number;
  /** First port of the range: the range is port .. port + 2^(16 - portPrefixLen) - 1. */
  port: number;
  /** How many leading bits of the destination port must match: 16 = one port, 0 = any port. */
  portPrefixLen: number;
  verdict: Verdict;
  /** The rule that produced the entry (the agent's table); 0 = no rule (default allow). */
  ruleId: number;
}

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;
export const PROTO_SCTP = 132;

/** Splits an inclusive port range into the fewest prefix-aligned blocks (at most 30 for 1-65535). */
export function portRangeToPrefixes(first: number, last: number): Array<{ port: number; prefixLen: number }> {
  const out: Array<{ port: number; prefixLen: number }> = [];
  let port = first;
  while (port <= last) {
    // The largest aligned block starting at `port` that still ends within the range.
    let size = port === 0 ? 1 << 16 : port & -port;
    while (port + size - 1 > last) size >>= 1;
    out.push({ port, prefixLen: 16 - Math.log2(size) });
    port += size;
  }
  return out;
}
