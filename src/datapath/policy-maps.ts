/**
 * PolicyMaps: the node's tnd_policy (endpoint id -> the endpoint's policy, an
 * LPM trie) and tnd_policy_gen. A policy is installed whole: a new inner map
 * is built and filled, then swapped in with one update of the outer map, so
 * no packet sees half of it; the kernel frees the old map once no program
 * holds it. After every policy or identity change the agent bumps the
 * generation, and the datapath re-checks each established connection once.
 *
 * Swapping waits for an RCU grace period (~10-20 ms here), also for an
 * endpoint that never had a policy. So an endpoint made ahead of time
 * (EndpointManager's prepared slots) gets an empty inner map swapped in
 * ahead of time (prepare()), and its first install fills that map in place:
 * nothing runs for the endpoint before its link comes up, so nobody sees it
 * half filled.
 *
 * Key layout (struct tnd_policy_key): prefixlen counts the bits after it,
 * 32 identity + 8 direction [+ 8 protocol [+ the port's prefix bits]].
 */
import { invalid } from '../common/errors.js';
import type { Direction, PolicyMapEntry, Verdict } from '../common/policy-entry.js';
import { ntohs } from '../common/wire-values.js';
import { BpfMap, MapFlag, MapType, u32 } from '../bpf/index.js';
import { TndPolicyDir, TndPolicyEntry, TndPolicyKey, TndPolicyVerdict } from '../bpf/generated/wire.js';
import { checkIdentity } from './ipcache-map.js';

/** Entries one endpoint's policy may hold (TND_POLICY_ENTRIES_MAX of common.h). */
export const POLICY_ENTRIES_MAX = 65536;

const L3_BITS = 40; // identity + direction
const L4_BITS = 48; // + protocol
const MAX_ENDPOINT_ID = 0xffff;

/** The entries of an endpoint no policy selects: everything allowed both ways (rule 0). */
export function allowAllEntries(): PolicyMapEntry[] {
  return (['ingress', 'egress'] as const).map((direction) => ({ direction, identity: 0, protocol: 0, port: 0, portPrefixLen: 0, verdict: 'allow', ruleId: 0 }));
}

function checkEndpointId(id: number): void {
  if (!Number.isInteger(id) || id < 1 || id > MAX_ENDPOINT_ID) throw invalid(`endpoint id ${id} is not an integer from 1 to ${MAX_ENDPOINT_ID}`);
}

/** The map key of an entry; throws on an entry the datapath could not mean. */
export function policyKey(e: PolicyMapEntry, what = 'policy entry'): TndPolicyKey {
  if (e.direction !== 'ingress' && e.direction !== 'egress') throw invalid(`${what}: direction "${String(e.direction)}" is neither ingress nor egress`);
  checkIdentity(e.identity, what);
  if (!Number.isInteger(e.protocol) || e.protocol < 0 || e.protocol > 255) throw invalid(`${what}: protocol ${e.protocol} is not an IP protocol number (0-255)`);
  if (!Number.isInteger(e.portPrefixLen) || e.portPrefixLen < 0 || e.portPrefixLen > 16) throw invalid(`${what}: portPrefixLen ${e.portPrefixLen} is not 0-16`);
  if (!Number.isInteger(e.port) || e.port < 0 || e.port > 0xffff) throw invalid(`${what}: port ${e.port} is not 0-65535`);
  if (e.protocol === 0 && (e.port !== 0 || e.portPrefixLen !== 0)) throw invalid(`${what}: an entry for any protocol (0) has no port, got ${e.port}/${e.portPrefixLen}`);
  const hostBits = (1 << (16 - e.portPrefixLen)) - 1;
  if ((e.port & hostBits) !== 0) throw invalid(`${what}: port ${e.port} is not the first of a /${e.portPrefixLen} block (expected ${e.port & ~hostBits & 0xffff})`);
  const direction = e.direction === 'ingress' ? TndPolicyDir.TND_POLICY_INGRESS : TndPolicyDir.TND_POLICY_EGRESS;
  if (e.protocol === 0) return { prefixlen: L3_BITS, identity: e.identity, direction, proto: 0, dport: 0 };
  return { prefixlen: L4_BITS + e.portPrefixLen, identity: e.identity, direction, proto: e.protocol, dport: ntohs(e.port) };
}

const VERDICTS: Record<Verdict, number> = {
  allow: TndPolicyVerdict.TND_POLICY_ALLOW,
  deny: TndPolicyVerdict.TND_POLICY_DENY,
  redirect: TndPolicyVerdict.TND_POLICY_REDIRECT,
};

function policyValue(e: PolicyMapEntry, what: string): TndPolicyEntry {
  if (!Object.hasOwn(VERDICTS, e.verdict)) throw invalid(`${what}: verdict "${String(e.verdict)}" is not allow, deny or redirect`);
  if (!Number.isInteger(e.ruleId) || e.ruleId < 0 || e.ruleId > 0xffffffff) throw invalid(`${what}: ruleId ${e.ruleId} is not 0-4294967295`);
  return { verdict: VERDICTS[e.verdict], ruleId: e.ruleId };
}

