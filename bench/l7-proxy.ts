/**
 * L7 proxy throughput and latency in the pod topology: wrk keep-alive load of
 * allowed requests (POST /v1/request-landing) from a client pod to a
 * "deathstar" pod, four ways, taken in turns: direct (no policy), through
 * Tendril's proxy with its default workers (an L7 policy with that one allow
 * rule: the datapath steers the flow into the agent's proxy workers, and its
 * connections go socket to socket; once more at the end with them through
 * TCP/IP, --no-proxy-redirect), and
 * through HAProxy 2.6 in the node with the equivalent ACL (allow POST
 * /v1/request-landing, deny the rest with 403), once with its default threads
 * (one per CPU) and once with one thread. The backend in the deathstar pod is HAProxy itself
 * answering with `http-request return` (one thread), so it costs the same in
 * every row and little CPU: the proxies are what is measured.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { must, sleep, type Node, type Topology } from '../test/harness/topology.js';
import { median } from './stats.js'; 

export interface L7BenchOptions {
  seconds?: number;
  connections?: number;
  /** Runs per row, taken in turns; medians reported. */
  runs?: number;
}

export interface L7BenchRow {
  rps: number;
  p50Ms: number;
  p99Ms: number;
}

export interface L7BenchResult {
  direct: L7BenchRow;
  tendril: L7BenchRow;
  /** Tendril's proxy with its connections through TCP/IP (agent --no-proxy-redirect), taken after the other rows. */
  tendrilTcp: L7BenchRow;
  /** HAProxy with its default thread count (one per CPU). */
  haproxy: L7BenchRow;
  /** HAProxy with one thread. */
  haproxy1: L7BenchRow;
}

/** The address HAProxy listens on in the node (on lo): port 8080 with its default threads, 8081 with one. */
const HAPROXY_ADDR = '10.199.0.1';

const POLICY = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l7-bench}
spec:
  endpointSelector: {matchLabels: {class: deathstar}}
  ingress:
  - fromEndpoints: [{matchLabels: {class: tiefighter}}]
    toPorts:
    - ports: [{port: "80", protocol: TCP}]
      rules:
        http:
        - {method: POST, path: /v1/request-landing}
