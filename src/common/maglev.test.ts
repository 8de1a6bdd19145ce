import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildMaglevTable, isPrime, offsetHash, skipHash, type MaglevBackend } from './maglev.js';
import { TendrilError } from './errors.js';

const backends = (n: number, from = 1): MaglevBackend[] =>
  Array.from({ length: n }, (_, i) => ({ id: from + i, key: `10.200.1.${from + i}:8080/TCP` }));

function slotCounts(table: Uint32Array): Map<number, number> {
  const counts = new Map<number, number>();
  for (const id of table) counts.set(id, (counts.get(id) ?? 0) + 1);
  return counts;
}

const bytes = (s: string) => new TextEncoder().encode(s);

test('isPrime knows small primes, composites and non-integers', () => {
  assert.deepEqual([...Array(20).keys()].filter(isPrime), [2, 3, 5, 7, 11, 13, 17, 19]);
  assert.ok(isPrime(1021) && isPrime(16381) && isPrime(65537));
  assert.ok(!isPrime(16383) && !isPrime(1) && !isPrime(0) && !isPrime(-7) && !isPrime(7.5));
});

test('skipHash is murmur3 x86_32 (published test vectors)', () => {
  assert.equal(skipHash(bytes(''), 0), 0);
  assert.equal(skipHash(bytes(''), 1), 0x514e28b7);
  assert.equal(skipHash(bytes('Hello, world!'), 1234), 0xfaf6cdb3);
  assert.equal(skipHash(bytes('The quick brown fox jumps over the lazy dog'), 0), 0x2e4ff723);
});

test('offsetHash and skipHash disagree on near-identical keys', () => {
  const a = bytes('10.200.1.5:8080/TCP');
  const b = bytes('10.200.1.6:8080/TCP');
  assert.notEqual(offsetHash(a), offsetHash(b));
  assert.notEqual(skipHash(a), skipHash(b));
  assert.notEqual(offsetHash(a), skipHash(a));
});

test('buildMaglevTable fills every slot, each backend within one slot of M/N', () => {
  // Round-robin filling makes slot counts differ by at most one; so the
  // shares are within 0.1% of M/N at M=16381 and 1% at M=1021 for 3 and 10
  // backends, well inside the 5% and 10% this test demands.
  for (const [size, tolerance] of [[16381, 0.05], [1021, 0.1]] as const) {
    for (const n of [3, 10]) {
      const counts = slotCounts(buildMaglevTable(backends(n), size));
      assert.equal(counts.has(0), false, 'no empty slot');
      assert.equal(counts.size, n);
      const values = [...counts.values()];
      assert.ok(Math.max(...values) - Math.min(...values) <= 1, `M=${size} N=${n}: ${values}`);
      for (const v of values) assert.ok(Math.abs(v - size / n) <= tolerance * (size / n), `M=${size} N=${n}: ${v} slots`);
    }
  }
});

test('buildMaglevTable is deterministic and independent of backend order', () => {
  const a = buildMaglevTable(backends(10), 16381);
  assert.deepEqual(buildMaglevTable(backends(10), 16381), a);
  assert.deepEqual(buildMaglevTable(backends(10).reverse(), 16381), a);
});

test('removing a backend moves its own slots and under 2% of the others', () => {
  const size = 16381;
  for (const n of [3, 10, 100]) {
    const before = buildMaglevTable(backends(n), size);
    for (let removed = 1; removed <= n; removed++) {
      const after = buildMaglevTable(backends(n).filter((b) => b.id !== removed), size);
      let movedOthers = 0;
      for (let i = 0; i < size; i++) {
        if (before[i] === removed) assert.notEqual(after[i], removed);
        else if (after[i] !== before[i]) movedOthers++;
      }
      // Measured worst case over every removal: 21 (N=3), 118 (N=10), 240 (N=100) of 16381.
      assert.ok(movedOthers < 0.02 * size, `N=${n}, removing ${removed}: ${movedOthers} other slots moved`);
    }
  }
});

test('adding a backend gives it about M/(N+1) slots and moves few others', () => {
  const size = 16381;
  for (const n of [3, 10, 100]) {
    const before = buildMaglevTable(backends(n), size);
    const after = buildMaglevTable(backends(n + 1), size);
    let toNew = 0;
    let betweenOld = 0;
    for (let i = 0; i < size; i++) {
      if (after[i] === n + 1) toNew++;
      else if (after[i] !== before[i]) betweenOld++;
    }
    assert.ok(Math.abs(toNew - size / (n + 1)) <= 1, `N=${n}: new backend owns ${toNew}`);
    assert.ok(betweenOld < 0.02 * size, `N=${n}: ${betweenOld} slots moved between old backends`);
  }
});

test('a backend keeps its permutation whatever its id or position', () => {
  // Same keys, other ids: the same slots belong to the same key.
  const a = buildMaglevTable(backends(5), 1021);
  const renumbered = backends(5).map((b) => ({ ...b, id: b.id + 100 }));
  const b = buildMaglevTable(renumbered, 1021);
  for (let i = 0; i < 1021; i++) assert.equal(b[i], a[i]! + 100);
});

test('no backends: every slot is 0', () => {
  const t = buildMaglevTable([], 1021);
  assert.equal(t.length, 1021);
  assert.ok(t.every((x) => x === 0));
});

test('buildMaglevTable rejects a bad size or bad backends, naming the value', () => {
  const rejects = (fn: () => unknown, pattern: RegExp) =>
    assert.throws(fn, (e: unknown) => e instanceof TendrilError && e.code === 'invalid-argument' && pattern.test(e.message));
  rejects(() => buildMaglevTable(backends(3), 16383), /size 16383 is not a prime/);
  rejects(() => buildMaglevTable(backends(3), 0), /size 0 is not a prime/);
  rejects(() => buildMaglevTable(backends(6), 11), /size 11 is too small for 6 backends: .*\(at most 5 backends\)/);
  assert.equal(buildMaglevTable(backends(5), 11).length, 11);
  rejects(() => buildMaglevTable([{ id: 0, key: 'a' }], 7), /backend id 0 \("a"\)/);
  rejects(() => buildMaglevTable([{ id: 1, key: 'a' }, { id: 1, key: 'b' }], 7), /id 1 appears twice/);
  rejects(() => buildMaglevTable([{ id: 1, key: 'a' }, { id: 2, key: 'a' }], 7), /key "a" appears twice/);
});
