/**
 * Fans datapath events out to live subscribers (`tendril monitor` streams).
 * With no subscriber, events are decoded by nobody: the reader drains the ring
 * buffer and drops them, so the kernel side never stalls.
 */
import { decodeEvent, type EventType, type MonitorEvent } from './event.js';

export interface EventFilter {
  types?: EventType[];
  endpoint?: number;
}

type Listener = (ev: MonitorEvent) => void;

export class MonitorHub {
  private readonly listeners = new Map<Listener, EventFilter>();
  private bootOffsetMs = computeBootOffset();
  received = 0;
  lost = 0;

  /** `describe` fills in what the raw event only references (e.g. a rule id's name). */
  constructor(private readonly describe: (ev: MonitorEvent) => void = () => undefined) {}

  subscribe(filter: EventFilter, listener: Listener): () => void {
    this.listeners.set(listener, filter);
    return () => this.listeners.delete(listener);
  }

  get subscribers(): number {
    return this.listeners.size;
  }

  /** Called with each raw ring-buffer record. */
  publish(data: Buffer): void {
    this.received++;
    if (this.listeners.size === 0) return;
    let ev: MonitorEvent;
    try {
      ev = decodeEvent(data, this.bootOffsetMs);
      this.describe(ev);
    } catch {
      this.lost++;
      return;
    }
    for (const [listener, filter] of this.listeners) {
      if (filter.types && !filter.types.includes(ev.type)) continue;
      if (filter.endpoint !== undefined && filter.endpoint !== ev.endpoint) continue;
      listener(ev);
    }
  }

  resync(): void {
    this.bootOffsetMs = computeBootOffset();
  }
}

/** Wall clock minus CLOCK_MONOTONIC (which bpf_ktime_get_ns and hrtime share). */
function computeBootOffset(): number {
  return Date.now() - Number(process.hrtime.bigint() / 1000000n);
}
