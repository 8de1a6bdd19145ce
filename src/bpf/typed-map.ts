/** TypedMap: a BpfMap seen through codecs, so callers handle objects, not bytes. */
import type { Codec } from './codec.js';
import type { BpfMap, UpdateFlag } from './map.js';

export class TypedMap<K, V> {
  constructor(
    readonly map: BpfMap,
    readonly key: Codec<K>,
    readonly value: Codec<V>,
  ) {
    if (key.size !== map.keySize) throw new RangeError(`Key codec of map "${map.name}" is ${key.size} bytes, the map's keys ${map.keySize}`);
    if (value.size !== map.valueBufferSize)
      throw new RangeError(`Value codec of map "${map.name}" is ${value.size} bytes, the map's values ${map.valueBufferSize}`);
  }

  lookup(k: K): V | undefined {
    const v = this.map.lookup(this.key.encode(k));
    return v === undefined ? undefined : this.value.decode(v);
  }

  update(k: K, v: V, flag: UpdateFlag = 'any'): void {
    this.map.update(this.key.encode(k), this.value.encode(v), flag);
  }

  delete(k: K): boolean {
    return this.map.delete(this.key.encode(k));
  }

  *entries(): IterableIterator<[K, V]> {
    for (const [k, v] of this.map.entries()) yield [this.key.decode(k), this.value.decode(v)];
  }

  /** The whole map at once (batch lookup where the map type has it). */
  lookupBatch(): Array<[K, V]> {
    return this.map.lookupBatch().map(([k, v]) => [this.key.decode(k), this.value.decode(v)]);
  }

  updateBatch(entries: Array<[K, V]>, flag: UpdateFlag = 'any'): void {
    this.map.updateBatch(entries.map(([k, v]) => [this.key.encode(k), this.value.encode(v)]), flag);
  }

  deleteBatch(keys: K[]): void {
    this.map.deleteBatch(keys.map((k) => this.key.encode(k)));
  }
}
