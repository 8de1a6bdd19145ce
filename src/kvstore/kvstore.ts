/**
 * The key-value store the agent shares state through. Two backends are meant
 * to implement it: in-process (memory.ts, one node, persisted in the state
 * dir) and etcd (a cluster). The operations are the ones etcd offers cheaply,
 * so the etcd backend is a thin mapping:
 *   get/list          range requests (list = prefix range)
 *   put               put; `ephemeral` attaches the key to the client's lease
 *   createIfAbsent    txn: compare create_revision(key) == 0, then put
 *   compareAndDelete  txn: compare value(key) == expected, then delete
 *   watch             a prefix watch
 * Every result is durable: a mutating call resolves once its change is
 * committed (on disk), and a read never returns a value that is not.
 */

/** One change to a watched key. `value` is set for 'put'. */
export interface KvEvent {
  type: 'put' | 'delete';
  key: string;
  value?: string;
}

export interface PutOptions {
  /**
   * The key lives only as long as this client: in etcd it is attached to the
   * client's lease (kept alive while the agent runs, expired when it dies);
   * in-process it is never written to disk, so a restart drops it.
   */
  ephemeral?: boolean;
}

/** A registration that ends when disposed (a watch, a listener). */
export interface Subscription extends Disposable {
  dispose(): void;
}

export interface Kvstore {
  get(key: string): Promise<string | undefined>;
  /** Every key that starts with `prefix`, sorted by key. */
  list(prefix: string): Promise<Map<string, string>>;
  put(key: string, value: string, options?: PutOptions): Promise<void>;
  /** Creates the key unless it exists; false when it existed (the value is left alone). */
  createIfAbsent(key: string, value: string, options?: PutOptions): Promise<boolean>;
  /** Deletes the key; false when it did not exist. */
  delete(key: string): Promise<boolean>;
  /** Deletes the key only while it holds `expected`; false otherwise. */
  compareAndDelete(key: string, expected: string): Promise<boolean>;
  /**
   * Calls `listener` for every committed change under `prefix`, in commit
   * order, from now on. To see existing keys too, watch first and then list:
   * events that the list already reflects may arrive again, so apply them
   * idempotently (the last event for a key is its current state).
   */
  watch(prefix: string, listener: (event: KvEvent) => void): Subscription;
  /** Waits for pending changes to commit, ends every watch; later calls fail. */
  close(): Promise<void>;
}

/** A Subscription that runs `fn` once, however often it is disposed. */
export function subscription(fn: () => void): Subscription {
  let done = false;
  const dispose = () => {
    if (done) return;
    done = true;
    fn();
  };
  return { dispose, [Symbol.dispose]: dispose };
}
