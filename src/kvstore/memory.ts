/**
 * The in-process Kvstore: the whole store in memory, persisted as one JSON
 * file in the agent's state directory (atomic write, see StateFile).
 *
 * Writes are coalesced: a change is applied in memory at once (so calls take
 * effect in call order), and every call made in the same turn of the event
 * loop shares one file write at the next turn. A call resolves, and watchers
 * hear of its change, only after that write: 10,000 concurrent allocations
 * cost a few writes, and nobody ever observes a value that is not on disk
 * (a read waits for pending writes too). A failed write leaves memory ahead
 * of the disk, so the store fails every later call: restart from the file.
 */
import { TendrilError } from '../common/errors.js';
import { StateFile } from '../node/state-file.js';
import { type KvEvent, type Kvstore, type PutOptions, type Subscription, subscription } from './kvstore.js';

interface KvFile {
  version: 1;
  entries: Record<string, string>;
}

interface Entry {
  value: string;
  ephemeral: boolean;
}

interface Watcher {
  prefix: string;
  listener: (event: KvEvent) => void;
}

/** Changes waiting for the next write, and the calls waiting on it. */
interface Batch {
  events: KvEvent[];
  persist: boolean;
  waiters: Array<{ resolve: () => void; reject: (err: unknown) => void }>;
}

export class MemoryKvstore implements Kvstore {
  private readonly data = new Map<string, Entry>();
  /** Directory prefix ("a/b/", and "" for all) -> keys under it, so list(prefix) costs what it returns. */
  private readonly dirs = new Map<string, Set<string>>();
  private readonly watchers = new Set<Watcher>();
  private batch: Batch | undefined;
  private timer: NodeJS.Immediate | undefined;
  private failure: Error | undefined;
  private closed = false;
  private writes = 0;

  private constructor(private readonly file: StateFile<KvFile>) {}

  /** Opens the store kept in `dir/name`, restoring what it holds; a missing file is an empty store. */
  static async open(dir: string, name = 'kvstore.json'): Promise<MemoryKvstore> {
    const file = new StateFile<KvFile>(dir, name);
    const store = new MemoryKvstore(file);
    const saved = file.read();
    if (saved !== undefined) {
      const entries = (saved as Partial<KvFile> | null)?.entries;
      if (saved?.version !== 1 || typeof entries !== 'object' || entries === null)
        throw new TendrilError('precondition', `kvstore file ${file.path} is not a version 1 kvstore: move it away to start from scratch`);
      for (const [key, value] of Object.entries(entries)) {
        if (typeof value !== 'string')
          throw new TendrilError('precondition', `kvstore file ${file.path} holds a non-string value at "${key}": move it away to start from scratch`);
        store.set(key, { value, ephemeral: false });
      }
    }
    return store;
  }

  /** How many times the file has been written (coalescing is visible here). */
  get writeCount(): number {
    return this.writes;
  }

  get(key: string): Promise<string | undefined> {
    return this.settle(() => this.data.get(key)?.value);
  }

  list(prefix: string): Promise<Map<string, string>> {
    return this.settle(() => {
      const slash = prefix.lastIndexOf('/');
      const dir = this.dirs.get(prefix.slice(0, slash + 1));
      const out = new Map<string, string>();
      if (!dir) return out;
      const keys = slash === prefix.length - 1 ? [...dir] : [...dir].filter((k) => k.startsWith(prefix));
      for (const key of keys.sort()) out.set(key, this.data.get(key)!.value);
      return out;
    });
  }

  put(key: string, value: string, options?: PutOptions): Promise<void> {
    return this.settle(() => this.write(key, value, options?.ephemeral ?? false));
  }

  createIfAbsent(key: string, value: string, options?: PutOptions): Promise<boolean> {
    return this.settle(() => {
      if (this.data.has(key)) return false;
      this.write(key, value, options?.ephemeral ?? false);
      return true;
    });
  }

  delete(key: string): Promise<boolean> {
    return this.settle(() => this.remove(key));
  }

  compareAndDelete(key: string, expected: string): Promise<boolean> {
    return this.settle(() => this.data.get(key)?.value === expected && this.remove(key));
  }

