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

  /** Called whenever a subscriber comes or goes (the proxy builds L7 events only while one wants them). */
  onSubscribersChanged: (() => void) | undefined;

  subscribe(filter: EventFilter, listener: Listener): () => void {
    this.listeners.set(listener, filter);
    this.onSubscribersChanged?.();
    return () => {
      this.listeners.delete(listener);
      this.onSubscribersChanged?.();
    };
  }

  /** True when some subscriber would receive events of this type. */
  wants(type: EventType): boolean {
    for (const filter of this.listeners.values()) if (!filter.types || filter.types.includes(type)) return true;
    return false;
  }

  /** Events decoded elsewhere (the L7 proxy's). */
  publishDecoded(ev: MonitorEvent): void {
    this.received++;
    this.deliver(ev);
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
    this.deliver(ev);
  }

  private deliver(ev: MonitorEvent): void {
    for (const [listener, filter] of this.listeners) {
      if (filter.types && !filter.types.includes(ev.type)) continue;
      if (filter.endpoint !== undefined && !concerns(ev, filter.endpoint)) continue;
      listener(ev);
    }
  }

  resync(): void {
    this.bootOffsetMs = computeBootOffset();
  }
}

/** An L7 event concerns both its endpoints; a datapath event the one it names. */
function concerns(ev: MonitorEvent, endpoint: number): boolean {
  return ev.endpoint === endpoint || ev.sourceEndpoint === endpoint || ev.destinationEndpoint === endpoint;
}

/** Wall clock minus CLOCK_MONOTONIC (which bpf_ktime_get_ns and hrtime share). */
function computeBootOffset(): number {
  return Date.now() - Number(process.hrtime.bigint() / 1000000n);
}
