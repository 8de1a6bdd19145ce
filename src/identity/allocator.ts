/**
 * Endpoint identities, allocated cluster-wide through the kvstore: one
 * identity per distinct label set, shared by every endpoint that has it.
 *
 * Keys (under tendril/identities/):
 *   id/<n>             -> labelKey   the identity; created first, so an id is never handed out twice
 *   labels/<labelKey>  -> <n>        the index by label set; created last, so whoever creates it wins
 *   refs/<n>/<node>    -> "1"        node <node> has users of <n>; how many is its own business
 * Allocating new labels creates id/<n> for a free candidate n, then this
 * node's ref, then labels/<key>; if another node created labels/<key> first,
 * the candidate is given back and that node's identity is used. Releasing
 * the node's last user deletes its ref, and the identity when no node's ref
 * is left.
 *
 * Calls for the same label set run one at a time on this node; calls for
 * different sets run concurrently, so their kvstore writes coalesce.
 * Between nodes one race is left open until the etcd backend can close it
 * with a transaction: a node that takes a ref on an identity in the very
 * moment another node frees it may hold an id that is gone.
 *
 * Restart: the node's refs survive in the kvstore. After opening, allocate
 * again for every endpoint restored (the same label set gets the same id
 * and takes over the old ref without a write), then call finishRestore() to
 * release what no restored endpoint claimed.
 */
import { ENDPOINT_IDENTITY_MAX, ENDPOINT_IDENTITY_MIN, isEndpointIdentity } from '../common/identity.js';
import { TendrilError, invalid, notFound } from '../common/errors.js';
import type { Labels } from '../common/labels.js';
import type { KvEvent, Kvstore, Subscription } from '../kvstore/kvstore.js';
import { subscription } from '../kvstore/kvstore.js';
import { type Identity, RESERVED_IDENTITIES, endpointLabels, labelKey, parseLabelKey, reservedIdentity } from './identity.js';

export const IDENTITY_PREFIX = 'tendril/identities/';
const ID = `${IDENTITY_PREFIX}id/`;
const LABELS = `${IDENTITY_PREFIX}labels/`;
const REFS = `${IDENTITY_PREFIX}refs/`;

/** A candidate id taken by another node is skipped; this many in a row means something is wrong. */
const MAX_ATTEMPTS = 64;

export interface IdentityChange {
  type: 'add' | 'delete';
  identity: Identity;
}

/** What this node holds of one identity. */
interface Held {
  /** labelKey(labels); undefined for a restored hold whose identity is gone from the kvstore. */
  key: string | undefined;
  labels: Labels;
  /** Local users; 0 while the hold is only restored from before a restart. */
  users: number;
}

export class IdentityAllocator {
  /** Every endpoint identity of the cluster, kept current by the watch. */
  private readonly byId = new Map<number, Identity>();
  private readonly held = new Map<number, Held>();
  private readonly heldByKey = new Map<string, number>();
  /** Ids held from before a restart that no allocation has claimed yet. */
  private readonly restored = new Set<number>();
  /** Candidate ids being tried right now, so concurrent allocations try different ones. */
  private readonly trying = new Set<number>();
  private readonly locks = new Map<string, Promise<void>>();
  private readonly listeners = new Set<(change: IdentityChange) => void>();
  private cursor = ENDPOINT_IDENTITY_MIN - 1;
  private watch: Subscription | undefined;

  private constructor(
    private readonly kv: Kvstore,
    readonly node: string,
  ) {}

  /** Loads the cluster's identities and this node's holds, and follows changes from then on. */
  static async open(kv: Kvstore, node: string): Promise<IdentityAllocator> {
    if (node === '' || node.includes('/')) throw invalid(`node name "${node}" is invalid for identity refs (empty or contains "/")`);
    const alloc = new IdentityAllocator(kv, node);
    // Watch before listing: nothing committed in between is missed; repeats are harmless.
    alloc.watch = kv.watch(ID, (e) => alloc.onEvent(e));
    const [ids, refs] = await Promise.all([kv.list(ID), kv.list(REFS)]);
    for (const [key, value] of ids) alloc.onEvent({ type: 'put', key, value });
    for (const key of refs.keys()) {
      const [idText, owner] = key.slice(REFS.length).split('/');
      const id = Number(idText);
      if (owner !== node || !Number.isInteger(id) || !isEndpointIdentity(id)) continue;
      const identity = alloc.byId.get(id);
      alloc.restored.add(id);
      if (identity) alloc.hold(id, labelKey(identity.labels), identity.labels);
      else alloc.held.set(id, { key: undefined, labels: {}, users: 0 });
    }
    for (const id of alloc.byId.keys()) if (id > alloc.cursor) alloc.cursor = id;
    return alloc;
  }

