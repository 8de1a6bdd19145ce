/**
 * An identity as the agent hands it out: its number and its label set, and
 * the reserved identities with their labels. The numbering itself lives in
 * src/common/identity.ts (shared with the datapath).
 */
import { ReservedIdentity, type ReservedName, reservedLabels } from '../common/identity.js';
import { invalid } from '../common/errors.js';
import type { Labels } from '../common/labels.js';

export interface Identity {
  readonly id: number;
  /** Sorted by key. */
  readonly labels: Labels;
}

/**
 * The world: every address no other identity claims. It carries the labels of
 * both default prefixes, so a rule naming 0.0.0.0/0 or ::/0 selects it the way
 * it selects a CIDR identity.
 */
export const WORLD_LABELS: Labels = Object.freeze({ 'cidr:0.0.0.0/0': '', 'cidr:::/0': '', 'reserved:world': '' });

/** The reserved identities, by id: labels {"reserved:<name>": ""} (the world's also name its prefixes). */
export const RESERVED_IDENTITIES: readonly Identity[] = Object.freeze(
  (Object.entries(ReservedIdentity) as Array<[ReservedName, number]>).map(([name, id]) =>
    Object.freeze({ id, labels: id === ReservedIdentity.world ? WORLD_LABELS : Object.freeze(reservedLabels(name)) }),
  ),
);

const reservedById = new Map(RESERVED_IDENTITIES.map((i) => [i.id, i]));

export function reservedIdentity(id: number): Identity | undefined {
  return reservedById.get(id);
}

/** Label keys the agent gives identities itself; an endpoint cannot claim them. */
const AGENT_SOURCES = ['reserved:', 'cidr:'];

/**
 * An endpoint label set, sorted and checked for what its canonical form
 * (labelKey) needs: a key without "," or "=", a value without ",".
 */
export function endpointLabels(labels: Record<string, string>): Labels {
  const out: Record<string, string> = {};
  for (const key of Object.keys(labels).sort()) {
    const value = labels[key]!;
    if (key === '' || /[,=]/.test(key)) throw invalid(`label key "${key}" is invalid for an identity (empty, or contains "," or "=")`);
    if (value.includes(',')) throw invalid(`label value "${value}" of "${key}" is invalid for an identity (contains ",")`);
    if (AGENT_SOURCES.some((s) => key.startsWith(s)))
      throw invalid(`label "${key}" is reserved for identities the agent makes itself; endpoint labels cannot use it`);
    out[key] = value;
  }
  return Object.freeze(out);
}

/** The canonical string of an endpoint label set: "k=v,k2=v2" sorted by key; equal sets, equal strings. */
export function labelKey(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}

/** The label set a labelKey() string stands for; undefined when the text is not one. */
export function parseLabelKey(text: string): Labels | undefined {
  const out: Record<string, string> = {};
  if (text === '') return Object.freeze(out);
  for (const item of text.split(',')) {
    const eq = item.indexOf('=');
    if (eq <= 0) return undefined;
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return labelKey(out) === text ? Object.freeze(out) : undefined;
}
