/**
 * One proxy worker process: its own transparent listener on the shared port
 * (SO_REUSEPORT, so the kernel spreads connections over the workers and each
 * worker uses one core), a Relay, and the IPC side of the contract with the
 * agent's ProxySupervisor (src/common/l7-policy.ts). A worker whose agent is
 * gone exits: nobody could update its policy any more.
 */
import net from 'node:net';
import type { L7Event, ProxyCommand, ProxyFlow, ProxyReport } from '../common/l7-policy.js';
import { transparentListener } from '../sys/socket.js';
import { allowedCpus, pinToCpu } from '../sys/affinity.js';
import { Relay, plainUpstream, type Destination, type FlowSource, type RelayOptions } from './relay.js';

export interface WorkerOptions {
  worker: number;
  port: number;
  listen: string;
  /** Pinned proxy flow map; without it (and without a fixed flow) every connection is refused. */
  flowsPin?: string;
  /**
   * Test and benchmark mode: every connection goes to this destination as
   * this flow, instead of its original destination and the flow map's entry
   * (no datapath needed), over an unmarked upstream socket.
   */
  fixedDestination?: Destination;
  fixedFlow?: ProxyFlow;
  headerTimeoutMs?: number;
  idleTimeoutMs?: number;
  responseTimeoutMs?: number;
  /** Bind to one CPU (the worker index's among the allowed ones). Default: yes. */
  pinCpu?: boolean;
}

/** Parses `--worker N --port P [--flows-pin PATH] [--listen ADDR] [--pin-cpu 0|1] [--fixed-destination HOST:PORT --fixed-flow JSON] [--*-timeout-ms N]`. */
export function parseWorkerArgs(argv: readonly string[]): WorkerOptions {
  const values = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--') || i + 1 >= argv.length) throw new Error(`proxy worker: bad argument "${a}"`);
    values.set(a.slice(2), argv[++i]!);
  }
  const int = (name: string): number | undefined => {
    const v = values.get(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`proxy worker: --${name} must be a non-negative integer`);
    return n;
  };
  const port = int('port');
  if (port === undefined || port === 0 || port > 65535) throw new Error('proxy worker: --port is required');
  const opts: WorkerOptions = { worker: int('worker') ?? 0, port, listen: values.get('listen') ?? '127.0.0.1' };
  const pin = values.get('flows-pin');
  if (pin !== undefined) opts.flowsPin = pin;
  const fixed = values.get('fixed-destination');
  if (fixed !== undefined) {
    const colon = fixed.lastIndexOf(':');
    const address = fixed.slice(0, colon).replace(/^\[|\]$/g, '');
    opts.fixedDestination = { address, port: Number(fixed.slice(colon + 1)), family: net.isIPv6(address) ? 6 : 4 };
    opts.fixedFlow = JSON.parse(values.get('fixed-flow') ?? 'null') as ProxyFlow;
    if (!opts.fixedFlow) throw new Error('proxy worker: --fixed-destination needs --fixed-flow');
  }
  const h = int('header-timeout-ms');
  if (h !== undefined) opts.headerTimeoutMs = h;
  const idle = int('idle-timeout-ms');
  if (idle !== undefined) opts.idleTimeoutMs = idle;
  const r = int('response-timeout-ms');
  if (r !== undefined) opts.responseTimeoutMs = r;
  const pinCpu = int('pin-cpu');
  if (pinCpu !== undefined) opts.pinCpu = pinCpu !== 0;
  return opts;
}

interface ProxyMapsModule {
  ProxyFlowMap: { openPinned(path: string): FlowSource };
}

/** The datapath's flow map, loaded only when asked for (src/datapath/proxy-maps.ts). */
async function pinnedFlows(path: string): Promise<FlowSource> {
  const spec = '../datapath/proxy-maps.js';
  const mod = (await import(spec)) as ProxyMapsModule;
  return mod.ProxyFlowMap.openPinned(path);
}

const NO_FLOWS: FlowSource = { lookup: () => undefined };

const EVENT_BATCH_MS = 50;
const STATS_MS = 1000;
const MAX_PENDING_EVENTS = 10_000;

export interface WorkerChannel {
  send?: (message: ProxyReport) => boolean;
  connected?: boolean;
  on(event: 'message', listener: (message: ProxyCommand) => void): unknown;
  on(event: 'disconnect', listener: () => void): unknown;
}

/** Runs a worker until shutdown or the loss of its IPC channel; never returns normally. */
export async function runWorker(opts: WorkerOptions, channel: WorkerChannel = process as unknown as WorkerChannel): Promise<void> {
  const send = (report: ProxyReport): void => {
    if (channel.connected && channel.send) channel.send(report);
  };
  const relayOpts: RelayOptions = { flows: NO_FLOWS };
  if (opts.fixedDestination && opts.fixedFlow) {
    const dest = opts.fixedDestination;
    const flow = opts.fixedFlow;
    relayOpts.flows = { lookup: () => flow };
    relayOpts.originalDestination = () => dest;
    relayOpts.connectUpstream = plainUpstream;
  } else if (opts.flowsPin !== undefined) relayOpts.flows = await pinnedFlows(opts.flowsPin);
  if (opts.headerTimeoutMs !== undefined) relayOpts.headerTimeoutMs = opts.headerTimeoutMs;
  if (opts.idleTimeoutMs !== undefined) relayOpts.idleTimeoutMs = opts.idleTimeoutMs;
  if (opts.responseTimeoutMs !== undefined) relayOpts.responseTimeoutMs = opts.responseTimeoutMs;
  const relay = new Relay(relayOpts);
  const worker = opts.worker;

  let events: L7Event[] = [];
  let flushTimer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    flushTimer = undefined;
    if (events.length === 0) return;
    send({ type: 'events', worker, events });
    events = [];
  };
  relay.onEvent = (e) => {
    if (events.length >= MAX_PENDING_EVENTS) return; // a watcher this slow loses events, the proxy does not slow down
    events.push(e);
    flushTimer ??= setTimeout(flush, EVENT_BATCH_MS);
  };
  const statsTimer = setInterval(() => send({ type: 'stats', worker, stats: { ...relay.stats } }), STATS_MS);

  const server = relay.createServer();
  let stopping = false;
  const shutdown = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    server.close();
    await relay.drain(5_000);
    flush();
    send({ type: 'stats', worker, stats: { ...relay.stats } });
    clearInterval(statsTimer);
    relay.close();
    process.exit(0);
  };

  channel.on('message', (cmd: ProxyCommand) => {
    switch (cmd.type) {
      case 'policy':
        relay.setPolicy(cmd.table);
        send({ type: 'applied', worker, revision: cmd.table.revision });
        return;
      case 'monitor':
        relay.monitoring = cmd.enabled;
        return;
      case 'shutdown':
        void shutdown();
        return;
    }
  });
  // The agent died (or dropped us): nobody can update our policy, so stop at once.
  channel.on('disconnect', () => process.exit(0));

  if (opts.pinCpu !== false) {
    // Each worker stays on a core of its own: two workers never queue
    // behind each other on one CPU, which is what a request's tail latency feels.
    const cpus = allowedCpus();
    pinToCpu(cpus[opts.worker % cpus.length]!);
  }
  const fd = transparentListener(opts.listen, opts.port, { reusePort: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ fd }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  send({ type: 'ready', worker, pid: process.pid });
}
