/**
 * The node's L7 proxy as the agent runs it: started the first time a policy
 * has HTTP rules (flows without them never touch it), with the node routing
 * that delivers steered flows to its transparent listener and the datapath
 * told its port; kept on the current HTTP rules; its per-request events fed to
 * the monitor, built by the workers only while someone watches them.
 */
import type { L7PolicyTable } from '../common/l7-policy.js';
import type { ProxyConfigMap } from '../datapath/proxy-maps.js';
import { ensureNodeSourceAddress, ensureProxyRouting } from '../link/proxy-routing.js';
import type { MonitorHub } from '../monitor/hub.js';
import { l7MonitorEvent } from '../monitor/l7-event.js';
import { ProxySupervisor } from './supervisor.js';

export interface NodeProxyOptions {
  port: number;
  /** Worker processes; default one per two cores. */
  workers?: number;
  /** Pin of tnd_proxy_flows, which the workers open. */
  flowsPin: string;
  config: ProxyConfigMap;
  /** The node's source for upstream connections when it has no global IPv4 address (the pods' router address). */
  sourceAddress: string;
  monitor: MonitorHub;
  log: (line: string) => void;
}

export interface NodeProxyStatus {
  port: number;
  revision: number;
  workers: Array<{ index: number; pid: number; ready: boolean; revision: number; restarts: number }>;
  restarts: number;
  connections: number;
  activeConnections: number;
  requests: number;
  allowed: number;
  denied: number;
  errors: number;
}

export class NodeProxy {
  private supervisor: ProxySupervisor | undefined;
  private revision = 0;
  private ruleNames: Readonly<Record<number, string>> = {};

  constructor(private readonly options: NodeProxyOptions) {}

  /** The agent's L7PolicySink: every worker enforces `table` when this resolves. */
  async apply(table: L7PolicyTable): Promise<void> {
    this.revision = table.revision;
    this.ruleNames = table.ruleNames;
    if (!this.supervisor) {
      if (table.endpoints.length === 0) return;
      await this.start(table);
      return;
    }
    await this.supervisor.setPolicy(table);
  }

  private async start(table: L7PolicyTable): Promise<void> {
    const { port, monitor, log } = this.options;
    await ensureProxyRouting();
    await ensureNodeSourceAddress(this.options.sourceAddress);
    const supervisor = new ProxySupervisor({
      port,
      flowsPin: this.options.flowsPin,
      log: (line) => log(`proxy: ${line}`),
      ...(this.options.workers !== undefined ? { workers: this.options.workers } : {}),
    });
    supervisor.onEvents((events) => {
      for (const ev of events) monitor.publishDecoded(l7MonitorEvent(ev, (id) => this.ruleNames[id]));
    });
    // Workers get the table before they count as ready.
    await supervisor.setPolicy(table);
    supervisor.setMonitoring(monitor.wants('l7'));
    monitor.onSubscribersChanged = () => supervisor.setMonitoring(monitor.wants('l7'));
    this.supervisor = supervisor;
    try {
      await supervisor.start();
    } catch (err) {
      this.supervisor = undefined;
      monitor.onSubscribersChanged = undefined;
      await supervisor.stop();
      throw err;
    }
    // Only now may the datapath steer flows here.
    this.options.config.setPort(port);
    log(`L7 proxy listening on 127.0.0.1:${port} (${supervisor.workers().length} workers)`);
  }

  status(): NodeProxyStatus | undefined {
    if (!this.supervisor) return undefined;
    const workers = this.supervisor.workers();
    return {
      port: this.options.port,
      revision: this.revision,
      workers,
      restarts: workers.reduce((n, w) => n + w.restarts, 0),
      ...this.supervisor.stats(),
    };
  }

  /** Stops the workers; the datapath drops redirected flows until a proxy runs again. */
  async stop(): Promise<void> {
    const supervisor = this.supervisor;
    this.supervisor = undefined;
    if (!supervisor) return;
    this.options.monitor.onSubscribersChanged = undefined;
    this.options.config.clear();
    await supervisor.stop();
  }
}