  /** The identity of this label set, allocated if no node has it yet; counts one more local user. */
  async allocate(labels: Record<string, string>): Promise<Identity> {
    this.assertOpen();
    const sorted = endpointLabels(labels);
    const key = labelKey(sorted);
    return this.locked(key, () => this.allocateLocked(key, sorted));
  }

  /** Counts one local user less; the last one gives the identity up. True when this node no longer holds it. */
  async release(id: number): Promise<boolean> {
    this.assertOpen();
    const held = this.held.get(id);
    if (!held) {
      if (reservedIdentity(id)) throw invalid(`identity ${id} is reserved: it is never allocated or released`);
      throw notFound(`identity ${id} is not held on node ${this.node}: release only what allocate() returned`);
    }
    return this.locked(lockOf(id, held), async () => {
      const now = this.held.get(id);
      if (!now) throw notFound(`identity ${id} is not held on node ${this.node}: it was released already`);
      if (now.users > 1) {
        now.users--;
        return false;
      }
      await this.giveUp(id, now);
      return true;
    });
  }

  /** Releases every hold restored from before a restart that no allocate() claimed since. Returns their ids. */
  async finishRestore(): Promise<number[]> {
    this.assertOpen();
    const unclaimed = [...this.restored];
    await Promise.all(
      unclaimed.map((id) =>
        this.locked(lockOf(id, this.held.get(id)!), async () => {
          const held = this.held.get(id);
          if (this.restored.has(id) && held) await this.giveUp(id, held);
        }),
      ),
    );
    return unclaimed;
  }

  /** A reserved or endpoint identity of the cluster, from the local cache. */
  get(id: number): Identity | undefined {
    return reservedIdentity(id) ?? this.byId.get(id);
  }

  /** The reserved identities and every endpoint identity of the cluster, by id. */
  list(): Identity[] {
    return [...RESERVED_IDENTITIES, ...[...this.byId.values()].sort((a, b) => a.id - b.id)];
  }

  /** How many local users hold the identity (0 when none, or only a restored hold). */
  users(id: number): number {
    return this.held.get(id)?.users ?? 0;
  }

  /** Calls `listener` when an endpoint identity appears or disappears anywhere in the cluster. */
  onChange(listener: (change: IdentityChange) => void): Subscription {
    this.listeners.add(listener);
    return subscription(() => this.listeners.delete(listener));
  }

  /** Stops following the kvstore; holds stay in it (see restart above). */
  close(): void {
    this.watch?.dispose();
    this.watch = undefined;
    this.listeners.clear();
  }

