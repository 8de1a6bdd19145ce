/**
 * The node agent: wires the datapath, endpoints, monitor and API together and
 * owns their lifetimes. Stopping the agent leaves the datapath running.
 */
import { RingBufferReader, bpfObjectPath } from '../bpf/index.js';
import { NodeMaps } from '../datapath/node-maps.js';
import { PinPaths } from '../datapath/paths.js';
import { listMaps } from '../datapath/map-views.js';
import { sweepConntrack } from '../datapath/ct-gc.js';
import { countAttachedPrograms } from '../datapath/endpoint-programs.js';
import { EndpointManager } from '../endpoint/manager.js';
import { MemoryKvstore } from '../kvstore/memory.js';
import type { Kvstore } from '../kvstore/kvstore.js';
import { IdentityAllocator } from '../identity/allocator.js';
import { Ipcache } from '../ipcache/ipcache.js';
import { PolicyRepository } from '../policy/repository.js';
import { PolicyEnforcement } from '../policy/enforcement.js';
import { enableForwarding, hostAddresses } from '../link/node-net.js';
import { MonitorHub } from '../monitor/hub.js';
import { ApiServer } from '../api/server.js';
import { registerRoutes } from '../api/routes.js';
import type { AgentStatus } from '../api/types.js';
import type { Endpoint } from '../endpoint/endpoint.js';
import { NodeProxy } from '../proxy/node-proxy.js';
import { LbMaps } from '../datapath/lb-maps.js';
import { SockLb } from '../datapath/sock-lb.js';
import { ProxySockRedirect } from '../datapath/proxy-sock.js';
import { XdpLb } from '../datapath/xdp-lb.js';
import { agentCniBackend } from '../cni/agent-backend.js';
import { cniRoute } from '../cni/route.js';
import { agentDockerBackend } from '../docker/agent-backend.js';
import { registerDockerRoutes } from '../docker/route.js';
import { ServiceManager } from '../loadbalancer/manager.js';
import { PodNamespaces } from '../loadbalancer/pod-namespaces.js';

export interface AgentOptions {
  node: string;
  stateDir: string;
  socket: string;
  bpffs: string;
  podCidr4: string;
  podCidr6: string;
  /** A trace event for every packet instead of one per flow and second (costly; for debugging). */
  traceAll?: boolean;
  /** The L7 proxy's port on 127.0.0.1 and its number of worker processes (default: one per two cores). */
  proxyPort?: number;
  proxyWorkers?: number;
  /** Slots of every Maglev table (a prime); fixed when the node's LB maps are first made. */
  maglevSize?: number;
  /** The cgroup v2 directory whose sockets the socket load balancer serves (default: the cgroup2 root). */
  lbCgroup?: string;
  /**
   * The node's external interfaces: the XDP load balancer of NodePort and
   * ExternalIP frontends is attached to each (none: those frontends are not
   * reachable from outside the node).
   */
  lbInterfaces?: string[];
  /** No socket load balancer: pods' service traffic takes the per-packet path of the endpoint programs. */
  noSocketLb?: boolean;
  /** Leave the L7 proxy's connections to TCP/IP: no socket redirection between the proxy and local pods. */
  noProxyRedirect?: boolean;
  /** Seconds an identity outlives its last endpoint on this node (default IDENTITY_LINGER_MS). */
  identityLingerSec?: number;
}

const DEFAULT_PROXY_PORT = 15080;

export const VERSION = '0.1.0';
const CT_GC_INTERVAL_MS = 30_000;
/** The node's addresses are looked at again this often (they are the host identity). */
const HOST_ADDRESS_INTERVAL_MS = 5_000;

export class Agent {
  private readonly started = Date.now();
  private readonly api = new ApiServer();
  private readonly hub: MonitorHub;
  private reader: RingBufferReader | undefined;
  private gcTimer: NodeJS.Timeout | undefined;
  private hostTimer: NodeJS.Timeout | undefined;
  private readonly proxy: NodeProxy;

