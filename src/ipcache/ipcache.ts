/**
 * The ipcache: which identity an address has, as prefix -> identity, looked
 * up by longest prefix. This is the model; the datapath's LPM map mirrors it
 * through an IpcacheSink, so lookup() here gives the answer a packet gets.
 *
 * Several sources may name the same prefix (an endpoint's /32 that a policy
 * also names as a CIDR); the strongest source wins, and among claims of one
 * source the latest. Each claim belongs to an owner (an endpoint id, a node,
 * "policy"), so an owner's claims can be withdrawn without knowing the rest.
 * 0.0.0.0/0 and ::/0 are always the world.
 *
 * Restart: the model starts detached from the sink, so rebuilding it does not
 * disturb what the datapath holds; sync() then makes the sink hold exactly
 * the model, and from then on every change is written through.
 */
import { CIDR_IDENTITY_MAX, ReservedIdentity } from '../common/identity.js';
import { invalid } from '../common/errors.js';
import { type Family, type Prefix, formatPrefix, maskBytes, parseIP, parsePrefix } from '../common/ip.js';

/** What the datapath implements over its LPM map (src/datapath/ipcache-map.ts). */
export interface IpcacheSink {
  set(cidr: string, identity: number): void;
  delete(cidr: string): void;
  /** What the map holds now; without it, sync() can add but not remove stale entries. */
  entries?(): Array<{ cidr: string; identity: number }>;
}

/** Who says what a prefix is; this order is the precedence, strongest first. */
export const IPCACHE_SOURCES = ['endpoint', 'host', 'cidr'] as const;
export type IpcacheSource = (typeof IPCACHE_SOURCES)[number];

export interface IpcacheEntry {
  cidr: string;
  identity: number;
  /** The claim that won; 'default' for the world's 0.0.0.0/0 and ::/0. */
  source: IpcacheSource | 'default';
  owner: string;
}

interface Claim {
  source: IpcacheSource | 'default';
  owner: string;
  identity: number;
  /** Order of the claim, so the latest of one source wins. */
  seq: number;
}

const rank = (s: Claim['source']): number => (s === 'default' ? IPCACHE_SOURCES.length : IPCACHE_SOURCES.indexOf(s));

export class Ipcache {
  /** Canonical prefix -> every claim on it. */
  private readonly claims = new Map<string, Claim[]>();
  /** "source owner" -> the prefixes it claims. */
  private readonly owned = new Map<string, Set<string>>();
  /** Canonical prefix -> the winning claim: the model the sink mirrors. */
  private readonly winners = new Map<string, Claim>();
  /** For lookup: family -> prefix length -> network bytes (as a string) -> identity. */
  private readonly lpm: Record<Family, Map<number, Map<string, number>>> = { 4: new Map(), 6: new Map() };
  private seq = 0;
  private attached = false;

  constructor(private readonly sink: IpcacheSink) {
    for (const cidr of ['0.0.0.0/0', '::/0']) this.claim(cidr, { source: 'default', owner: 'default', identity: ReservedIdentity.world, seq: 0 });
  }

  /** `owner` of `source` says `cidr` (a prefix, or an address meaning its /32 or /128) has `identity`. */
  upsert(source: IpcacheSource, owner: string, cidr: string, identity: number): void {
    const text = canonical(cidr);
    checkIdentity(text, identity);
    this.claim(text, { source, owner, identity, seq: ++this.seq });
  }

  /** Withdraws `owner`'s claim on `cidr`; a claim it does not have is ignored. */
  remove(source: IpcacheSource, owner: string, cidr: string): void {
    this.unclaim(canonical(cidr), source, owner);
  }

  /** Withdraws every claim of `owner`. */
  removeOwner(source: IpcacheSource, owner: string): void {
    for (const cidr of [...(this.owned.get(ownerKey(source, owner)) ?? [])]) this.unclaim(cidr, source, owner);
  }

  /** Makes `owner`'s claims exactly `entries`: claims it no longer makes are withdrawn, the rest upserted. */
  replaceOwner(source: IpcacheSource, owner: string, entries: Iterable<{ cidr: string; identity: number }>): void {
    const wanted = new Map<string, number>();
    for (const e of entries) {
      const text = canonical(e.cidr);
      checkIdentity(text, e.identity);
      wanted.set(text, e.identity);
    }
    for (const cidr of [...(this.owned.get(ownerKey(source, owner)) ?? [])]) if (!wanted.has(cidr)) this.unclaim(cidr, source, owner);
    for (const [cidr, identity] of wanted) {
      const mine = this.claims.get(cidr)?.find((c) => c.source === source && c.owner === owner);
      if (mine?.identity !== identity) this.upsert(source, owner, cidr, identity);
    }
  }

  /** The identity of an address: its longest matching prefix's, as the datapath finds it. */
  lookup(ip: string): number {
    const { family, bytes } = parseIP(ip);
    const byLength = this.lpm[family];
    const lengths = [...byLength.keys()].sort((a, b) => b - a);
    for (const length of lengths) {
      const identity = byLength.get(length)!.get(networkKey(maskBytes(bytes, length)));
      if (identity !== undefined) return identity;
    }
    return ReservedIdentity.world; // unreachable: the defaults match every address
  }