  private async allocateLocked(key: string, labels: Labels): Promise<Identity> {
    const mine = this.heldByKey.get(key);
    if (mine !== undefined) return this.use(mine);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      // The local cache may lag behind other nodes; the kvstore has the last word.
      const existing = await this.kv.get(LABELS + key);
      if (existing !== undefined) {
        const id = Number(existing);
        if (await this.takeRef(id, key)) return this.use(this.hold(id, key, labels));
        continue;
      }
      const candidate = this.nextCandidate();
      try {
        if (!(await this.kv.createIfAbsent(ID + candidate, key))) continue; // another node's id
        await this.kv.put(this.refKey(candidate), '1');
        if (await this.kv.createIfAbsent(LABELS + key, String(candidate))) {
          return this.use(this.hold(candidate, key, labels));
        }
        // Another node allocated this label set meanwhile: give the candidate back and use theirs.
        await this.kv.delete(this.refKey(candidate));
        await this.kv.compareAndDelete(ID + candidate, key);
      } finally {
        this.trying.delete(candidate);
      }
    }
    throw new TendrilError('unavailable', `could not allocate an identity for {${key}} after ${MAX_ATTEMPTS} attempts: other nodes keep taking the candidates; try again`);
  }

  /** Adds this node's ref to an existing identity, and checks it was not freed meanwhile. */
  private async takeRef(id: number, key: string): Promise<boolean> {
    await this.kv.put(this.refKey(id), '1');
    if ((await this.kv.get(ID + id)) === key) return true;
    await this.kv.delete(this.refKey(id));
    // The index outlived its identity (freeing removes the index first, so only a
    // crash leaves this): drop it, unless someone has replaced it meanwhile.
    await this.kv.compareAndDelete(LABELS + key, String(id));
    return false;
  }

  /** Drops this node's hold; frees the identity when no node holds it any more. */
  private async giveUp(id: number, held: Held): Promise<void> {
    await this.kv.delete(this.refKey(id));
    this.held.delete(id);
    if (held.key !== undefined && this.heldByKey.get(held.key) === id) this.heldByKey.delete(held.key);
    this.restored.delete(id);
    if (held.key === undefined || (await this.kv.list(`${REFS}${id}/`)).size > 0) return;
    // The index goes first: nobody finds the identity any more, then it goes.
    await this.kv.compareAndDelete(LABELS + held.key, String(id));
    if (await this.kv.compareAndDelete(ID + id, held.key)) this.forget(id);
  }

  private use(id: number): Identity {
    const held = this.held.get(id)!;
    held.users++;
    this.restored.delete(id);
    return this.byId.get(id) ?? Object.freeze({ id, labels: held.labels });
  }

  private hold(id: number, key: string, labels: Labels): number {
    this.held.set(id, { key, labels, users: 0 });
    this.heldByKey.set(key, id);
    this.learn({ id, labels });
    return id;
  }

  private nextCandidate(): number {
    const span = ENDPOINT_IDENTITY_MAX - ENDPOINT_IDENTITY_MIN + 1;
    for (let i = 0; i < span; i++) {
      this.cursor = this.cursor >= ENDPOINT_IDENTITY_MAX ? ENDPOINT_IDENTITY_MIN : this.cursor + 1;
      if (!this.byId.has(this.cursor) && !this.trying.has(this.cursor)) {
        this.trying.add(this.cursor);
        return this.cursor;
      }
    }
    throw new TendrilError('exhausted', `all ${span} endpoint identities are in use: remove endpoints with label sets no longer needed`);
  }

  private refKey(id: number): string {
    return `${REFS}${id}/${this.node}`;
  }

  private onEvent(event: KvEvent): void {
    const id = Number(event.key.slice(ID.length));
    if (!isEndpointIdentity(id) || !Number.isInteger(id)) return;
    if (event.type === 'delete') return this.forget(id);
    const labels = parseLabelKey(event.value ?? '');
    if (!labels) {
      process.emitWarning(`kvstore key ${event.key} holds "${event.value}", not a label set; ignored`);
      return;
    }
    this.learn({ id, labels });
  }

  private learn(identity: Identity): void {
    if (this.byId.has(identity.id)) return;
    const frozen = Object.freeze({ id: identity.id, labels: identity.labels });
    this.byId.set(identity.id, frozen);
    this.emit({ type: 'add', identity: frozen });
  }

  private forget(id: number): void {
    const identity = this.byId.get(id);
    if (!identity) return;
    this.byId.delete(id);
    this.emit({ type: 'delete', identity });
  }

  private emit(change: IdentityChange): void {
    for (const listener of [...this.listeners]) {
      try {
        listener(change);
      } catch (err) {
        process.emitWarning(`identity change listener failed: ${(err as Error).message}`);
      }
    }
  }

  private assertOpen(): void {
    if (!this.watch) throw new TendrilError('unavailable', 'the identity allocator is closed');
  }

  /** Runs `fn` after every earlier call for the same label set has finished. */
  private locked<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const before = this.locks.get(key) ?? Promise.resolve();
    const run = before.then(fn);
    const after = run.then(
      () => undefined,
      () => undefined,
    );
    this.locks.set(key, after);
    void after.then(() => {
      if (this.locks.get(key) === after) this.locks.delete(key);
    });
    return run;
  }
}

/** Calls for one identity queue on its label set; a restored hold without one queues on its id. */
function lockOf(id: number, held: Held): string {
  return held.key ?? `#${id}`;
}
