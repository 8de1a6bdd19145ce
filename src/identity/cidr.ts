/**
 * CIDR identities: one node-local identity for each prefix the node's
 * policies name, so "allow to 10.0.0.0/8" is a rule on an identity like any
 * other. Each carries the labels of every named prefix that contains it
 * (itself included) and of its family's default prefix, so a rule naming a
 * wider prefix selects the narrower identities too; addresses outside every
 * named prefix are the world, which carries both default prefixes. A length
 * 0 prefix is the world itself.
 *
 * Ids come from 2^24 upward, moving forward (a freed id is not reused at
 * once); a prefix named before and after an update keeps its id. Nothing
 * here is shared between nodes: the set follows this node's policies.
 */
import { CIDR_IDENTITY_MAX, CIDR_IDENTITY_MIN, ReservedIdentity, isCidrIdentity } from '../common/identity.js';
import { TendrilError, invalid } from '../common/errors.js';
import { type Prefix, formatPrefix, maskBytes, parsePrefix } from '../common/ip.js';
import type { Labels } from '../common/labels.js';
import { type Identity, reservedIdentity } from './identity.js';

/** What an update changed; `changed` are identities whose labels changed (a containing prefix came or went). */
export interface CidrIdentityUpdate {
  added: Identity[];
  removed: Identity[];
  changed: Identity[];
}

interface Allocated {
  prefix: Prefix;
  identity: Identity;
}

export class CidrIdentities {
  /** Canonical prefix text -> its identity. */
  private readonly byPrefix = new Map<string, Allocated>();
  private readonly byId = new Map<number, Identity>();
  private cursor = CIDR_IDENTITY_MIN - 1;

  /**
   * `restore` gives prefixes their ids from before a restart (what the
   * datapath still holds), as if an update had named exactly those.
   */
  constructor(restore: Iterable<{ prefix: string; id: number }> = []) {
    const ids = new Map<string, number>();
    const used = new Set<number>();
    for (const { prefix, id } of restore) {
      const text = canonical(prefix);
      if (!isCidrIdentity(id)) throw invalid(`restored CIDR identity ${id} of ${text} is outside ${CIDR_IDENTITY_MIN}-${CIDR_IDENTITY_MAX}`);
      if (used.has(id) || ids.has(text)) throw invalid(`restored CIDR identity ${id} or prefix ${text} is given twice`);
      if (parsePrefix(text).length === 0) throw invalid(`restored prefix ${text} has length 0: it is the world, not a CIDR identity`);
      ids.set(text, id);
      used.add(id);
      if (id > this.cursor) this.cursor = id;
    }
    this.apply([...ids.keys()], ids);
  }

  /** Makes the named prefixes (and only those) have identities. Bad input changes nothing. */
  update(prefixes: Iterable<string>): CidrIdentityUpdate {
    return this.apply([...prefixes].map(canonical), new Map());
  }

  /** The identity standing for exactly this prefix: world for a length 0 prefix, undefined when it is not named. */
  identityOf(prefix: string): number | undefined {
    const p = parsePrefix(prefix);
    if (p.length === 0) return ReservedIdentity.world;
    return this.byPrefix.get(formatPrefix(p))?.identity.id;
  }

  /** A CIDR identity, or the world. */
  get(id: number): Identity | undefined {
    return id === ReservedIdentity.world ? reservedIdentity(id) : this.byId.get(id);
  }

  /** The world and every CIDR identity, by id. */
  list(): Identity[] {
    return [reservedIdentity(ReservedIdentity.world)!, ...[...this.byId.values()].sort((a, b) => a.id - b.id)];
  }

  /** Each named prefix with its own identity (length 0 excluded: the ipcache's defaults are the world already). */
  prefixes(): Array<{ prefix: string; id: number }> {
    return [...this.byPrefix].map(([prefix, a]) => ({ prefix, id: a.identity.id }));
  }

  private apply(named: string[], restoredIds: Map<string, number>): CidrIdentityUpdate {
    const referenced = new Map<string, Prefix>();
    for (const text of named) referenced.set(text, parsePrefix(text));
    const out: CidrIdentityUpdate = { added: [], removed: [], changed: [] };

    for (const [text, a] of this.byPrefix) {
      if (referenced.has(text)) continue;
      this.byPrefix.delete(text);
      this.byId.delete(a.identity.id);
      out.removed.push(a.identity);
    }
    const labelsOf = containingLabels(referenced);
    for (const [text, prefix] of referenced) {
      if (prefix.length === 0) continue;
      const labels = labelsOf(prefix);
      const old = this.byPrefix.get(text);
      if (old && sameLabels(old.identity.labels, labels)) continue;
      const identity = Object.freeze({ id: old?.identity.id ?? restoredIds.get(text) ?? this.nextId(), labels });
      this.byPrefix.set(text, { prefix, identity });
      this.byId.set(identity.id, identity);
      (old ? out.changed : out.added).push(identity);
    }
    return out;
  }

  private nextId(): number {
    const span = CIDR_IDENTITY_MAX - CIDR_IDENTITY_MIN + 1;
    for (let i = 0; i < span; i++) {
      this.cursor = this.cursor >= CIDR_IDENTITY_MAX ? CIDR_IDENTITY_MIN : this.cursor + 1;
      if (!this.byId.has(this.cursor)) return this.cursor;
    }
    throw new TendrilError('exhausted', `all ${span} CIDR identities are in use`);
  }
}

/** Canonical text of a prefix; throws a clear error for a malformed one. */
function canonical(text: string): string {
  return formatPrefix(parsePrefix(text));
}

/**
 * A function giving a prefix its labels: the world, its family's default,
 * and every referenced prefix containing it. It tries only the prefix
 * lengths that occur, so it costs (distinct lengths) lookups per prefix.
 */
function containingLabels(referenced: Map<string, Prefix>): (p: Prefix) => Labels {
  const lengths = { 4: new Set<number>(), 6: new Set<number>() };
  for (const p of referenced.values()) lengths[p.family].add(p.length);
  const sorted = { 4: [...lengths[4]].sort((a, b) => a - b), 6: [...lengths[6]].sort((a, b) => a - b) };
  return (p) => {
    const keys = ['reserved:world', p.family === 4 ? 'cidr:0.0.0.0/0' : 'cidr:::/0'];
    for (const len of sorted[p.family]) {
      if (len > p.length) break;
      const text = formatPrefix({ family: p.family, bytes: maskBytes(p.bytes, len), length: len });
      if (len > 0 && referenced.has(text)) keys.push(`cidr:${text}`);
    }
    const labels: Record<string, string> = {};
    for (const key of keys.sort()) labels[key] = '';
    return Object.freeze(labels);
  };
}

function sameLabels(a: Labels, b: Labels): boolean {
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => b[k] === a[k]);
}