  /** The model: each prefix with the claim that won, IPv4 first, then by address and length. */
  entries(): IpcacheEntry[] {
    return [...this.winners]
      .map(([cidr, c]) => ({ prefix: parsePrefix(cidr), entry: { cidr, identity: c.identity, source: c.source, owner: c.owner } }))
      .sort((a, b) => comparePrefixes(a.prefix, b.prefix))
      .map((x) => x.entry);
  }

  /**
   * Makes the sink hold exactly the model (adds and corrects entries, then
   * removes those the model lacks) and writes every later change through.
   */
  sync(): { set: number; deleted: number } {
    const present = new Map<string, { raw: string; identity: number }>();
    for (const e of this.sink.entries?.() ?? []) present.set(canonicalOr(e.cidr), { raw: e.cidr, identity: e.identity });
    let set = 0;
    let deleted = 0;
    for (const [cidr, c] of this.winners) {
      if (present.get(cidr)?.identity === c.identity) continue;
      this.sink.set(cidr, c.identity);
      set++;
    }
    for (const [cidr, e] of present) {
      if (this.winners.has(cidr)) continue;
      this.sink.delete(e.raw);
      deleted++;
    }
    this.attached = true;
    return { set, deleted };
  }

  private claim(cidr: string, claim: Claim): void {
    const others = (this.claims.get(cidr) ?? []).filter((c) => c.source !== claim.source || c.owner !== claim.owner);
    this.settle(cidr, [...others, claim]);
    const key = ownerKey(claim.source, claim.owner);
    let set = this.owned.get(key);
    if (!set) this.owned.set(key, (set = new Set()));
    set.add(cidr);
  }

  private unclaim(cidr: string, source: IpcacheSource, owner: string): void {
    const claims = this.claims.get(cidr);
    if (!claims?.some((c) => c.source === source && c.owner === owner)) return;
    this.settle(cidr, claims.filter((c) => c.source !== source || c.owner !== owner));
    const key = ownerKey(source, owner);
    const set = this.owned.get(key)!;
    set.delete(cidr);
    if (set.size === 0) this.owned.delete(key);
  }

  /** Installs the claims of a prefix; the sink hears of a new winner first, so a refused write changes nothing. */
  private settle(cidr: string, claims: Claim[]): void {
    const winner = best(claims);
    const old = this.winners.get(cidr);
    if (this.attached && winner?.identity !== old?.identity) {
      if (winner) this.sink.set(cidr, winner.identity);
      else this.sink.delete(cidr);
    }
    const prefix = parsePrefix(cidr);
    let byNet = this.lpm[prefix.family].get(prefix.length);
    if (claims.length === 0) {
      this.claims.delete(cidr);
      this.winners.delete(cidr);
      byNet?.delete(networkKey(prefix.bytes));
      if (byNet?.size === 0) this.lpm[prefix.family].delete(prefix.length);
      return;
    }
    this.claims.set(cidr, claims);
    this.winners.set(cidr, winner!);
    if (!byNet) this.lpm[prefix.family].set(prefix.length, (byNet = new Map()));
    byNet.set(networkKey(prefix.bytes), winner!.identity);
  }
}

function checkIdentity(cidr: string, identity: number): void {
  if (!Number.isInteger(identity) || identity <= 0 || identity > CIDR_IDENTITY_MAX)
    throw invalid(`identity ${identity} for ${cidr} is not an identity (1-${CIDR_IDENTITY_MAX})`);
}

function best(claims: Claim[]): Claim | undefined {
  let out: Claim | undefined;
  for (const c of claims) {
    if (!out || rank(c.source) < rank(out.source) || (rank(c.source) === rank(out.source) && c.seq > out.seq)) out = c;
  }
  return out;
}

/** A prefix's canonical text; an address alone means its host prefix. */
function canonical(text: string): string {
  if (text.includes('/')) return formatPrefix(parsePrefix(text));
  const { family, bytes } = parseIP(text);
  return formatPrefix({ family, bytes, length: family === 4 ? 32 : 128 });
}

/** Canonical text of what a sink reports, or the text itself when it does not parse (then it is stale). */
function canonicalOr(text: string): string {
  try {
    return canonical(text);
  } catch {
    return text;
  }
}

function networkKey(bytes: Uint8Array): string {
  return String.fromCharCode(...bytes);
}

function ownerKey(source: string, owner: string): string {
  return `${source} ${owner}`;
}

function comparePrefixes(a: Prefix, b: Prefix): number {
  if (a.family !== b.family) return a.family - b.family;
  for (let i = 0; i < a.bytes.length; i++) if (a.bytes[i] !== b.bytes[i]) return a.bytes[i]! - b.bytes[i]!;
  return a.length - b.length;
}