  private constructor(
    readonly options: AgentOptions,
    readonly maps: NodeMaps,
    readonly kvstore: Kvstore,
    readonly identities: IdentityAllocator,
    readonly policy: PolicyEnforcement,
    readonly endpoints: EndpointManager,
    readonly lbMaps: LbMaps,
    readonly services: ServiceManager,
  ) {
    this.hub = new MonitorHub((ev) => {
      if (ev.ruleId) ev.rule = policy.describeRule(ev.ruleId);
    });
    this.proxy = new NodeProxy({
      port: options.proxyPort ?? DEFAULT_PROXY_PORT,
      ...(options.proxyWorkers !== undefined ? { workers: options.proxyWorkers } : {}),
      flowsPin: maps.proxyFlowsPath,
      config: maps.proxyConfig,
      sourceAddress: endpoints.routerIPv4,
      monitor: this.hub,
      log: (line) => this.log(line),
    });
  }

  private log: (line: string) => void = () => undefined;

  static async start(options: AgentOptions, log: (line: string) => void): Promise<Agent> {
    // A second agent must not restore (and so rewrite) what the first one runs.
    await ApiServer.assertFree(options.socket);
    const paths = new PinPaths(options.bpffs, options.node);
    const maps = NodeMaps.open(paths);
    const lbMaps = LbMaps.open(paths, options.maglevSize !== undefined ? { maglevSize: options.maglevSize } : {});
    // Pods reach the world through the node's stack.
    enableForwarding();
    const kvstore = await MemoryKvstore.open(options.stateDir);
    const identities = await IdentityAllocator.open(kvstore, options.node);
    const policy = new PolicyEnforcement(new PolicyRepository(options.stateDir), identities, new Ipcache(maps.ipcache), maps.policy, options.stateDir, {
      ...(options.identityLingerSec !== undefined ? { identityLingerMs: options.identityLingerSec * 1000 } : {}),
    });
    const pods = new PodNamespaces(lbMaps);
    const services = new ServiceManager(lbMaps, { stateDir: options.stateDir, podCidrs: [options.podCidr4, options.podCidr6] });
    const hooks = {
      attach: async (ep: Endpoint) => {
        // Port maps first: a host port in use fails the add before identity and policy work.
        await services.setPortMaps(ep.id, ep.portMaps ?? [], [ep.ipv4, ep.ipv6].filter(Boolean));
        const identity = await policy.attach(ep);
        if (ep.netns) pods.register(ep); // a Docker endpoint's sandbox is Docker's to know
        return identity;
      },
      relabel: (ep: Endpoint) => policy.relabel(ep),
      detach: async (id: number) => {
        pods.unregister(id);
        await Promise.all([policy.detach(id), services.setPortMaps(id, [], [])]);
      },
    };
    const endpoints = new EndpointManager(maps, { ipv4: options.podCidr4, ipv6: options.podCidr6 }, options.stateDir, hooks, { traceAll: options.traceAll });
    const agent = new Agent(options, maps, kvstore, identities, policy, endpoints, lbMaps, services);
    agent.log = log;
    try {
      // Services before endpoints: restoring an endpoint restores its port maps, removing one removes them.
      const lbReport = await services.restore();
      log(`restored services: ${lbReport.services} services, ${lbReport.backends} backends, ${lbReport.maglevTables} Maglev tables`);
      const report = await endpoints.restore();
      log(`restored endpoints: ${report.adopted} adopted, ${report.reattached} re-attached, ${report.removed} gone and removed`);
      pods.prune();
      await services.prunePortMaps(new Set(endpoints.list().map((ep) => ep.id)));
      if (options.noSocketLb) {
        // Links pinned by an earlier run would keep translating at connect().
        const n = SockLb.detach(paths);
        log(`socket load balancing off${n ? ` (${n} pinned links detached)` : ''}: pods reach services per packet`);
      } else {
        // Pods' connect() reaches services from here on; the links are pinned, so they outlive this process.
        SockLb.attach(lbMaps, options.lbCgroup !== undefined ? { cgroup: options.lbCgroup } : {});
      }
      if (options.noProxyRedirect) {
        const n = ProxySockRedirect.detach(paths);
        log(`socket redirection for the L7 proxy off${n ? ` (${n} pinned links detached)` : ''}`);
      } else {
        // The proxy's connections to local pods skip TCP/IP from their first message on.
        ProxySockRedirect.attach(maps, options.lbCgroup !== undefined ? { cgroup: options.lbCgroup } : {});
      }
      const addrs = await hostAddresses();
      // NodePort frontends answer on these; written before XDP looks at them.
      lbMaps.setNodeAddresses(addrs);
      await policy.setHostAddresses(addrs);
      agent.attachXdp(options.lbInterfaces ?? []);
      await policy.start();
      // The proxy starts when a policy first has HTTP rules (now, if one has).
      await policy.setL7Sink((table) => agent.proxy.apply(table));
      agent.reader = new RingBufferReader(maps.raw.get('tnd_events')!, (data) => agent.hub.publish(data));
      agent.reader.start();
      registerRoutes(agent.api, { endpoints, maps, policy, services, monitor: agent.hub, status: () => agent.status() });
      // CNI runtimes reach the agent through tendril-cni.
      agent.api.route('POST', '/v1/cni', cniRoute(agentCniBackend(endpoints)));
      // Docker reaches the agent through tendril-docker.
      registerDockerRoutes(agent.api, agentDockerBackend(endpoints));
      await agent.api.listen(options.socket);
      agent.gcTimer = setInterval(() => sweepConntrack(maps), CT_GC_INTERVAL_MS);
      agent.gcTimer.unref();
      agent.hostTimer = setInterval(() => {
        hostAddresses()
          .then((addrs) => {
            lbMaps.setNodeAddresses(addrs);
            return policy.setHostAddresses(addrs);
          })
          .catch((err: Error) => log(`reading the node's addresses failed: ${err.message}`));
      }, HOST_ADDRESS_INTERVAL_MS);
      agent.hostTimer.unref();
    } catch (err) {
      await agent.stop();
      throw err;
    }
    log(`node ${options.node} ready on ${options.socket} (pod ranges ${options.podCidr4}, ${options.podCidr6})`);
    return agent;
  }