  watch(prefix: string, listener: (event: KvEvent) => void): Subscription {
    if (this.closed) throw closedError();
    const watcher = { prefix, listener };
    this.watchers.add(watcher);
    return subscription(() => this.watchers.delete(watcher));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    if (this.timer) clearImmediate(this.timer);
    const pending = this.batch ? this.flush() : undefined;
    this.closed = true;
    this.watchers.clear();
    if (pending) throw pending;
  }

  /** Runs `op` now; its result is handed out once every change made so far is on disk. */
  private settle<T>(op: () => T): Promise<T> {
    if (this.closed) return Promise.reject(closedError());
    if (this.failure) return Promise.reject(this.failure);
    let result: T;
    try {
      result = op();
    } catch (err) {
      return Promise.reject(err);
    }
    const batch = this.batch;
    if (!batch) return Promise.resolve(result);
    return new Promise<T>((resolve, reject) => batch.waiters.push({ resolve: () => resolve(result), reject }));
  }

  private write(key: string, value: string, ephemeral: boolean): void {
    const old = this.data.get(key);
    this.set(key, { value, ephemeral });
    this.changed({ type: 'put', key, value }, !ephemeral || (old !== undefined && !old.ephemeral));
  }

  private remove(key: string): boolean {
    const old = this.data.get(key);
    if (!old) return false;
    this.data.delete(key);
    for (const dir of dirsOf(key)) {
      const keys = this.dirs.get(dir)!;
      keys.delete(key);
      if (keys.size === 0) this.dirs.delete(dir);
    }
    this.changed({ type: 'delete', key }, !old.ephemeral);
    return true;
  }

  private set(key: string, entry: Entry): void {
    if (!this.data.has(key))
      for (const dir of dirsOf(key)) {
        let keys = this.dirs.get(dir);
        if (!keys) this.dirs.set(dir, (keys = new Set()));
        keys.add(key);
      }
    this.data.set(key, entry);
  }

  private changed(event: KvEvent, persist: boolean): void {
    if (!this.batch) {
      this.batch = { events: [], persist: false, waiters: [] };
      this.timer = setImmediate(() => {
        this.timer = undefined;
        this.flush();
      });
    }
    this.batch.events.push(event);
    this.batch.persist ||= persist;
  }

  /** Writes the batch (if it changed anything durable), tells watchers, then releases the callers. Returns the write's error. */
  private flush(): Error | undefined {
    const batch = this.batch!;
    this.batch = undefined;
    if (batch.persist) {
      try {
        this.file.write({ version: 1, entries: this.snapshot() });
        this.writes++;
      } catch (err) {
        this.failure = new TendrilError(
          'unavailable',
          `kvstore could not write ${this.file.path} (${(err as Error).message}): fix the state directory and restart the agent`,
        );
        for (const w of batch.waiters) w.reject(this.failure);
        return this.failure;
      }
    }
    for (const event of batch.events) this.notify(event);
    for (const w of batch.waiters) w.resolve();
    return undefined;
  }

  private notify(event: KvEvent): void {
    for (const watcher of [...this.watchers]) {
      if (!event.key.startsWith(watcher.prefix) || !this.watchers.has(watcher)) continue;
      try {
        watcher.listener(event);
      } catch (err) {
        // One faulty listener must not keep the others, or the callers, from hearing of the change.
        process.emitWarning(`kvstore watch listener for "${watcher.prefix}" failed: ${(err as Error).message}`);
      }
    }
  }

  private snapshot(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const key of [...this.data.keys()].sort()) {
      const entry = this.data.get(key)!;
      if (!entry.ephemeral) out[key] = entry.value;
    }
    return out;
  }
}

/** Every directory prefix a key lies under: "", "a/", "a/b/" for "a/b/c". */
function dirsOf(key: string): string[] {
  const out = [''];
  for (let i = key.indexOf('/'); i >= 0; i = key.indexOf('/', i + 1)) out.push(key.slice(0, i + 1));
  return out;
}

function closedError(): TendrilError {
  return new TendrilError('unavailable', 'the kvstore is closed');
}