/** The verdict of a map value; a number this code never writes reads as deny. */
function verdictOf(value: number): Verdict {
  if (value === TndPolicyVerdict.TND_POLICY_ALLOW) return 'allow';
  if (value === TndPolicyVerdict.TND_POLICY_REDIRECT) return 'redirect';
  return 'deny';
}

export function decodePolicyEntry(key: TndPolicyKey, value: TndPolicyEntry): PolicyMapEntry {
  const direction: Direction = key.direction === TndPolicyDir.TND_POLICY_INGRESS ? 'ingress' : 'egress';
  const verdict = verdictOf(value.verdict);
  if (key.prefixlen < L4_BITS) return { direction, identity: key.identity, protocol: 0, port: 0, portPrefixLen: 0, verdict, ruleId: value.ruleId };
  return { direction, identity: key.identity, protocol: key.proto, port: ntohs(key.dport), portPrefixLen: key.prefixlen - L4_BITS, verdict, ruleId: value.ruleId };
}

export class PolicyMaps {
  /** Endpoints with an empty inner map in place (prepare()), not installed yet. */
  private readonly prepared = new Map<number, BpfMap>();
  /** Endpoints whose policy removeLater() is still removing, and the chain of those removals. */
  private readonly removing = new Set<number>();
  private removals: Promise<void> = Promise.resolve();

  /** `outer` is tnd_policy, `gen` tnd_policy_gen; both stay their owner's to close. */
  constructor(
    readonly outer: BpfMap,
    readonly gen: BpfMap,
  ) {
    if (outer.type !== MapType.HASH_OF_MAPS) throw invalid(`map "${outer.name}" is not a hash of maps (type ${outer.type})`);
  }

  /**
   * Replaces the endpoint's whole policy with `entries` in one step. Bad
   * input changes nothing: every entry is checked before the kernel sees any.
   * Returns once no program uses the old policy: the kernel waits for an RCU
   * grace period (several ms), blocking this thread; see installAsync().
   */
  install(endpointId: number, entries: PolicyMapEntry[]): void {
    const inner = this.build(endpointId, entries);
    try {
      this.outer.setInner(u32.encode(endpointId), inner);
    } finally {
      inner.close(); // tnd_policy holds the map now; the old one goes with its last reference
    }
  }

  /**
   * Puts an empty policy in place for an endpoint that does not exist yet,
   * so its first install needs no swap (see the top of this file).
   */
  async prepare(endpointId: number): Promise<void> {
    if (this.removing.has(endpointId)) await this.removals;
    const inner = this.build(endpointId, []);
    try {
      await this.outer.setInnerAsync(u32.encode(endpointId), inner);
    } catch (err) {
      inner.close();
      throw err;
    }
    this.prepared.set(endpointId, inner);
  }

  /** Drops a prepare()d endpoint's empty policy (it will not be made). */
  async unprepare(endpointId: number): Promise<void> {
    const inner = this.prepared.get(endpointId);
    if (!inner) return;
    this.prepared.delete(endpointId);
    inner.close();
    await this.removeAsync(endpointId);
  }

  /** install() with the swap's grace period waited for on a worker thread: installs overlap, the event loop runs on. */
  async installAsync(endpointId: number, entries: PolicyMapEntry[]): Promise<void> {
    if (this.fillPrepared(endpointId, entries)) return;
    const inner = this.build(endpointId, entries);
    try {
      await this.outer.setInnerAsync(u32.encode(endpointId), inner);
    } finally {
      inner.close();
    }
  }

  /**
   * install() for many endpoints in one batch update of tnd_policy, on a
   * worker thread: each endpoint's policy still swaps in one step, and the
   * kernel waits for one grace period for the whole batch instead of one
   * per endpoint.
   */
  async installMany(policies: Array<[endpointId: number, entries: PolicyMapEntry[]]>): Promise<void> {
    const swapped = policies.filter(([id, entries]) => !this.fillPrepared(id, entries));
    if (swapped.length === 0) return;
    const inners: BpfMap[] = [];
    try {
      for (const [id, entries] of swapped) inners.push(this.build(id, entries));
      await this.outer.setInnerBatchAsync(inners.map((inner, i) => [u32.encode(swapped[i]![0]), inner]));
    } finally {
      for (const inner of inners) inner.close();
    }
  }

  /** The first install of a prepare()d endpoint: written into its empty map. False when it was not prepared. */
  private fillPrepared(endpointId: number, entries: PolicyMapEntry[]): boolean {
    const inner = this.prepared.get(endpointId);
    if (!inner) return false;
    inner.updateBatch(encodeEntries(endpointId, entries));
    this.prepared.delete(endpointId);
    inner.close(); // tnd_policy holds it
    return true;
  }

