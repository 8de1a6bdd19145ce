/**
 * The baseline of issue 5's new-connection figures: kube-proxy's iptables
 * mode, with iptables-nft and iptables-legacy, at 1 to 100,000 services.
 *
 * Topology (one per measurement, its own namespaces, deleted at the end):
 *
 *   client 10.200.1.2 ── 10.200.1.1 [router/LB] 10.200.2.1 ── backend 10.200.2.2, .3
 *
 * The router stands where kube-proxy's rules are for pod traffic: the node,
 * which forwards between pods; nat PREROUTING jumps to KUBE-SERVICES there.
 * A Tendril measurement has the same shape (client pod, node, backend pod),
 * so the same connectionCost() calls measure both.
 *
 * The rules are laid out as kube-proxy (iptables mode, v1.2x) writes them,
 * loaded in one iptables-restore: per service one KUBE-SERVICES rule
 * (-d VIP/32 -p tcp --dport P -j KUBE-SVC-...), in the KUBE-SVC chain a
 * mark-for-masquerade rule for traffic from outside the pod range and one
 * jump per endpoint (-m statistic --mode random --probability 1/k for all but
 * the last), in each KUBE-SEP chain a hairpin masquerade mark and the DNAT;
 * KUBE-MARK-MASQ, KUBE-POSTROUTING and the trailing KUBE-NODEPORTS rule as
 * kube-proxy has them. 10.96.0.0/16 holds 65,534 VIPs; past that, services
 * share VIPs on different ports (VIP x port), as services with many ports do.
 * The service measured is the last one added: the last KUBE-SERVICES rule,
 * which a new connection to it reaches after a walk past all the others.
 *
 * Latency and rate as bench/conn-latency.ts defines them. The baseline is the
 * same client to the backend's own address with no rules loaded (measured
 * before the rules are loaded and again after they are removed). With the
 * rules loaded, direct connections are measured too: every new connection
 * through the node walks KUBE-SERVICES, service or not.
 *
 * Measured here (2 endpoints per service; p50 added to a new connection,
 * direct p50 40-75 us; load = iptables-restore of the whole table):
 *   services   nft: added / load      legacy: added / load
 *   1          ~0 us / 12 ms          ~8 us / 8 ms
 *   1,000      23 us / 0.2 s          11 us / 0.07 s
 *   10,000     165 us / 2.4 s         36 us / 0.84 s
 *   100,000    1.9 ms / 133 s         1.1 ms / 40 s (p99 8.6 ms and 6 ms)
 * Direct connections with the rules loaded pay nearly the same: the cost is
 * the linear walk of KUBE-SERVICES on the first packet, service or not.
 */
import { performance } from 'node:perf_hooks';
import { Topology, must, sh } from '../test/harness/topology.js';
import { compareConnectionCost, connectionCost, startConnServer, type ConnOptions, type ConnStats } from './conn-latency.js';
import { median } from './stats.js';

export type IptablesVariant = 'nft' | 'legacy';

/** The pod range (kube-proxy's --cluster-cidr) and the port every backend listens on. */
const CLUSTER_CIDR = '10.200.0.0/16';
export const BACKEND_PORT = 8080;
const MAX_VIPS = 65_000;

export interface Frontend {
  vip: string;
  port: number;
}

/** Service i of `services`: a VIP in 10.96.0.0/16 and a port, distinct for every i. */
export function serviceFrontend(i: number, services: number): Frontend {
  const portsPerVip = Math.ceil(services / MAX_VIPS);
  const v = Math.floor(i / portsPerVip) + 1;
  return { vip: `10.96.${v >> 8}.${v & 255}`, port: 80 + (i % portsPerVip) };
}

const chainId = (n: number) => n.toString(36).toUpperCase().padStart(16, '0');

/** Endpoints of services other than the measured one: pod addresses nobody has, spread over the pod range. */
function fakeEndpoint(k: number): string {
  return `10.200.${4 + (Math.floor(k / 254) % 250)}.${1 + (k % 254)}`;
}

export interface KubeProxyRules {
  /** iptables-restore input for the nat table. */
  text: string;
  /** -A lines in it. */
  rules: number;
  chains: number;
  /** The service measured: the last one. */
  last: Frontend;
}

/**
 * kube-proxy's nat table for `services` services of `endpointsPerService`
 * endpoints each; the last service's endpoints are `lastEndpoints` (real
 * backends), the others' are addresses nobody has.
 */
