/**
 * BpfMap: one kernel map by fd. Maps of a BpfObject belong to it (close() is a
 * no-op on them); maps opened from a pin or an id, or created standalone, own
 * their fd.
 */
import { closeFd } from '../sys/index.js';
import { bpf } from './libbpf.js';
import { BpfError, check, ENOENT } from './errors.js';
import { mapInfo } from './info.js';

export const MapType = {
  HASH: 1, ARRAY: 2, PROG_ARRAY: 3, PERF_EVENT_ARRAY: 4, PERCPU_HASH: 5, PERCPU_ARRAY: 6,
  LRU_HASH: 9, LRU_PERCPU_HASH: 10, LPM_TRIE: 11, ARRAY_OF_MAPS: 12, HASH_OF_MAPS: 13,
  PERCPU_CGROUP_STORAGE: 21, QUEUE: 22, STACK: 23, RINGBUF: 27, BLOOM_FILTER: 30, USER_RINGBUF: 31,
} as const;

/** Map creation flags (BPF_F_*) this project uses. */
export const MapFlag = { NO_PREALLOC: 1 << 0, RDONLY_PROG: 1 << 7, INNER_MAP: 1 << 12 } as const;

export interface MapCreateOptions {
  type: number;
  /** The kernel's name of the map: up to 15 characters of [A-Za-z0-9_.]. */
  name?: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** BPF_F_* flags (MapFlag); an LPM trie needs NO_PREALLOC. */
  flags?: number;
  /** Maps of maps: a map like the inner maps it will hold (the kernel's template for them). */
  innerMap?: BpfMap;
}

const MAP_NAME = /^[A-Za-z0-9_.]{0,15}$/;
const MAP_CREATE_OPTS_SIZE = 48; // sizeof(struct bpf_map_create_opts) in libbpf 1.1
const MAPS_OF_MAPS = new Set<number>([MapType.ARRAY_OF_MAPS, MapType.HASH_OF_MAPS]);

const PER_CPU = new Set<number>([MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_PERCPU_HASH, MapType.PERCPU_CGROUP_STORAGE]);
// Maps without keys to walk: reading them is a different API (ring buffer reader, pop).
const NOT_ITERABLE = new Set<number>([MapType.RINGBUF, MapType.USER_RINGBUF, MapType.QUEUE, MapType.STACK, MapType.BLOOM_FILTER]);

const UPDATE_FLAGS = { any: 0, noexist: 1, exist: 2 } as const;
export type UpdateFlag = keyof typeof UPDATE_FLAGS;

const EINVAL = 22;
const ENOSPC = 28;
const EOPNOTSUPP = 95;
const ENOTSUPP = 524; // kernel-internal "not supported", leaks out of bpf()
const MAX_RESTARTS = 16;

let possibleCpus = 0;
function numPossibleCpus(): number {
  if (possibleCpus === 0) possibleCpus = check(bpf.numPossibleCpus() as number, () => 'Cannot count possible CPUs');
  return possibleCpus;
}

export class BpfMap {
  readonly name: string;
  readonly type: number;
  readonly keySize: number;
  /** Size of one value; per-CPU maps read and write `valueBufferSize` bytes (one 8-aligned slot per CPU). */
  readonly valueSize: number;
  readonly maxEntries: number;
  readonly id: number;
  private _fd: number;

  /** Use BpfObject.map() or BpfMap.openPinned(); `owned` says whether close() closes the fd. */
  constructor(fd: number, private readonly owned: boolean, name?: string) {
    this._fd = fd;
    const info = mapInfo(fd);
    this.name = name ?? info.name;
    this.type = info.type;
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.maxEntries = info.maxEntries;
    this.id = info.id;
  }

  get fd(): number {
    if (this._fd < 0) throw new BpfError(`Map "${this.name}" is closed`, 9 /* EBADF */);
    return this._fd;
  }

  /** Bytes of a value as user space sees it (all CPUs' copies for per-CPU maps). */
  get valueBufferSize(): number {
    return PER_CPU.has(this.type) ? Math.ceil(this.valueSize / 8) * 8 * numPossibleCpus() : this.valueSize;
  }