  /** Removes the endpoint's policy: its new connections are then dropped (no policy). True when it had one. */
  remove(endpointId: number): boolean {
    checkEndpointId(endpointId);
    this.forgetPrepared(endpointId);
    return this.outer.delete(u32.encode(endpointId));
  }

  /**
   * removeAsync() without waiting for it: the endpoint's policy stops being
   * found once its device is gone, and the kernel's grace period need not
   * hold up the caller. Removals run one after another (each waits for the
   * kernel on a worker thread); isRemoving() tells until one is done,
   * settled() waits for all.
   */
  removeLater(endpointId: number): void {
    checkEndpointId(endpointId);
    this.forgetPrepared(endpointId);
    this.removing.add(endpointId);
    this.removals = this.removals.then(async () => {
      try {
        await this.outer.deleteAsync(u32.encode(endpointId));
      } catch (err) {
        process.emitWarning(`removing the policy of endpoint ${endpointId} failed: ${(err as Error).message}`);
      } finally {
        this.removing.delete(endpointId);
      }
    });
  }

  isRemoving(endpointId: number): boolean {
    return this.removing.has(endpointId);
  }

  /** Waits for every removeLater() (before the maps are closed). */
  settled(): Promise<void> {
    return this.removals;
  }

  /** remove() on a worker thread (a map of maps' delete waits for a grace period too). */
  removeAsync(endpointId: number): Promise<boolean> {
    checkEndpointId(endpointId);
    this.forgetPrepared(endpointId);
    return this.outer.deleteAsync(u32.encode(endpointId));
  }

  has(endpointId: number): boolean {
    checkEndpointId(endpointId);
    return this.outer.innerId(u32.encode(endpointId)) !== undefined;
  }

  /** The endpoint's installed policy as the kernel holds it ([] when it has none; see has()). */
  entries(endpointId: number): PolicyMapEntry[] {
    checkEndpointId(endpointId);
    const inner = this.outer.openInner(u32.encode(endpointId));
    if (!inner) return [];
    try {
      return [...inner.entries()].map(([k, v]) => decodePolicyEntry(TndPolicyKey.decode(k), TndPolicyEntry.decode(v)));
    } finally {
      inner.close();
    }
  }

  private forgetPrepared(endpointId: number): void {
    this.prepared.get(endpointId)?.close();
    this.prepared.delete(endpointId);
  }

  /** A new inner map holding `entries`, checked first; the caller swaps it in and closes it. */
  private build(endpointId: number, entries: PolicyMapEntry[]): BpfMap {
    const encoded = encodeEntries(endpointId, entries);
    const inner = BpfMap.create({
      type: MapType.LPM_TRIE,
      name: `tnd_pol_${endpointId}`,
      keySize: TndPolicyKey.size,
      valueSize: TndPolicyEntry.size,
      maxEntries: POLICY_ENTRIES_MAX,
      flags: MapFlag.NO_PREALLOC,
    });
    try {
      inner.updateBatch(encoded);
    } catch (err) {
      inner.close();
      throw err;
    }
    return inner;
  }

  /** Endpoints that have a policy installed. */
  endpoints(): number[] {
    return [...this.outer.keys()].map((k) => u32.decode(k)).sort((a, b) => a - b);
  }

  generation(): number {
    return u32.decode(this.gen.lookup(u32.encode(0))!);
  }

  /** Tells the datapath that policies or identities changed: established connections get re-checked. Returns the new generation. */
  bumpGeneration(): number {
    const next = (this.generation() + 1) >>> 0;
    this.gen.update(u32.encode(0), u32.encode(next));
    return next;
  }
}

/** An endpoint's entries as map keys and values, every one checked first (bad input writes nothing). */
function encodeEntries(endpointId: number, entries: PolicyMapEntry[]): Array<[Buffer, Buffer]> {
  checkEndpointId(endpointId);
  if (entries.length > POLICY_ENTRIES_MAX) throw invalid(`the policy of endpoint ${endpointId} has ${entries.length} entries; at most ${POLICY_ENTRIES_MAX} fit`);
  const byKey = new Map<string, [Buffer, Buffer, number]>();
  entries.forEach((e, i) => {
    const what = `policy entry ${i} of endpoint ${endpointId}`;
    const key = TndPolicyKey.encode(policyKey(e, what));
    const value = TndPolicyEntry.encode(policyValue(e, what));
    const id = key.toString('hex');
    const seen = byKey.get(id);
    if (seen && !seen[1].equals(value))
      throw invalid(`${what} has the key of entry ${seen[2]} (${e.direction} identity ${e.identity} protocol ${e.protocol} port ${e.port}/${e.portPrefixLen}) with another verdict or rule`);
    if (!seen) byKey.set(id, [key, value, i]);
  });
  // LPM tries have no batch update (6.18): updateBatch falls back to one update per entry.
  return [...byKey.values()].map(([k, v]) => [k, v]);
}
