/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016, section 3.4): a
 * lookup table of M slots (M prime) filled with backend ids so that every
 * backend owns an almost equal share of the slots, and removing or adding
 * one backend moves few slots that belong to the others. The datapath hashes
 * a flow to a slot; this module only builds the table. Pure: no I/O.
 *
 * Each backend walks its own permutation of the slots, given by its `key`
 * (a stable name such as "10.200.1.5:8080/TCP", not its position in the
 * list): offset = h1(key) mod M, skip = h2(key) mod (M - 1) + 1. Backends
 * take turns claiming their next free slot until the table is full.
 */
import { invalid } from './errors.js';

export interface MaglevBackend {
  /** What the slots hold: 1..2^32-1 (0 means "no backend"). */
  id: number;
  /** Stable name that decides the backend's permutation. */
  key: string;
}

export function isPrime(n: number): boolean {
  if (!Number.isSafeInteger(n) || n < 2) return false;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) if (n % d === 0) return false;
  return true;
}

/**
 * The table for `backends` with `size` slots. The result depends on the set
 * of backends only, not on their order (they are taken in key order), so equal
 * sets give equal tables and can share one.
 *
 * `size` must be a prime of at least 2 x backends: slot counts differ by at
 * most one between backends, so every backend then owns at least two slots
 * and no share is more than 1.5 times another (the paper wants M >> N; this
 * is the floor below which the table stops balancing at all). No backends:
 * every slot is 0.
 */
export function buildMaglevTable(backends: readonly MaglevBackend[], size: number): Uint32Array {
  if (!isPrime(size)) throw invalid(`Maglev table size ${size} is not a prime number`);
  if (size < 2 * backends.length)
    throw invalid(`Maglev table size ${size} is too small for ${backends.length} backends: it needs at least 2 slots per backend (at most ${Math.floor(size / 2)} backends)`);
  checkBackends(backends);
  const table = new Uint32Array(size);
  const n = backends.length;
  if (n === 0) return table;

  const sorted = [...backends].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  // position[i]: the slot backend i tries next (offset + j*skip mod M, advanced incrementally).
  const position = new Uint32Array(n);
  const skip = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const bytes = utf8.encode(sorted[i]!.key);
    position[i] = offsetHash(bytes) % size;
    skip[i] = (skipHash(bytes) % (size - 1)) + 1;
  }
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      // A permutation of a prime-sized table visits every slot, so a free one is always found.
      let slot = position[i]!;
      while (table[slot] !== 0) slot = (slot + skip[i]!) % size;
      table[slot] = sorted[i]!.id;
      position[i] = (slot + skip[i]!) % size;
      if (++filled === size) return table;
    }
  }
}

function checkBackends(backends: readonly MaglevBackend[]): void {
  const ids = new Set<number>();
  const keys = new Set<string>();
  for (const b of backends) {
    if (!Number.isInteger(b.id) || b.id < 1 || b.id > 0xffffffff) throw invalid(`Maglev backend id ${b.id} ("${b.key}") is not 1..4294967295`);
    if (ids.has(b.id)) throw invalid(`Maglev backend id ${b.id} appears twice`);
    if (keys.has(b.key)) throw invalid(`Maglev backend key "${b.key}" appears twice`);
    ids.add(b.id);
    keys.add(b.key);
  }
}

const utf8 = new TextEncoder();

/** h1: FNV-1a (32-bit) with murmur3's finalizer, so short keys that differ in one byte land far apart. */
export function offsetHash(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193);
  return fmix32(h);
}

/** h2: murmur3 x86 32-bit with its own seed; independent of h1 by construction. */
export function skipHash(bytes: Uint8Array, seed = 0x5bd1e995): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const blocks = bytes.length & ~3;
  for (let i = 0; i < blocks; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(rotl32(Math.imul(k, c1), 15), c2);
    h = Math.imul(rotl32(h ^ k, 13), 5) + 0xe6546b64;
  }
  const tail = bytes.length & 3;
  if (tail > 0) {
    let k = 0;
    for (let i = tail - 1; i >= 0; i--) k = (k << 8) | bytes[blocks + i]!;
    h ^= Math.imul(rotl32(Math.imul(k, c1), 15), c2);
  }
  return fmix32(h ^ bytes.length);
}

function rotl32(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