export function kubeProxyRules(services: number, endpointsPerService: number, lastEndpoints: string[]): KubeProxyRules {
  if (!Number.isInteger(services) || services < 1 || services > 65_000 * 400)
    throw new Error(`kubeProxyRules: services must be an integer from 1 to ${65_000 * 400}, got ${services}`);
  if (lastEndpoints.length !== endpointsPerService)
    throw new Error(`kubeProxyRules: the last service needs ${endpointsPerService} endpoints, got ${lastEndpoints.length}`);
  const decl: string[] = ['*nat', ':PREROUTING ACCEPT [0:0]', ':INPUT ACCEPT [0:0]', ':OUTPUT ACCEPT [0:0]', ':POSTROUTING ACCEPT [0:0]'];
  for (const c of ['KUBE-SERVICES', 'KUBE-NODEPORTS', 'KUBE-POSTROUTING', 'KUBE-MARK-MASQ']) decl.push(`:${c} - [0:0]`);
  const rules: string[] = [
    '-A PREROUTING -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A OUTPUT -m comment --comment "kubernetes service portals" -j KUBE-SERVICES',
    '-A POSTROUTING -m comment --comment "kubernetes postrouting rules" -j KUBE-POSTROUTING',
    '-A KUBE-MARK-MASQ -j MARK --set-xmark 0x4000/0x4000',
    '-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN',
    '-A KUBE-POSTROUTING -j MARK --set-xmark 0x4000/0x0',
    '-A KUBE-POSTROUTING -m comment --comment "kubernetes service traffic requiring SNAT" -j MASQUERADE --random-fully',
  ];
  const portals: string[] = [];
  let last: Frontend = { vip: '', port: 0 };
  for (let i = 0; i < services; i++) {
    const fe = serviceFrontend(i, services);
    last = fe;
    const name = `bench/svc-${i}:http`;
    const svc = `KUBE-SVC-${chainId(i)}`;
    decl.push(`:${svc} - [0:0]`);
    portals.push(`-A KUBE-SERVICES -d ${fe.vip}/32 -p tcp -m comment --comment "${name} cluster IP" -m tcp --dport ${fe.port} -j ${svc}`);
    rules.push(`-A ${svc} ! -s ${CLUSTER_CIDR} -d ${fe.vip}/32 -p tcp -m comment --comment "${name} cluster IP" -m tcp --dport ${fe.port} -j KUBE-MARK-MASQ`);
    for (let e = 0; e < endpointsPerService; e++) {
      const k = i * endpointsPerService + e;
      const ep = i === services - 1 ? lastEndpoints[e]! : fakeEndpoint(k);
      const sep = `KUBE-SEP-${chainId(k)}`;
      decl.push(`:${sep} - [0:0]`);
      const left = endpointsPerService - e;
      const pick = left > 1 ? ` -m statistic --mode random --probability ${(1 / left).toFixed(11)}` : '';
      rules.push(`-A ${svc} -m comment --comment "${name} -> ${ep}:${BACKEND_PORT}"${pick} -j ${sep}`);
      rules.push(`-A ${sep} -s ${ep}/32 -m comment --comment "${name}" -j KUBE-MARK-MASQ`);
      rules.push(`-A ${sep} -p tcp -m comment --comment "${name}" -m tcp -j DNAT --to-destination ${ep}:${BACKEND_PORT}`);
    }
  }
  portals.push('-A KUBE-SERVICES -m comment --comment "kubernetes service nodeports; NOTE: this must be the last rule in this chain" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS');
  const all = [...rules, ...portals];
  return { text: `${decl.join('\n')}\n${all.join('\n')}\nCOMMIT\n`, rules: all.length, chains: decl.length - 5, last };
}

export interface LbTopology {
  topo: Topology;
  client: { netnsPath: string; ipv4: string };
  /** Where a load balancer between them lives (for iptables: the rules). */
  router: { netnsPath: string };
  backend: { netnsPath: string; ipv4s: string[] };
}

