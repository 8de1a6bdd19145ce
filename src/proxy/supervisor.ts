/**
 * The agent's side of the L7 proxy: forks the worker processes (by default
 * one per two cores, all on the same port through SO_REUSEPORT), keeps them on the
 * current policy, collects their events and stats, and restarts a worker that
 * died, with backoff. A worker counts as ready only once it listens AND has
 * applied the current policy, so a restarted worker never judges a request by
 * an empty or stale table.
 */
import { fork, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import type { L7Event, L7PolicyTable, ProxyCommand, ProxyReport, ProxyStats } from '../common/l7-policy.js';

export interface SupervisorOptions {
  port: number;
  workers?: number;
  flowsPin?: string;
  listen?: string;
  log?: (message: string) => void;
  /** More worker arguments (test mode: --fixed-destination, --fixed-flow, timeouts). */
  extraArgs?: readonly string[];
  /** How long stop() waits for a worker to finish its connections before SIGKILL. */
  graceMs?: number;
  /** How long start() waits for every worker to be ready. */
  startTimeoutMs?: number;
}

interface Slot {
  index: number;
  child: ChildProcess | undefined;
  pid: number;
  /** Listening and on the current policy. */
  ready: boolean;
  /** Listening, waiting for the current policy to be applied. */
  listening: boolean;
  applied: number;
  restarts: number;
  startedAt: number;
  stats: ProxyStats | undefined;
  restartTimer: NodeJS.Timeout | undefined;
}

export interface WorkerInfo {
  index: number;
  pid: number;
  ready: boolean;
  revision: number;
  restarts: number;
}

const MAX_BACKOFF_MS = 5_000;
/** A worker that lived this long starts its restart count afresh. */
const STABLE_MS = 30_000;

const MAIN = fileURLToPath(new URL('./main.js', import.meta.url));

/**
 * Half the cores, at least one. Both ends of a proxied request are pods on
 * this node, and they spend about as much CPU per request as the proxy does:
 * a worker on every core only makes workers and pods take turns on each CPU
 * (measured on 2 cores: one pinned worker serves more requests per second, at
 * a lower p99, than two).
 */
export function defaultWorkers(): number {
  return Math.max(1, Math.ceil(os.availableParallelism() / 2));
}

const zeroStats = (): ProxyStats => ({ connections: 0, activeConnections: 0, requests: 0, allowed: 0, denied: 0, errors: 0 });

export class ProxySupervisor {
  private readonly slots: Slot[] = [];
  private table: L7PolicyTable | undefined;
  private monitoring = false;
  private stopping = false;
  private readonly eventListeners = new Set<(events: L7Event[]) => void>();
  private waiters: Array<() => boolean> = [];
  /** Counters of workers that exited, so totals never go backwards. */
  private readonly retired = zeroStats();
  private readonly log: (message: string) => void;

  constructor(private readonly opts: SupervisorOptions) {
    this.log = opts.log ?? (() => {});
    const n = opts.workers ?? defaultWorkers();
    for (let i = 0; i < n; i++)
      this.slots.push({ index: i, child: undefined, pid: 0, ready: false, listening: false, applied: -1, restarts: 0, startedAt: 0, stats: undefined, restartTimer: undefined });
  }

  /** Resolves when every worker listens and applied the current policy. */
  start(): Promise<void> {
    for (const slot of this.slots) this.spawn(slot);
    const timeout = this.opts.startTimeoutMs ?? 15_000;
    return this.until(() => this.slots.every((s) => s.ready), timeout, 'proxy workers did not become ready');
  }

  /** Resolves when every live worker applies `table` to its requests. */
  setPolicy(table: L7PolicyTable): Promise<void> {
    this.table = table;
    for (const slot of this.slots) if (slot.listening || slot.ready) this.send(slot, { type: 'policy', table });
    const revision = table.revision;
    return this.until(() => this.slots.every((s) => !s.ready || s.applied >= revision || s.child === undefined));
  }

  setMonitoring(enabled: boolean): void {
    this.monitoring = enabled;
    for (const slot of this.slots) if (slot.listening || slot.ready) this.send(slot, { type: 'monitor', enabled });
  }

  /** Events of every worker as they arrive; returns an unsubscribe function. */
  onEvents(cb: (events: L7Event[]) => void): () => void {
    this.eventListeners.add(cb);
    return () => this.eventListeners.delete(cb);
  }

  /** Totals over all workers (as of their last report, about once a second). */
  stats(): ProxyStats {
    const total = { ...this.retired, activeConnections: 0 };
    for (const s of this.slots) {
      if (!s.stats) continue;
      total.connections += s.stats.connections;
      total.activeConnections += s.stats.activeConnections;
      total.requests += s.stats.requests;
      total.allowed += s.stats.allowed;
      total.denied += s.stats.denied;
      total.errors += s.stats.errors;
    }
    return total;
  }

  workers(): WorkerInfo[] {
    return this.slots.map((s) => ({ index: s.index, pid: s.pid, ready: s.ready, revision: s.applied, restarts: s.restarts }));
  }

  /** Asks every worker to finish and exit; SIGKILL for any still there after the grace period. */
  async stop(): Promise<void> {
    this.stopping = true;
    const grace = this.opts.graceMs ?? 5_000;
    await Promise.all(
      this.slots.map((slot) => {
        clearTimeout(slot.restartTimer);
        const child = slot.child;
        if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
        return new Promise<void>((resolve) => {
          const kill = setTimeout(() => child.kill('SIGKILL'), grace);
          child.once('exit', () => {
            clearTimeout(kill);
            resolve();
          });
          if (!this.send(slot, { type: 'shutdown' })) child.kill('SIGKILL');
        });
      }),
    );
  }

  private send(slot: Slot, cmd: ProxyCommand): boolean {
    const child = slot.child;
    if (!child || !child.connected) return false;
    try {
      return child.send(cmd);
    } catch {
      return false;
    }
  }

  private spawn(slot: Slot): void {
    const args = ['--worker', String(slot.index), '--port', String(this.opts.port), '--listen', this.opts.listen ?? '127.0.0.1'];
    if (this.opts.flowsPin !== undefined) args.push('--flows-pin', this.opts.flowsPin);
    args.push(...(this.opts.extraArgs ?? []));
    const child = fork(MAIN, args, { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], serialization: 'json' });
    slot.child = child;
    slot.pid = child.pid ?? 0;
    slot.ready = false;
    slot.listening = false;
    slot.applied = -1;
    slot.startedAt = Date.now();
    child.on('message', (report: ProxyReport) => this.report(slot, child, report));
    child.on('error', (err) => this.log(`proxy worker ${slot.index}: ${err.message}`));
    child.on('exit', (code, signal) => this.exited(slot, child, code, signal));
  }

  private report(slot: Slot, child: ChildProcess, report: ProxyReport): void {
    if (slot.child !== child) return;
    switch (report.type) {
      case 'ready':
        slot.listening = true;
        if (this.monitoring) this.send(slot, { type: 'monitor', enabled: true });
        // Ready only on the current table: a worker started later gets it first.
        if (this.table) this.send(slot, { type: 'policy', table: this.table });
        else slot.ready = true;
        break;
      case 'applied':
        slot.applied = report.revision;
        if (this.table === undefined || report.revision >= this.table.revision) slot.ready = true;
        break;
      case 'events':
        for (const cb of this.eventListeners) cb(report.events);
        break;
      case 'stats':
        slot.stats = report.stats;
        break;
    }
    this.check();
  }

  private exited(slot: Slot, child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    if (slot.child !== child) return;
    if (slot.stats) {
      for (const k of ['connections', 'requests', 'allowed', 'denied', 'errors'] as const) this.retired[k] += slot.stats[k];
      slot.stats = undefined;
    }
    slot.child = undefined;
    slot.ready = false;
    slot.listening = false;
    this.check();
    if (this.stopping) return;
    if (Date.now() - slot.startedAt > STABLE_MS) slot.restarts = 0;
    const delay = slot.restarts === 0 ? 0 : Math.min(MAX_BACKOFF_MS, 250 * 2 ** (slot.restarts - 1));
    slot.restarts++;
    this.log(`proxy worker ${slot.index} (pid ${slot.pid}) exited (${signal ?? code}); restarting in ${delay} ms`);
    slot.restartTimer = setTimeout(() => {
      slot.restartTimer = undefined;
      if (!this.stopping) this.spawn(slot);
    }, delay);
  }

  private check(): void {
    this.waiters = this.waiters.filter((done) => !done());
  }

  /** Resolves once `cond` holds (checked on every report and exit). */
  private until(cond: () => boolean, timeoutMs?: number, what?: string): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      if (timeoutMs !== undefined)
        timer = setTimeout(() => {
          this.waiters = this.waiters.filter((w) => w !== waiter);
          reject(new Error(`${what} within ${timeoutMs} ms`));
        }, timeoutMs);
      const waiter = (): boolean => {
        if (!cond()) return false;
        clearTimeout(timer);
        resolve();
        return true;
      };
      this.waiters.push(waiter);
    });
  }
}
