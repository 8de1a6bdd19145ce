/**
 * The cost of a new TCP connection, measured the same way for every row:
 * kube-proxy's iptables rules, Tendril's load balancer, and the same client
 * reaching the backend directly (no load balancer) in the same run.
 *
 * One connection, as bench/conn/connlat.c makes it: socket(), connect()
 * (handshake done), read the one byte the server sends on accept, close()
 * with a RST (no TIME_WAIT, so long runs keep their ephemeral ports).
 * Latency is socket() to that byte ("total"); the handshake alone is
 * reported beside it. Rate is sequential connections per second from one
 * client thread (or CONCURRENCY threads). The client and the server are a
 * small C program compiled here with clang-19. Measured here, client to
 * backend through a router netns, 5,000 connections, three runs:
 *   C client, C server      ~17,500 conn/s, p50 43 us, p99 82-245 us
 *   C client, Node server    6-10k conn/s,  p50 68-82 us, p99 0.3-2 ms
 *   Node client, C server    7-8k conn/s,   p50 62-75 us, p99 1.2-1.8 ms
 * Node on either side adds more per connection than small rule sets cost,
 * and its pauses own the p99; the C pair leaves the kernel's work visible.
 *
 * Where the load balancer is does not matter to these functions: they take
 * the client's netns and an address. A topology with iptables is built by
 * bench/lb-iptables.ts; one with Tendril is a node with pods (the lead's
 * harness), and the same two calls measure it.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../src/bpf/index.js';
import { must, sleep } from '../test/harness/topology.js';
import { median } from './stats.js';

export interface ConnStats {
  /** Connections recorded (warm-up ones not counted). */
  connections: number;
  errors: number;
  timeouts: number;
  seconds: number;
  /** New connections per second, one after the other per client thread. */
  perSec: number;
  meanUs: number;
  p50Us: number;
  p90Us: number;
  p99Us: number;
  p999Us: number;
  maxUs: number;
  /** socket() to connect() returned: the handshake alone. */
  connectP50Us: number;
  connectP99Us: number;
}

export interface ConnOptions {
  /** Stop after this many recorded connections (default 5,000)... */
  count?: number;
  /** ...or after this many seconds, whichever comes first (default 3). */
  seconds?: number;
  /** Client threads, each connecting one after the other (default 1). */
  concurrency?: number;
  /** Unrecorded connections per thread first: neighbour entries, caches (default 50). */
  warmup?: number;
}

let toolPath: string | undefined;

/** build/bench/connlat, compiled from bench/conn/connlat.c when absent or older than its source. */
export function connTool(): string {
  if (toolPath) return toolPath;
  const root = repoRoot();
  const src = join(root, 'bench', 'conn', 'connlat.c');
  const out = join(root, 'build', 'bench', 'connlat');
  if (!existsSync(out) || statSync(out).mtimeMs < statSync(src).mtimeMs) {
    mkdirSync(join(root, 'build', 'bench'), { recursive: true });
    execFileSync('clang-19', ['-O2', '-Wall', '-Wextra', '-Werror', '-pthread', '-o', out, src], { stdio: ['ignore', 'inherit', 'inherit'] });
  }
  toolPath = out;
  return out;
}

/** A running connlat server; stop() kills it and waits for it to be gone. */
export interface ConnServer {
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts the connlat server in `netnsPath` on 0.0.0.0:`port` (every address of
 * the netns), one listener per thread; resolves once it listens.
 */
export async function startConnServer(netnsPath: string, port: number, threads = 1): Promise<ConnServer> {
  const child = spawn('nsenter', [`--net=${netnsPath}`, connTool(), 'serve', String(port), String(threads)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d) => (err += d));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const gone = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await gone;
  };
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`connlat server in ${netnsPath} did not listen within 5 s: ${err}`)), 5000);
      child.stdout!.once('data', () => {
        clearTimeout(timer);
        resolve();
      });
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`connlat server in ${netnsPath} exited ${code}: ${err.trim()}`));
      });
    });
  } catch (e) {
    await stop();
    throw e;
  }
  return { port, process: child, stop };
}

/**
 * New connections from `clientNetns` to host:port, one after the other,
 * bounded by count and time. Throws when no connection succeeded.
 */
export async function connectionCost(clientNetns: string, host: string, port: number, o: ConnOptions = {}): Promise<ConnStats> {
  const count = o.count ?? 5000;
  const seconds = o.seconds ?? 3;
  const argv = [connTool(), 'client', host, String(port), String(count), String(seconds), String(o.concurrency ?? 1), String(o.warmup ?? 50)];
  // The warm-up and a connection that times out (2 s) may run past `seconds`.
  const out = await must(argv, { netns: clientNetns, timeoutMs: (seconds + 30) * 1000 });
  const stats = JSON.parse(out) as ConnStats;
  if (stats.connections === 0) throw new Error(`no connection to ${host}:${port} from ${clientNetns} succeeded (${stats.errors} errors, ${stats.timeouts} timeouts)`);
  return stats;
}

export interface ConnComparison {
  /** Medians over runs of each field, through the load balancer. */
  lb: ConnStats;
  /** The same, straight to a backend. */
  direct: ConnStats;
  /** lb.p50Us - direct.p50Us: what the load balancer adds to a new connection. */
  addedUs: number;
  addedP99Us: number;
}

function medianStats(runs: ConnStats[]): ConnStats {
  const keys = Object.keys(runs[0]!) as Array<keyof ConnStats>;
  return Object.fromEntries(keys.map((k) => [k, median(runs.map((r) => r[k]))])) as unknown as ConnStats;
}

/**
 * Connection cost through a load balancer (`lb`: a service address) beside
 * the same client reaching a backend directly (`direct`), in turns so that
 * a noisy machine's drift hits both alike; medians of `runs` runs of each.
 */
export async function compareConnectionCost(
  clientNetns: string,
  lb: { host: string; port: number },
  direct: { host: string; port: number },
  o: ConnOptions & { runs?: number } = {},
): Promise<ConnComparison> {
  const l: ConnStats[] = [];
  const d: ConnStats[] = [];
  for (let i = 0; i < (o.runs ?? 3); i++) {
    d.push(await connectionCost(clientNetns, direct.host, direct.port, o));
    l.push(await connectionCost(clientNetns, lb.host, lb.port, o));
    await sleep(10);
  }
  const lbStats = medianStats(l);
  const directStats = medianStats(d);
  return { lb: lbStats, direct: directStats, addedUs: lbStats.p50Us - directStats.p50Us, addedP99Us: lbStats.p99Us - directStats.p99Us };
}