  /**
   * The XDP load balancer on each of `devices` (a link pinned by an earlier
   * run gets the new program in place); links left on devices no longer
   * named are removed.
   */
  private attachXdp(devices: readonly string[]): void {
    for (const name of XdpLb.pinned(this.lbMaps.paths).keys()) {
      if (devices.includes(name)) continue;
      XdpLb.detach(this.lbMaps.paths, name);
      this.log(`XDP load balancer detached from ${name} (no longer an --lb-interface)`);
    }
    if (devices.length === 0) {
      this.log('no --lb-interface: NodePort and ExternalIP frontends are not reachable from outside the node');
      return;
    }
    for (const ifname of devices) {
      const link = XdpLb.attach(this.lbMaps, { ifname });
      this.log(`XDP load balancer ${link.updated ? 'updated in place' : 'attached'} on ${ifname} (native mode)`);
    }
  }

  status(): AgentStatus {
    const proxy = this.proxy.status();
    const redirect = this.options.noProxyRedirect ? undefined : ProxySockRedirect.stats(this.maps.paths);
    return {
      node: this.options.node,
      version: VERSION,
      pid: process.pid,
      uptimeSec: Math.round((Date.now() - this.started) / 1000),
      socket: this.options.socket,
      stateDir: this.options.stateDir,
      podRanges: { ipv4: this.options.podCidr4, ipv6: this.options.podCidr6 },
      router: { ipv4: this.endpoints.routerIPv4, ipv6: this.endpoints.routerIPv6 },
      datapath: {
        bpffs: this.options.bpffs,
        pinRoot: this.maps.paths.root,
        object: bpfObjectPath('lxc.o'),
        programsAttached: this.endpoints.list().reduce((n, ep) => n + countAttachedPrograms(ep.ifindex), 0),
      },
      maps: listMaps(this.maps),
      endpoints: this.endpoints.count(),
      preparedEndpoints: this.endpoints.preparedCount(),
      policy: { ...this.policy.stats(), generation: this.maps.policy.generation() },
      monitor: { eventsReceived: this.hub.received, subscribers: this.hub.subscribers },
      ...(proxy ? { proxy } : {}),
      ...(redirect ? { proxyRedirect: redirect } : {}),
    };
  }

  /** Stops serving; programs, pins and endpoints stay as they are. */
  async stop(): Promise<void> {
    if (this.gcTimer) clearInterval(this.gcTimer);
    if (this.hostTimer) clearInterval(this.hostTimer);
    await this.api.close();
    await this.proxy.stop();
    await this.endpoints.close();
    this.services.close();
    this.reader?.close();
    await this.policy.close();
    this.identities.close();
    await this.kvstore.close();
    this.lbMaps.close();
    this.maps.close();
  }
}