  /**
   * A new map of its own, in no object (bpf_map_create): the inner maps of a
   * map of maps, built whole before they are swapped in. close() frees it
   * unless a map of maps or a pin holds it too.
   */
  static create(o: MapCreateOptions): BpfMap {
    const name = o.name ?? '';
    if (!MAP_NAME.test(name)) throw new BpfError(`Cannot create map "${name}": a map name has at most 15 characters of [A-Za-z0-9_.]`, EINVAL);
    // struct bpf_map_create_opts: sz@0 btf_fd@8 btf_key_type_id@12 btf_value_type_id@16
    // btf_vmlinux_value_type_id@20 inner_map_fd@24 map_flags@28 map_extra@32 numa_node@40 map_ifindex@44.
    const opts = Buffer.alloc(MAP_CREATE_OPTS_SIZE);
    opts.writeBigUInt64LE(BigInt(MAP_CREATE_OPTS_SIZE), 0);
    if (o.innerMap) opts.writeUInt32LE(o.innerMap.fd, 24);
    opts.writeUInt32LE(o.flags ?? 0, 28);
    const fd = bpf.mapCreate(o.type, name || null, o.keySize, o.valueSize, o.maxEntries, opts) as number;
    if (fd < 0)
      throw new BpfError(
        `Cannot create map "${name}" (type ${o.type}, key ${o.keySize} B, value ${o.valueSize} B, ${o.maxEntries} entries, flags 0x${(o.flags ?? 0).toString(16)})`,
        -fd,
      );
    try {
      return new BpfMap(fd, true, name || undefined);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  /** Opens a map by its kernel id (as a map of maps reports its inner maps). */
  static openById(id: number): BpfMap {
    const fd = bpf.mapGetFdById(id) as number;
    if (fd < 0) throw new BpfError(`Cannot open map id ${id}`, -fd);
    try {
      return new BpfMap(fd, true);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  static openPinned(path: string): BpfMap {
    const fd = bpf.objGet(path) as number;
    if (fd < 0) throw new BpfError(`Cannot open pinned map "${path}"`, -fd);
    try {
      return new BpfMap(fd, true);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  lookup(key: Buffer): Buffer | undefined {
    this.checkKey(key);
    const value = Buffer.alloc(this.valueBufferSize);
    const ret = bpf.mapLookupElem(this.fd, key, value) as number;
    if (ret === -ENOENT) return undefined;
    check(ret, () => `Cannot look up a key in map "${this.name}"`);
    return value;
  }

  /**
   * lookup() into the caller's buffer, for hot paths that look up often:
   * no allocation, no copy. True when the key was there (then `value` holds
   * its value); sizes are the caller's to get right (checked).
   */
  lookupInto(key: Buffer, value: Buffer): boolean {
    this.checkKey(key);
    if (value.length < this.valueBufferSize) throw new RangeError(`value buffer of ${value.length} bytes for map "${this.name}", which needs ${this.valueBufferSize}`);
    const ret = bpf.mapLookupElem(this.fd, key, value) as number;
    if (ret === -ENOENT) return false;
    check(ret, () => `Cannot look up a key in map "${this.name}"`);
    return true;
  }

  update(key: Buffer, value: Buffer, flag: UpdateFlag = 'any'): void {
    this.checkKey(key);
    this.checkValue(value);
    check(bpf.mapUpdateElem(this.fd, key, value, UPDATE_FLAGS[flag]) as number, () => `Cannot update map "${this.name}" (flag ${flag})`);
  }

  /**
   * update() on a worker thread, for updates that block in the kernel: every
   * update of a map of maps waits for an RCU grace period (so that no program
   * still uses the value it replaced), several ms each.
   */
  updateAsync(key: Buffer, value: Buffer, flag: UpdateFlag = 'any'): Promise<void> {
    this.checkKey(key);
    this.checkValue(value);
    const fd = this.fd;
    return new Promise((resolve, reject) => {
      bpf.mapUpdateElem.async(fd, key, value, UPDATE_FLAGS[flag], (err: unknown, ret: number) => {
        keepAlive(key, value);
        if (err) reject(err as Error);
        else if (ret < 0) reject(new BpfError(`Cannot update map "${this.name}" (flag ${flag})`, -ret));
        else resolve();
      });
    });
  }

  /** delete() on a worker thread (see updateAsync()); true when the key was there. */
  deleteAsync(key: Buffer): Promise<boolean> {
    this.checkKey(key);
    const fd = this.fd;
    return new Promise((resolve, reject) => {
      bpf.mapDeleteElem.async(fd, key, (err: unknown, ret: number) => {
        keepAlive(key);
        if (err) reject(err as Error);
        else if (ret === -ENOENT) resolve(false);
        else if (ret < 0) reject(new BpfError(`Cannot delete a key from map "${this.name}"`, -ret));
        else resolve(true);
      });
    });
  }

  /**
   * Maps of maps: puts `inner` at `key` in one update, replacing what was
   * there (packets see the old map or the new one, never a mix). The outer
   * map holds its own reference: the caller may close `inner` afterwards.
   * Blocks for an RCU grace period in the kernel; see setInnerAsync().
   */
  setInner(key: Buffer, inner: BpfMap, flag: UpdateFlag = 'any'): void {
    this.update(key, this.innerValue(inner), flag);
  }

  /** setInner() on a worker thread; keep `inner` open until it settles. */
  setInnerAsync(key: Buffer, inner: BpfMap, flag: UpdateFlag = 'any'): Promise<void> {
    return this.updateAsync(key, this.innerValue(inner), flag);
  }

  /**
   * setInner() for many keys in one batch update on a worker thread: one
   * grace period for all of them, waited for off the event loop. Keep the
   * inner maps open until it settles.
   */
  setInnerBatchAsync(pairs: Array<[Buffer, BpfMap]>): Promise<void> {
    if (pairs.length === 0) return Promise.resolve();
    const values = pairs.map(([, inner]) => this.innerValue(inner));
    for (const [key] of pairs) this.checkKey(key);
    const keys = Buffer.concat(pairs.map(([key]) => key));
    const count = [pairs.length];
    const fd = this.fd;
    const valueBytes = Buffer.concat(values);
    const opts = batchOpts(UPDATE_FLAGS.any);
    return new Promise((resolve, reject) => {
      bpf.mapUpdateBatch.async(fd, keys, valueBytes, count, opts, (err: unknown, ret: number) => {
        keepAlive(keys, valueBytes, opts, count);
        if (err) reject(err as Error);
        else if (ret < 0) reject(new BpfError(`Cannot batch-update map "${this.name}" (${count[0]} of ${pairs.length} entries written)`, -ret));
        else resolve();
      });
    });
  }

  private innerValue(inner: BpfMap): Buffer {
    this.checkMapOfMaps();
    const fd = Buffer.alloc(4);
    fd.writeUInt32LE(inner.fd);
    return fd;
  }

  /** Maps of maps: the kernel id of the inner map at `key`, or undefined. */
  innerId(key: Buffer): number | undefined {
    this.checkMapOfMaps();
    return this.lookup(key)?.readUInt32LE(0);
  }

  /** Maps of maps: the inner map at `key`, opened by id (the caller closes it), or undefined. */
  openInner(key: Buffer): BpfMap | undefined {
    const id = this.innerId(key);
    if (id === undefined) return undefined;
    try {
      return BpfMap.openById(id);
    } catch (err) {
      // Replaced and freed between the lookup and the open: as if absent now.
      if (err instanceof BpfError && err.errno === ENOENT) return undefined;
      throw err;
    }
  }

  /** True when the key was there. */
  delete(key: Buffer): boolean {
    this.checkKey(key);
    const ret = bpf.mapDeleteElem(this.fd, key) as number;
    if (ret === -ENOENT) return false;
    check(ret, () => `Cannot delete a key from map "${this.name}"`);
    return true;
  }

  /**
   * Walks the keys with get_next_key. A hash map restarts from its first key when
   * the previous key was deleted meanwhile; keys already seen are then skipped.
   */
  *keys(): IterableIterator<Buffer> {
    this.checkIterable();
    const seen = new Set<string>();
    let prev: Buffer | null = null;
    let restarts = 0;
    for (;;) {
      const next = Buffer.alloc(this.keySize);
      const ret = bpf.mapGetNextKey(this.fd, prev, next) as number;
      if (ret === -ENOENT) return;
      check(ret, () => `Cannot iterate map "${this.name}"`);
      const id = next.toString('hex');
      if (seen.has(id)) {
        if (++restarts > MAX_RESTARTS) return; // keys are being deleted faster than we walk
      } else {
        seen.add(id);
        yield next;
      }
      prev = next;
    }
  }

  /** Keys with their values; an entry deleted between the two steps is skipped. */
  *entries(): IterableIterator<[Buffer, Buffer]> {
    for (const key of this.keys()) {
      const value = this.lookup(key);
      if (value !== undefined) yield [key, value];
    }
  }

  /** The whole map in batches of the kernel's choosing; falls back to entries() where batch ops are missing. */
  lookupBatch(): Array<[Buffer, Buffer]> {
    this.checkIterable();
    const out: Array<[Buffer, Buffer]> = [];
    const vsize = this.valueBufferSize;
    let chunk = Math.max(1, Math.min(this.maxEntries, 4096));
    const tokenSize = Math.max(this.keySize, 8);
    let inBatch: Buffer | null = null;
    for (;;) {
      const keys = Buffer.alloc(this.keySize * chunk);
      const values = Buffer.alloc(vsize * chunk);
      const outBatch = Buffer.alloc(tokenSize);
      const count = [chunk];
      const ret = bpf.mapLookupBatch(this.fd, inBatch, outBatch, keys, values, count, null) as number;
      if (ret < 0 && ret !== -ENOENT) {
        if (out.length === 0 && inBatch === null && [EINVAL, EOPNOTSUPP, ENOTSUPP].includes(-ret)) return [...this.entries()];
        if (ret === -ENOSPC && chunk < this.maxEntries * 2) {
          chunk *= 2; // a hash bucket held more entries than the chunk: retry the same batch bigger
          continue;
        }
        check(ret, () => `Cannot batch-read map "${this.name}"`);
      }
      for (let i = 0; i < count[0]; i++) {
        out.push([
          Buffer.from(keys.subarray(i * this.keySize, (i + 1) * this.keySize)),
          Buffer.from(values.subarray(i * vsize, (i + 1) * vsize)),
        ]);
      }
      if (ret === -ENOENT) return out;
      inBatch = outBatch;
    }
  }

  updateBatch(entries: Array<[Buffer, Buffer]>, flag: UpdateFlag = 'any'): void {
    if (entries.length === 0) return;
    for (const [k, v] of entries) {
      this.checkKey(k);
      this.checkValue(v);
    }
    const keys = Buffer.concat(entries.map(([k]) => k));
    const values = Buffer.concat(entries.map(([, v]) => v));
    const opts = batchOpts(UPDATE_FLAGS[flag]);
    const count = [entries.length];
    const ret = bpf.mapUpdateBatch(this.fd, keys, values, count, opts) as number;
    if (ret < 0 && [EINVAL, EOPNOTSUPP, ENOTSUPP].includes(-ret) && count[0] === 0 && !this.supportsBatch()) {
      for (const [k, v] of entries) this.update(k, v, flag);
      return;
    }
    check(ret, () => `Cannot batch-update map "${this.name}" (${count[0]} of ${entries.length} entries written)`);
  }

  /** Deletes every key; missing keys are an error from the kernel (ENOENT), as with delete() returning false. */
  deleteBatch(keys: Buffer[]): void {
    if (keys.length === 0) return;
    for (const k of keys) this.checkKey(k);
    const count = [keys.length];
    const ret = bpf.mapDeleteBatch(this.fd, Buffer.concat(keys), count, batchOpts(0)) as number;
    if (ret < 0 && [EINVAL, EOPNOTSUPP, ENOTSUPP].includes(-ret) && count[0] === 0 && !this.supportsBatch()) {
      for (const k of keys) this.delete(k);
      return;
    }
    check(ret, () => `Cannot batch-delete from map "${this.name}" (${count[0]} of ${keys.length} keys deleted)`);
  }

  pin(path: string): void {
    check(bpf.objPin(this.fd, path) as number, () => `Cannot pin map "${this.name}" at "${path}"`);
  }

  close(): void {
    if (this.owned && this._fd >= 0) closeFd(this._fd);
    if (this.owned) this._fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Called by the owning BpfObject when it closes: the fd is no longer ours to use. */
  invalidate(): void {
    this._fd = -1;
  }

  private supportsBatch(): boolean {
    // Hash-like and array maps have batch ops (kernel >= 5.6); others fall back per element.
    return [MapType.HASH, MapType.ARRAY, MapType.PERCPU_HASH, MapType.PERCPU_ARRAY, MapType.LRU_HASH, MapType.LRU_PERCPU_HASH].includes(
      this.type as 1,
    );
  }

  private checkMapOfMaps(): void {
    if (!MAPS_OF_MAPS.has(this.type)) throw new BpfError(`Map "${this.name}" (type ${this.type}) is not a map of maps`, EINVAL);
  }

  private checkIterable(): void {
    if (NOT_ITERABLE.has(this.type))
      throw new BpfError(`Map "${this.name}" (type ${this.type}) has no keys to iterate; read a ring buffer with RingBufferReader`, EINVAL);
  }

  private checkKey(key: Buffer): void {
    if (key.length !== this.keySize)
      throw new BpfError(`Key for map "${this.name}" is ${key.length} bytes, expected ${this.keySize}`, EINVAL);
  }

  private checkValue(value: Buffer): void {
    if (value.length !== this.valueBufferSize)
      throw new BpfError(`Value for map "${this.name}" is ${value.length} bytes, expected ${this.valueBufferSize}`, EINVAL);
  }
}

/** struct bpf_map_batch_opts { size_t sz; __u64 elem_flags; __u64 flags; } */
/**
 * The kernel reads an async call's buffers on a worker thread, after the
 * call returned to JavaScript: the callback names them so that they stay
 * reachable (not collected) until the call is over.
 */
function keepAlive(...values: unknown[]): void {
  void values;
}

function batchOpts(elemFlags: number): Buffer {
  const b = Buffer.alloc(24);
  b.writeBigUInt64LE(24n, 0);
  b.writeBigUInt64LE(BigInt(elemFlags), 8);
  return b;
}