`;

function ms(text: string): number {
  const m = /^([\d.]+)(us|ms|s)$/.exec(text.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === 'us' ? v / 1000 : m[2] === 's' ? v * 1000 : v;
}

async function wrk(netns: string, url: string, script: string, seconds: number, connections: number): Promise<L7BenchRow> {
  const stdout = await must(['wrk', '-t1', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, url], { netns, timeoutMs: (seconds + 30) * 1000 });
  if (/Non-2xx/.test(stdout)) throw new Error(`l7 bench: non-2xx responses from ${url}:\n${stdout}`);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]),
    p50Ms: ms(/\s50%\s+(\S+)/.exec(stdout)?.[1] ?? ''),
    p99Ms: ms(/\s99%\s+(\S+)/.exec(stdout)?.[1] ?? ''),
  };
}

async function waitHttp(netns: string, url: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const out = await must(['curl', '-s', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', '1', '-X', 'POST', url], { netns }).catch(() => '');
    if (out === '200') return;
    await sleep(100);
  }
  throw new Error(`l7 bench: ${url} does not answer`);
}

export async function l7ProxyBench(topo: Topology, node: Node, opts: L7BenchOptions = {}): Promise<L7BenchResult> {
  const seconds = opts.seconds ?? 5;
  const connections = opts.connections ?? 32;
  const runs = opts.runs ?? 3;
  const client = await topo.addPod(node, 'l7-tiefighter', 'class=tiefighter');
  const server = await topo.addPod(node, 'l7-deathstar', 'class=deathstar');
  const script = join(topo.dir, 'l7-post.lua');
  writeFileSync(script, 'wrk.method = "POST"\nwrk.body = "hello"\nwrk.headers["Content-Type"] = "text/plain"\n');
  const backendCfg = join(topo.dir, 'l7-backend.cfg');
  writeFileSync(
    backendCfg,
    `global\n  nbthread 1\ndefaults\n  mode http\n  timeout client 30s\n  timeout server 30s\n  timeout connect 5s\n` +
      `frontend backend\n  bind :80\n  http-request return status 200 content-type text/plain string "Ship landed"\n`,
  );
  const haproxyCfg = (name: string, port: number, global: string): string => {
    const file = join(topo.dir, `l7-${name}.cfg`);
    writeFileSync(
      file,
      `global\n${global}defaults\n  mode http\n  timeout client 30s\n  timeout server 30s\n  timeout connect 5s\n  option http-keep-alive\n` +
        `frontend l7\n  bind ${HAPROXY_ADDR}:${port}\n  acl landing path /v1/request-landing\n  acl post method POST\n` +
        `  http-request deny deny_status 403 unless post landing\n  default_backend app\n` +
        `backend app\n  http-reuse always\n  server s1 ${server.ipv4}:80\n`,
    );
    return file;
  };
  const proxyCfg = haproxyCfg('haproxy', 8080, '');
  const proxy1Cfg = haproxyCfg('haproxy1', 8081, '  nbthread 1\n');
  const policyFile = join(topo.dir, 'l7-bench.yaml');
  writeFileSync(policyFile, POLICY);
  await must(['ip', 'addr', 'add', `${HAPROXY_ADDR}/32`, 'dev', 'lo'], { netns: node.netnsPath });
  topo.spawnIn(server.netnsPath, ['haproxy', '-db', '-f', backendCfg]);
  topo.spawnIn(node.netnsPath, ['haproxy', '-db', '-f', proxyCfg]);
  topo.spawnIn(node.netnsPath, ['haproxy', '-db', '-f', proxy1Cfg]);
  const direct = `http://${server.ipv4}/v1/request-landing`;
  const viaHaproxy = `http://${HAPROXY_ADDR}:8080/v1/request-landing`;
  const viaHaproxy1 = `http://${HAPROXY_ADDR}:8081/v1/request-landing`;
  await waitHttp(client.netnsPath, direct);
  await waitHttp(client.netnsPath, viaHaproxy);
  await waitHttp(client.netnsPath, viaHaproxy1);

  const policy = async (on: boolean) => {
    const r = await node.cli(on ? ['policy', 'import', policyFile] : ['policy', 'delete', '--all']);
    if (r.code !== 0) throw new Error(`l7 bench: policy ${on ? 'import' : 'delete'} failed: ${r.stderr}`);
  };
  const results: Record<'direct' | 'tendril' | 'haproxy' | 'haproxy1', L7BenchRow[]> = { direct: [], tendril: [], haproxy: [], haproxy1: [] };
  // Warm-up of the proxy workers (JIT, upstream pool).
  await policy(true);
  await wrk(client.netnsPath, direct, script, 1, connections);
  for (let r = 0; r < runs; r++) {
    await policy(false);
    results.direct.push(await wrk(client.netnsPath, direct, script, seconds, connections));
    results.haproxy.push(await wrk(client.netnsPath, viaHaproxy, script, seconds, connections));
    results.haproxy1.push(await wrk(client.netnsPath, viaHaproxy1, script, seconds, connections));
    await policy(true);
    const before = (await node.client.status()).proxy?.requests ?? 0;
    results.tendril.push(await wrk(client.netnsPath, direct, script, seconds, connections));
    await sleep(1200); // workers report their counters once a second
    const after = (await node.client.status()).proxy?.requests ?? 0;
    if (after - before < results.tendril.at(-1)!.rps * seconds * 0.5) throw new Error(`l7 bench: the proxy saw ${after - before} requests, wrk sent more: not steered?`);
  }
  // The same proxy without socket redirection: an agent (and so proxy workers, with a new upstream pool) started with the flag.
  const tendrilTcp: L7BenchRow[] = [];
  await node.agent!.kill('SIGTERM');
  await node.startAgent(['--no-proxy-redirect']);
  try {
    await waitHttp(client.netnsPath, direct);
    await wrk(client.netnsPath, direct, script, 1, connections);
    for (let r = 0; r < runs; r++) tendrilTcp.push(await wrk(client.netnsPath, direct, script, seconds, connections));
    if ((await node.client.status()).proxyRedirect) throw new Error('l7 bench: the agent started with --no-proxy-redirect still redirects');
  } finally {
    await node.agent!.kill('SIGTERM');
    await node.startAgent();
  }
  await policy(false);
  const summary = (rows: L7BenchRow[]): L7BenchRow => ({ rps: median(rows.map((x) => x.rps)), p50Ms: median(rows.map((x) => x.p50Ms)), p99Ms: median(rows.map((x) => x.p99Ms)) });
  return { direct: summary(results.direct), tendril: summary(results.tendril), tendrilTcp: summary(tendrilTcp), haproxy: summary(results.haproxy), haproxy1: summary(results.haproxy1) };
}
