/**
 * Where services survive a restart: a snapshot (services.json, written
 * atomically through StateFile) and a journal (services.journal) of the
 * services changed since, one JSON record per line, appended and fsynced
 * once per batch. Rewriting one document per change would cost O(services)
 * per change, hours for 100,000 services; a journal record costs the size of
 * one service. The journal is folded into a new snapshot once it outgrows
 * the last one, so the total written stays proportional to what changed.
 *
 * Records carry a sequence number and the snapshot the last one it holds:
 * after a crash between writing a snapshot and emptying the journal, the
 * older records are skipped, not replayed over newer state. A torn last line
 * (a crash mid-append) is ignored.
 */
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { TendrilError } from '../common/errors.js';
import { StateFile } from '../node/state-file.js';

/** Counters that must never go back, stored with every record. */
export interface StoreCounters {
  nextServiceId: number;
  nextBackendId: number;
}

interface Snapshot<S> extends StoreCounters {
  version: 1;
  /** The last journal record this snapshot includes. */
  seq: number;
  services: S[];
}

type JournalRecord<S> = { seq: number; counters: StoreCounters } & ({ put: S } | { del: number });

/** One service's new form, or its id when it is gone. */
export type StoreChange<S> = { put: S } | { del: number };

const MIN_COMPACT_BYTES = 1 << 20;

export class ServiceStore<S extends { id: number }> {
  private readonly snapshot: StateFile<Snapshot<S>>;
  private readonly journalPath: string;
  private journalFd: number | undefined;
  private seq = 0;
  private journalBytes = 0;
  private snapshotBytes = 0;
  private loaded = false;

  constructor(readonly dir: string) {
    this.snapshot = new StateFile(dir, 'services.json');
    this.journalPath = join(dir, 'services.journal');
  }

  get path(): string {
    return this.snapshot.path;
  }

  /** The saved services and counters (undefined: nothing saved yet). */
  load(): { counters: StoreCounters; services: S[] } | undefined {
    const snap = this.snapshot.read();
    if (snap && snap.version !== 1) throw new TendrilError('precondition', `state file ${this.snapshot.path} has version ${snap.version}; this agent reads version 1`);
    this.seq = snap?.seq ?? 0;
    const services = new Map<number, S>((snap?.services ?? []).map((s) => [s.id, s]));
    let counters: StoreCounters | undefined = snap ? { nextServiceId: snap.nextServiceId, nextBackendId: snap.nextBackendId } : undefined;
    const lines = existsSync(this.journalPath) ? readFileSync(this.journalPath, 'utf8').split('\n') : [];
    lines.forEach((line, i) => {
      if (line === '') return;
      let rec: JournalRecord<S>;
      try {
        rec = JSON.parse(line) as JournalRecord<S>;
      } catch {
        if (i >= lines.length - 2) return; // torn last line: that batch was never acknowledged
        throw new TendrilError('precondition', `${this.journalPath} line ${i + 1} is not valid JSON: move it away to start from the snapshot`);
      }
      if (rec.seq <= this.seq) return;
      this.seq = rec.seq;
      counters = rec.counters;
      if ('put' in rec) services.set(rec.put.id, rec.put);
      else services.delete(rec.del);
    });
    this.loaded = true;
    if (!counters) return undefined;
    return { counters, services: [...services.values()].sort((a, b) => a.id - b.id) };
  }

  /** Appends `changes` durably; folds the journal into a new snapshot when it has grown larger than it. */
  commit(changes: ReadonlyArray<StoreChange<S>>, counters: StoreCounters, all: () => S[]): void {
    this.checkLoaded();
    if (this.journalBytes > Math.max(MIN_COMPACT_BYTES, this.snapshotBytes)) return this.compact(all(), counters);
    const text = changes.map((c) => JSON.stringify({ seq: ++this.seq, counters, ...c }) + '\n').join('');
    const fd = this.openJournal();
    writeSync(fd, text);
    fsyncSync(fd);
    this.journalBytes += Buffer.byteLength(text);
  }

  /** Writes every service as the new snapshot and empties the journal. */
  compact(services: S[], counters: StoreCounters): void {
    this.checkLoaded();
    this.snapshot.write({ version: 1, seq: this.seq, ...counters, services });
    this.snapshotBytes = statSync(this.snapshot.path).size;
    const fd = this.openJournal();
    ftruncateSync(fd, 0);
    fsyncSync(fd);
    this.journalBytes = 0;
  }

  close(): void {
    if (this.journalFd !== undefined) closeSync(this.journalFd);
    this.journalFd = undefined;
  }

  private checkLoaded(): void {
    // Writing before reading would start the sequence at 0 below what is saved.
    if (!this.loaded) throw new TendrilError('internal', `services are saved only after they were restored from ${this.dir}`);
  }

  private openJournal(): number {
    if (this.journalFd === undefined) {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      const created = !existsSync(this.journalPath);
      this.journalFd = openSync(this.journalPath, 'a', 0o600);
      if (created) {
        const dirFd = openSync(this.dir, 'r');
        try {
          fsyncSync(dirFd);
        } finally {
          closeSync(dirFd);
        }
      }
    }
    return this.journalFd;
  }
}