/** client ── router ── backend (two addresses), routed, nothing else. */
export async function routedLbTopology(topo: Topology, tag: string, backendAddresses = 2): Promise<LbTopology> {
  const router = `/run/netns/${await topo.addNamespace(`${tag}-lb`)}`;
  const client = `/run/netns/${await topo.addNamespace(`${tag}-cl`)}`;
  const backend = `/run/netns/${await topo.addNamespace(`${tag}-be`)}`;
  const ipv4s = Array.from({ length: backendAddresses }, (_, i) => `10.200.2.${2 + i}`);
  const legs: Array<[string, number, string[]]> = [
    [client, 1, ['10.200.1.2']],
    [backend, 2, ipv4s],
  ];
  for (const [ns, n, addrs] of legs) {
    await must(['ip', 'link', 'add', `leg${n}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns], { netns: router });
    await must(['ip', '-batch', '-'], { netns: router, input: `addr add 10.200.${n}.1/24 dev leg${n}\nlink set leg${n} up\n` });
    await must(['ip', '-batch', '-'], { netns: ns, input: `${addrs.map((a) => `addr add ${a}/24 dev eth0\n`).join('')}link set eth0 up\nroute add default via 10.200.${n}.1\n` });
  }
  await must(['sysctl', '-qw', 'net.ipv4.ip_forward=1'], { netns: router });
  await must(['ping', '-c', '1', '-W', '2', ipv4s[0]!], { netns: client });
  return { topo, client: { netnsPath: client, ipv4: '10.200.1.2' }, router: { netnsPath: router }, backend: { netnsPath: backend, ipv4s } };
}

const restoreBin = (v: IptablesVariant) => `iptables-${v}-restore`;
const saveBin = (v: IptablesVariant) => `iptables-${v}-save`;

/** Replaces the nat table of `netnsPath` with `text` in one iptables-restore; ms it took. */
export async function loadIptables(netnsPath: string, variant: IptablesVariant, text: string): Promise<number> {
  const t = performance.now();
  await must([restoreBin(variant)], { netns: netnsPath, input: text, timeoutMs: 30 * 60_000 });
  return performance.now() - t;
}

/** Empties the nat table of `netnsPath` (rules and chains); ms it took. */
export async function removeIptables(netnsPath: string, variant: IptablesVariant): Promise<number> {
  const t = performance.now();
  await must([restoreBin(variant)], { netns: netnsPath, input: '*nat\nCOMMIT\n', timeoutMs: 30 * 60_000 });
  return performance.now() - t;
}

/** -A lines of the nat table in `netnsPath`, as iptables-save lists them. */
export async function natRuleCount(netnsPath: string, variant: IptablesVariant): Promise<number> {
  const r = await sh([saveBin(variant), '-t', 'nat'], { netns: netnsPath, timeoutMs: 30 * 60_000 });
  if (r.code !== 0) throw new Error(`${saveBin(variant)} -t nat exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout.split('\n').filter((l) => l.startsWith('-A ')).length;
}

export interface IptablesConnCostOptions extends ConnOptions {
  services: number;
  variant: IptablesVariant;
  /** Endpoints of every service (default 2). */
  endpointsPerService?: number;
  /** Measurement runs of each kind, medians reported (default 3). */
  runs?: number;
  /** Called with a line of progress. */
  note?: (s: string) => void;
}

export interface IptablesConnCost {
  services: number;
  variant: IptablesVariant;
  rules: number;
  chains: number;
  /** iptables-restore of the whole nat table. */
  loadMs: number;
  /** Emptying it again. */
  removeMs: number;
  /** New connections per second to the last service, and straight to the backend with no rules. */
  setupPerSec: number;
  directSetupPerSec: number;
  p50Us: number;
  p99Us: number;
  directP50Us: number;
  directP99Us: number;
  /** p50Us - directP50Us: what the rules add to a new connection. */
  addedUs: number;
  addedP99Us: number;
  /** Straight to the backend with the rules loaded: every new connection walks KUBE-SERVICES. */
  directWithRulesP50Us: number;
  lb: ConnStats;
  direct: ConnStats;
  directWithRules: ConnStats;
}

/**
 * kube-proxy's rules for `services` services loaded with iptables-`variant`
 * in a topology of its own; the last service's connection cost beside the
 * direct path. Everything it made is gone when it returns or throws.
 */
export async function iptablesConnCost(o: IptablesConnCostOptions): Promise<IptablesConnCost> {
  const E = o.endpointsPerService ?? 2;
  const runs = o.runs ?? 3;
  const topo = Topology.create();
  try {
    const t = await routedLbTopology(topo, `ipt${o.variant}`, E);
    const server = await startConnServer(t.backend.netnsPath, BACKEND_PORT);
    try {
      const direct = { host: t.backend.ipv4s[0]!, port: BACKEND_PORT };
      const directRuns: ConnStats[] = [];
      for (let i = 0; i < runs; i++) directRuns.push(await connectionCost(t.client.netnsPath, direct.host, direct.port, o));

      const rules = kubeProxyRules(o.services, E, t.backend.ipv4s);
      o.note?.(`iptables-${o.variant}: loading ${o.services} services (${rules.rules} rules, ${rules.chains} chains, ${(rules.text.length / 1e6).toFixed(1)} MB)`);
      const loadMs = await loadIptables(t.router.netnsPath, o.variant, rules.text);
      o.note?.(`iptables-${o.variant}: loaded in ${loadMs.toFixed(0)} ms; measuring ${rules.last.vip}:${rules.last.port}`);
      const cmp = await compareConnectionCost(t.client.netnsPath, { host: rules.last.vip, port: rules.last.port }, direct, { ...o, runs });
      const removeMs = await removeIptables(t.router.netnsPath, o.variant);

      for (let i = 0; i < runs; i++) directRuns.push(await connectionCost(t.client.netnsPath, direct.host, direct.port, o));
      const pick = (k: keyof ConnStats) => median(directRuns.map((r) => r[k]));
      const directStats = Object.fromEntries((Object.keys(directRuns[0]!) as Array<keyof ConnStats>).map((k) => [k, pick(k)])) as unknown as ConnStats;
      return {
        services: o.services,
        variant: o.variant,
        rules: rules.rules,
        chains: rules.chains,
        loadMs,
        removeMs,
        setupPerSec: cmp.lb.perSec,
        directSetupPerSec: directStats.perSec,
        p50Us: cmp.lb.p50Us,
        p99Us: cmp.lb.p99Us,
        directP50Us: directStats.p50Us,
        directP99Us: directStats.p99Us,
        addedUs: cmp.lb.p50Us - directStats.p50Us,
        addedP99Us: cmp.lb.p99Us - directStats.p99Us,
        directWithRulesP50Us: cmp.direct.p50Us,
        lb: cmp.lb,
        direct: directStats,
        directWithRules: cmp.direct,
      };
    } finally {
      await server.stop();
    }
  } finally {
    await topo.dispose();
  }
}
