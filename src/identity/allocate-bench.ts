/**
 * Benchmark helper for bench/run.ts: allocates `count` distinct label sets at
 * once on a fresh in-process kvstore, then releases them. Its baseline is the
 * floor of the work: one atomic write of the same final kvstore contents.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryKvstore } from '../kvstore/memory.js';
import { StateFile } from '../node/state-file.js';
import { IdentityAllocator } from './allocator.js';

export interface AllocationFigures {
  /** Wall time of `count` concurrent allocate() calls. */
  allocateMs: number;
  /** Wall time of releasing them all concurrently. */
  releaseMs: number;
  /** File writes the allocations cost (coalescing). */
  writes: number;
  /** One atomic write of the resulting kvstore file. */
  baselineMs: number;
}

export async function measureAllocations(count: number): Promise<AllocationFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'tendril-bench-id-'));
  try {
    const kv = await MemoryKvstore.open(dir);
    const ids = await IdentityAllocator.open(kv, 'bench');
    let started = performance.now();
    const all = await Promise.all(Array.from({ length: count }, (_, i) => ids.allocate({ app: `app${i}`, tier: 'bench' })));
    const allocateMs = performance.now() - started;
    const writes = kv.writeCount;

    const contents = Object.fromEntries(await kv.list(''));
    const file = new StateFile<unknown>(dir, 'baseline.json');
    started = performance.now();
    file.write({ version: 1, entries: contents });
    const baselineMs = performance.now() - started;

    started = performance.now();
    await Promise.all(all.map((i) => ids.release(i.id)));
    const releaseMs = performance.now() - started;
    ids.close();
    await kv.close();
    return { allocateMs, releaseMs, writes, baselineMs };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
