/**
 * Applies each Docker endpoint's container labels, in tendril-docker. Docker
 * names a container to the network driver nowhere: Join brings only the
 * endpoint id, and inspecting the container then would wait on the very
 * start that is joining. So the agent holds a new endpoint down (see
 * agent-backend.ts) and this loop finds its container afterwards: on each
 * "network connect" event by the container the event names, and every few
 * seconds while endpoints are pending by the containers of their networks
 * (a missed event, or a tendril-docker that was not running). All state is
 * the agent's: a restarted tendril-docker finds the pending endpoints there.
 */
import type { ApiClient } from '../api/client.js';
import type { Labels } from '../common/labels.js';
import { containerLabels } from './container-labels.js';
import type { ContainerInspect, DockerApi } from './docker-api.js';

interface Pending {
  id: number;
  networkId: string;
  endpointId: string;
}

const SWEEP_MS = 2_000;
const EVENTS_RETRY_MS = 1_000;

export class Activator {
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  /** One pass at a time; a request meanwhile runs one more pass after it. */
  private running: Promise<void> | undefined;
  private again = false;
  private readonly named = new Set<string>();

  constructor(
    readonly agent: ApiClient,
    readonly docker: DockerApi,
    readonly log: (line: string) => void,
  ) {}

  start(): void {
    void this.followEvents();
    this.timer = setInterval(() => this.kick(), SWEEP_MS);
    this.kick();
  }

  stop(): void {
    this.abort.abort();
    if (this.timer) clearInterval(this.timer);
  }

  /** A pass soon; `containerId` (from an event) is looked at first. */
  kick(containerId?: string): void {
    if (containerId) this.named.add(containerId);
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((err: Error) => this.log(`labels: ${err.message}`))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.kick();
        }
      });
  }

  /** Waits for the passes under way (tests, shutdown). */
  async settled(): Promise<void> {
    while (this.running) await this.running;
  }

  private async pass(): Promise<void> {
    let pending = await this.agent.call<Pending[]>('GET', '/v1/docker/pending');
    const named = [...this.named];
    this.named.clear();
    for (const id of named) {
      if (pending.length === 0) return;
      pending = await this.resolve(id, pending);
    }
    for (const networkId of new Set(pending.map((p) => p.networkId))) {
      for (const id of await this.docker.containersOn(networkId)) {
        if (!pending.some((p) => p.networkId === networkId)) break;
        pending = await this.resolve(id, pending);
      }
    }
  }

  /** Activates the pending endpoints of one container; what is still pending. */
  private async resolve(containerId: string, pending: Pending[]): Promise<Pending[]> {
    const c = await this.docker.inspect(containerId);
    if (!c) return pending;
    const mine = endpointIdsOf(c);
    const rest: Pending[] = [];
    for (const p of pending) {
      if (!mine.has(p.endpointId)) {
        rest.push(p);
        continue;
      }
      const { labels, skipped } = containerLabels(c.Name, c.Config?.Labels);
      const name = c.Name.replace(/^\//, '');
      for (const why of skipped) this.log(`container ${name}: label left out: ${why}`);
      await this.agent.call('POST', `/v1/docker/endpoints/${p.endpointId}/activate`, { labels });
      this.log(`endpoint ${p.id} (container ${name}) active with labels ${formatted(labels)}`);
    }
    return rest;
  }

  private async followEvents(): Promise<void> {
    let failing = false;
    while (!this.abort.signal.aborted) {
      try {
        await this.docker.events((ev) => {
          failing = false;
          const container = ev.Actor?.Attributes?.container;
          if (ev.Type === 'network' && ev.Action === 'connect' && container) this.kick(container);
        }, this.abort.signal);
      } catch (err) {
        // Said once per outage (dockerd starting or restarting), not every second.
        if (!this.abort.signal.aborted && !failing) this.log(`docker events: ${(err as Error).message}; retrying every second`);
        failing = true;
      }
      if (!this.abort.signal.aborted) await new Promise((r) => setTimeout(r, EVENTS_RETRY_MS).unref());
    }
  }
}

function endpointIdsOf(c: ContainerInspect): Set<string> {
  return new Set(Object.values(c.NetworkSettings?.Networks ?? {}).map((n) => n.EndpointID ?? '').filter(Boolean));
}

function formatted(labels: Labels): string {
  return Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(',') || '(none)';
}
