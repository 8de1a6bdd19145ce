/**
 * IP address management for one node: hands out addresses from the node's
 * IPv4 and IPv6 pod ranges. The first host address of each range is the
 * node's router; the IPv4 network and broadcast addresses are never handed
 * out. Allocation moves forward from the last address handed out, so a
 * released address is not reused at once (stale peers keep no surprises).
 * State is plain JSON so the agent persists it with the rest of its state.
 */
import { TendrilError, invalid } from '../common/errors.js';
import { type Prefix, formatIP, formatPrefix, fromBigInt, parsePrefix, toBigInt, parseIP } from '../common/ip.js';

export interface IpamState {
  /** owner (endpoint id as a string) -> addresses */
  allocations: Record<string, string[]>;
  cursor4: string | null;
  cursor6: string | null;
}

export interface PodRanges {
  ipv4: string;
  ipv6: string;
}

class Pool {
  readonly first: bigint;
  readonly last: bigint;
  readonly router: bigint;
  readonly used = new Set<bigint>();
  cursor: bigint;

  constructor(readonly prefix: Prefix) {
    const size = prefix.family === 4 ? 32 : 128;
    const hostBits = BigInt(size - prefix.length);
    const base = toBigInt(prefix.bytes);
    const count = 1n << hostBits;
    if (count < 4n) throw invalid(`pod range ${formatPrefix(prefix)} is too small: it needs room for a router and a pod`);
    this.router = base + 1n;
    this.first = base + 2n;
    // IPv4 keeps its broadcast address out of use.
    this.last = prefix.family === 4 ? base + count - 2n : base + count - 1n;
    this.cursor = this.router;
  }

  get bytesLen(): 4 | 16 {
    return this.prefix.family === 4 ? 4 : 16;
  }

  format(n: bigint): string {
    return formatIP(fromBigInt(n, this.bytesLen));
  }

  contains(n: bigint): boolean {
    return n >= this.first && n <= this.last;
  }

  allocate(): bigint {
    const span = this.last - this.first + 1n;
    // Bounded scan: at most the pool size, and never more than used+1 steps
    // past the cursor in practice, because only `used` addresses can block.
    const limit = span < BigInt(this.used.size + 1) ? span : BigInt(this.used.size + 1);
    let candidate = this.cursor;
    for (let i = 0n; i < limit; i++) {
      candidate = candidate >= this.last || candidate < this.first ? this.first : candidate + 1n;
      if (!this.used.has(candidate)) {
        this.used.add(candidate);
        this.cursor = candidate;
        return candidate;
      }
    }
    throw new TendrilError(
      'exhausted',
      `IPAM range ${formatPrefix(this.prefix)} is exhausted (${this.used.size} addresses in use): delete endpoints or give the node a larger range`,
    );
  }
}

export class Ipam {
  private readonly v4: Pool;
  private readonly v6: Pool;
  private readonly owners = new Map<string, bigint[]>();

  constructor(ranges: PodRanges, state?: IpamState) {
    const p4 = parsePrefix(ranges.ipv4);
    const p6 = parsePrefix(ranges.ipv6);
    if (p4.family !== 4) throw invalid(`IPv4 pod range "${ranges.ipv4}" is not an IPv4 prefix`);
    if (p6.family !== 6) throw invalid(`IPv6 pod range "${ranges.ipv6}" is not an IPv6 prefix`);
    this.v4 = new Pool(p4);
    this.v6 = new Pool(p6);
    if (state) this.restore(state);
  }

  get routerIPv4(): string {
    return this.v4.format(this.v4.router);
  }

  get routerIPv6(): string {
    return this.v6.format(this.v6.router);
  }

  get ranges(): PodRanges {
    return { ipv4: formatPrefix(this.v4.prefix), ipv6: formatPrefix(this.v6.prefix) };
  }

  /** Allocates one IPv4 and one IPv6 address for `owner`; all or nothing. */
  allocate(owner: string): { ipv4: string; ipv6: string } {
    if (this.owners.has(owner)) throw invalid(`IPAM owner "${owner}" already holds addresses`);
    const a4 = this.v4.allocate();
    let a6: bigint;
    try {
      a6 = this.v6.allocate();
    } catch (err) {
      this.v4.used.delete(a4);
      throw err;
    }
    this.owners.set(owner, [a4, a6]);
    return { ipv4: this.v4.format(a4), ipv6: this.v6.format(a6) };
  }

  /** Releases what `owner` holds; releasing nothing is not an error. */
  release(owner: string): void {
    const held = this.owners.get(owner);
    if (!held) return;
    this.v4.used.delete(held[0]!);
    this.v6.used.delete(held[1]!);
    this.owners.delete(owner);
  }

  inUse(): number {
    return this.owners.size;
  }

  snapshot(): IpamState {
    const allocations: Record<string, string[]> = {};
    for (const [owner, [a4, a6]] of this.owners) allocations[owner] = [this.v4.format(a4!), this.v6.format(a6!)];
    return { allocations, cursor4: this.v4.format(this.v4.cursor), cursor6: this.v6.format(this.v6.cursor) };
  }

  private restore(state: IpamState): void {
    for (const [owner, addrs] of Object.entries(state.allocations)) {
      const [t4, t6] = addrs;
      if (!t4 || !t6) throw invalid(`IPAM state for "${owner}" is incomplete`);
      const a4 = toBigInt(parseIP(t4).bytes);
      const a6 = toBigInt(parseIP(t6).bytes);
      if (!this.v4.contains(a4) || !this.v6.contains(a6))
        throw invalid(`IPAM state holds ${t4}/${t6} for "${owner}", outside the node's ranges ${formatPrefix(this.v4.prefix)} and ${formatPrefix(this.v6.prefix)}`);
      if (this.v4.used.has(a4) || this.v6.used.has(a6)) throw invalid(`IPAM state hands ${t4} or ${t6} out twice`);
      this.v4.used.add(a4);
      this.v6.used.add(a6);
      this.owners.set(owner, [a4, a6]);
    }
    if (state.cursor4) this.v4.cursor = toBigInt(parseIP(state.cursor4).bytes);
    if (state.cursor6) this.v6.cursor = toBigInt(parseIP(state.cursor6).bytes);
  }
}
