/**
 * L7 proxy throughput and latency over loopback: wrk keep-alive load of
 * allowed requests (POST /v1/request-landing) straight to the backend, through
 * Tendril's proxy workers (test mode: a fixed flow and destination, no
 * steering), and through HAProxy 2.6 with the same ACL (nbthread 2). The
 * backend is HAProxy itself answering with `http-request return` (one thread),
 * so the backend costs the same in every row and little CPU.
 * Run alone: node dist/bench/l7-proxy.js [--seconds N] [--connections N] [--runs N]
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { L7PolicyTable, ProxyFlow } from '../src/common/l7-policy.js';
import { ProxySupervisor } from '../src/proxy/supervisor.js';
import { median } from './stats.js';

export interface L7BenchOptions {
  seconds?: number;
  connections?: number;
  /** Runs per row, taken in turns; medians reported. */
  runs?: number;
  workers?: number;
  haproxy?: string;
}

export interface L7BenchRow {
  name: string;
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

const run = promisify(execFile);

const FLOW: ProxyFlow = { srcIdentity: 1000, dstIdentity: 2000, srcEndpoint: 0, dstEndpoint: 7, egress: false, ingress: true };
const POLICY: L7PolicyTable = {
  revision: 1,
  ruleNames: { 1: 'bench ingress[0]' },
  endpoints: [{ endpointId: 7, entries: [{ direction: 'ingress', identity: 0, firstPort: 1, lastPort: 65535, ruleId: 1, rules: [{ method: 'POST', path: '/v1/request-landing' }] }] }],
};

function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

async function wrk(url: string, script: string, seconds: number, connections: number): Promise<Omit<L7BenchRow, 'name'>> {
  const { stdout } = await run('wrk', ['-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, url]);
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const p50 = ms(/\s50%\s+(\S+)/.exec(stdout)?.[1] ?? '');
  const p99 = ms(/\s99%\s+(\S+)/.exec(stdout)?.[1] ?? '');
  if (/Non-2xx/.test(stdout)) throw new Error(`l7 bench: non-2xx responses from ${url}:\n${stdout}`);
  return { rps, p50Ms: p50, p99Ms: p99 };
}

async function waitPort(port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v1/request-landing`, { method: 'POST', body: 'x' });
      await res.text();
      return;
    } catch {
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`nothing listens on ${port}`);
}

export async function l7ProxyBench(opts: L7BenchOptions = {}): Promise<L7BenchRow[]> {
  const seconds = opts.seconds ?? 5;
  const connections = opts.connections ?? 32;
  const runs = opts.runs ?? 3;
  const haproxy = opts.haproxy ?? '/usr/sbin/haproxy';
  const dir = mkdtempSync(join(tmpdir(), 'tnd-l7bench-'));
  const base = 30000 + Math.floor(Math.random() * 20000);
  const backendPort = base;
  const haproxyPort = base + 1;
  const tendrilPort = base + 2;
  const script = join(dir, 'post.lua');
  writeFileSync(script, 'wrk.method = "POST"\nwrk.body = "hello"\nwrk.headers["Content-Type"] = "text/plain"\n');
  const backendCfg = join(dir, 'backend.cfg');
  writeFileSync(
    backendCfg,
    `global\n  nbthread 1\ndefaults\n  mode http\n  timeout client 30s\n  timeout server 30s\n  timeout connect 5s\n` +
      `frontend backend\n  bind 127.0.0.1:${backendPort}\n  http-request return status 200 content-type text/plain string "Ship landed"\n`,
  );
  const proxyCfg = join(dir, 'proxy.cfg');
  writeFileSync(
    proxyCfg,
    `global\n  nbthread 2\ndefaults\n  mode http\n  timeout client 30s\n  timeout server 30s\n  timeout connect 5s\n  option http-keep-alive\n` +
      `frontend l7\n  bind 127.0.0.1:${haproxyPort}\n  acl landing path /v1/request-landing\n  acl post method POST\n` +
      `  http-request deny deny_status 403 unless post landing\n  default_backend app\n` +
      `backend app\n  http-reuse always\n  server s1 127.0.0.1:${backendPort}\n`,
  );
  const procs: ChildProcess[] = [];
  const sup = new ProxySupervisor({
    port: tendrilPort,
    ...(opts.workers !== undefined ? { workers: opts.workers } : {}),
    extraArgs: ['--fixed-destination', `127.0.0.1:${backendPort}`, '--fixed-flow', JSON.stringify(FLOW)],
  });
  try {
    procs.push(spawn(haproxy, ['-db', '-f', backendCfg], { stdio: 'ignore' }));
    procs.push(spawn(haproxy, ['-db', '-f', proxyCfg], { stdio: 'ignore' }));
    await sup.start();
    await sup.setPolicy(POLICY);
    await Promise.all([waitPort(backendPort), waitPort(haproxyPort), waitPort(tendrilPort)]);
    const targets: Array<[string, number]> = [
      ['direct (HAProxy backend)', backendPort],
      ['via Tendril proxy workers', tendrilPort],
      ['via HAProxy 2.6 ACL, nbthread 2', haproxyPort],
    ];
    const results = new Map<string, Array<Omit<L7BenchRow, 'name'>>>();
    // Warm-up (JIT, pools), then rows in turns so drift hits each alike.
    await wrk(`http://127.0.0.1:${tendrilPort}/v1/request-landing`, script, 1, connections);
    for (let r = 0; r < runs; r++)
      for (const [name, port] of targets) {
        const res = await wrk(`http://127.0.0.1:${port}/v1/request-landing`, script, seconds, connections);
        results.set(name, [...(results.get(name) ?? []), res]);
      }
    return targets.map(([name]) => {
      const rs = results.get(name)!;
      return { name, rps: median(rs.map((x) => x.rps)), p50Ms: median(rs.map((x) => x.p50Ms)), p99Ms: median(rs.map((x) => x.p99Ms)) };
    });
  } finally {
    await sup.stop();
    for (const p of procs) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const arg = (name: string): number | undefined => {
    const i = process.argv.indexOf(`--${name}`);
    return i >= 0 ? Number(process.argv[i + 1]) : undefined;
  };
  const opts: L7BenchOptions = {};
  const s = arg('seconds');
  if (s !== undefined) opts.seconds = s;
  const c = arg('connections');
  if (c !== undefined) opts.connections = c;
  const n = arg('runs');
  if (n !== undefined) opts.runs = n;
  const w = arg('workers');
  if (w !== undefined) opts.workers = w;
  const rows = await l7ProxyBench(opts);
  for (const r of rows) process.stdout.write(`${r.name.padEnd(34)} ${r.rps.toFixed(0).padStart(8)} req/s   p50 ${r.p50Ms.toFixed(2)} ms   p99 ${r.p99Ms.toFixed(2)} ms\n`);
}
