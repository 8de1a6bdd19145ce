/**
 * `npm run bench`: every figure beside its baseline, measured in this one run,
 * printed as one table of medians and ratios. Runs as root; builds its own
 * namespaces and removes them.
 */
import { Topology } from '../test/harness/topology.js';
import { POLICY_SIZE, endpointProgramCost, policyCost } from './datapath-cost.js';
import { plainRoutedPair, requestResponse, tendrilPair, throughput } from './pod-to-pod.js';
import { addHundred, addOne, bareLinks } from './endpoint-add.js';
import { referenceCniTimes, tendrilCniTimes } from './cni.js';
import { importToEnforcement, policyAtScale } from './policy-import.js';
import { l7ProxyBench } from './l7-proxy.js';
import { iptablesConnCost, type IptablesConnCost } from './lb-iptables.js';
import { tendrilConnCost } from './lb-tendril.js';
import { KATRAN_LABEL, KATRAN_NS, xdpDropPps, xdpLbCost, xdpLbPps, xdpTxFloor, type XdpLbCost } from './xdp-lb.js';
import { median, printTable, type Row } from './stats.js';

const quick = process.argv.includes('--quick');
const note = (s: string) => process.stderr.write(`bench: ${s}\n`);

/** Runs both measurements in turns, so drift of a noisy machine hits both alike; medians of each. */
async function alternate(runs: number, tendril: () => Promise<number>, baseline: () => Promise<number>): Promise<{ tendril: number; baseline: number }> {
  const t: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < runs; i++) {
    t.push(await tendril());
    b.push(await baseline());
  }
  return { tendril: median(t), baseline: median(b) };
}

async function main(): Promise<void> {
  const rows: Row[] = [];

  note('endpoint program cost (BPF_PROG_TEST_RUN)');
  const cost = endpointProgramCost(quick ? 50 : 500);
  rows.push({ figure: 'endpoint program, established TCP packet', tendril: cost.tendril, baseline: cost.floor, baselineName: 'pass-through tc program', unit: 'ns/pkt', target: { ratio: 2, better: 'lower' } });

  note(`policy cost (BPF_PROG_TEST_RUN, ${POLICY_SIZE}-entry policies)`);
  const pol = policyCost(quick ? 50 : 500, quick ? 100 : 1000);
  const big = `${POLICY_SIZE / 1000}k-entry policy`;
  rows.push({ figure: `established TCP packet, ${big}`, tendril: pol.established.big, baseline: pol.established.allowAll, baselineName: 'allow-all policy', unit: 'ns/pkt', target: { ratio: 1.2, better: 'lower' } });
  rows.push({ figure: `new connection (SYN, 1 run each), ${big}`, tendril: pol.newConnection.big, baseline: pol.newConnection.allowAll, baselineName: 'allow-all policy', unit: 'ns/conn' });
  rows.push({ figure: `SYN denied by default (3 lookups), ${big}`, tendril: pol.denied.big, baseline: pol.denied.empty, baselineName: 'empty policy', unit: 'ns/pkt' });
  rows.push({ figure: `install a ${big} (new map + swap)`, tendril: pol.install.policy, baseline: pol.install.hashUpdates, baselineName: `${POLICY_SIZE} hash map updates`, unit: 'ms', target: { absolute: 100, better: 'lower' } });

  note('policy at scale: 1,000 rules, 100 endpoints, 10,000 identities');
  const scale = await policyAtScale(quick ? 1 : 5);
  rows.push({
    figure: `import+enforce ${scale.rules} rules, ${scale.endpoints} endpoints, ${scale.identities} identities (${scale.entries} map entries)`,
    tendril: scale.importMs,
    baseline: scale.baselineMs,
    baselineName: 'writing the same entries only',
    unit: 'ms',
    target: { absolute: 1000, better: 'lower' },
  });

  const topo = Topology.create();
  try {
    const node = await topo.addNode();
    const a = await topo.addPod(node, 'bench-a');
    const b = await topo.addPod(node, 'bench-b');
    const plain = await plainRoutedPair(topo);
    const runs = quick ? 1 : 5;
    const seconds = quick ? 1 : 3;

    note('pod-to-pod throughput (iperf3), alternating tendril and plain routing');
    const tput = await alternate(runs, () => throughput(topo, tendrilPair(a, b), 1, seconds), () => throughput(topo, plain, 1, seconds));
    rows.push({ figure: 'pod-to-pod TCP throughput (iperf3)', tendril: tput.tendril, baseline: tput.baseline, baselineName: 'plain kernel routing', unit: 'Gbit/s', target: { ratio: 1, better: 'higher' } });

    note('pod-to-pod request/response (sockperf ping-pong)');
    const rr = await alternate(runs, () => requestResponse(topo, tendrilPair(a, b), 1, seconds), () => requestResponse(topo, plain, 1, seconds));
    rows.push({ figure: 'pod-to-pod TCP request/response (64 B)', tendril: rr.tendril, baseline: rr.baseline, baselineName: 'plain kernel routing', unit: 'trans/s', target: { ratio: 1, better: 'higher' } });

    note('policy import to enforcement (first denied packet of a 1 ms UDP stream)');
    const lat = await importToEnforcement(topo, quick ? 3 : 10);
    rows.push({
      figure: 'policy import returned -> first packet denied',
      tendril: lat.afterReturnMs,
      baseline: lat.callMs,
      baselineName: 'the import call itself',
      unit: 'ms',
      target: { absolute: 100, better: 'lower' },
    });

    note('endpoint add: one, then 100 at once');
    const one = await addOne(topo, node, quick ? 3 : 10);
    const bareOne: number[] = [];
    for (let i = 0; i < (quick ? 3 : 10); i++) bareOne.push(await bareLinks(topo, 1, false));
    rows.push({ figure: 'add one endpoint, ready', tendril: one, baseline: median(bareOne), baselineName: 'bare veth+addresses+routes', unit: 'ms', target: { absolute: 50, better: 'lower' } });
    note('CNI: ADD and DEL through tendril-cni and through bridge + host-local');
    const cniSamples = quick ? 5 : 20;
    const cniTendril = await tendrilCniTimes(topo, node, cniSamples);
    const cniRef = await referenceCniTimes(topo, node, cniSamples);
    rows.push({ figure: 'CNI ADD (plugin exec to exit)', tendril: cniTendril.addMs, baseline: cniRef.addMs, baselineName: 'bridge + host-local', unit: 'ms', target: { ratio: 1, better: 'lower' } });
    rows.push({ figure: 'CNI DEL (plugin exec to exit)', tendril: cniTendril.delMs, baseline: cniRef.delMs, baselineName: 'bridge + host-local', unit: 'ms', target: { ratio: 1, better: 'lower' } });
    note('L7: HTTP keep-alive (wrk) direct, through the Tendril proxy, through HAProxy with the same ACL');
    const l7 = await l7ProxyBench(topo, node, { seconds: quick ? 2 : 5, runs: quick ? 1 : 3 });
    rows.push({ figure: 'HTTP req/s through the Tendril proxy (allow rule)', tendril: l7.tendril.rps, baseline: l7.direct.rps, baselineName: 'direct pod to pod', unit: 'req/s' });
    rows.push({ figure: 'HTTP req/s through HAProxy 2.6, same ACL (the peer, in the tendril column)', tendril: l7.haproxy.rps, baseline: l7.direct.rps, baselineName: 'direct pod to pod', unit: 'req/s' });
    rows.push({ figure: 'HTTP req/s, Tendril proxy vs HAProxy', tendril: l7.tendril.rps, baseline: l7.haproxy.rps, baselineName: 'HAProxy, same ACL, default threads', unit: 'req/s', target: { ratio: 1, better: 'higher' } });
    rows.push({ figure: 'HTTP p50 latency, Tendril proxy vs HAProxy', tendril: l7.tendril.p50Ms, baseline: l7.haproxy.p50Ms, baselineName: 'HAProxy, same ACL, default threads', unit: 'ms' });
    rows.push({ figure: 'HTTP p99 latency, Tendril proxy vs HAProxy', tendril: l7.tendril.p99Ms, baseline: l7.haproxy.p99Ms, baselineName: 'HAProxy, same ACL, default threads', unit: 'ms', target: { ratio: 1, better: 'lower' } });
    rows.push({ figure: 'HTTP req/s, Tendril proxy vs HAProxy with one thread', tendril: l7.tendril.rps, baseline: l7.haproxy1.rps, baselineName: 'HAProxy, same ACL, nbthread 1', unit: 'req/s' });
    rows.push({ figure: 'HTTP p99 latency, Tendril proxy vs HAProxy with one thread', tendril: l7.tendril.p99Ms, baseline: l7.haproxy1.p99Ms, baselineName: 'HAProxy, same ACL, nbthread 1', unit: 'ms' });
    rows.push({ figure: 'HTTP req/s, Tendril proxy with socket redirection vs without (--no-proxy-redirect)', tendril: l7.tendril.rps, baseline: l7.tendrilTcp.rps, baselineName: 'Tendril proxy, connections through TCP/IP', unit: 'req/s' });
    rows.push({ figure: 'HTTP req/s, Tendril proxy without socket redirection vs HAProxy', tendril: l7.tendrilTcp.rps, baseline: l7.haproxy.rps, baselineName: 'HAProxy, same ACL, default threads', unit: 'req/s' });
    rows.push({ figure: 'HTTP p50 / p99 latency direct (p99 in the baseline column)', tendril: l7.direct.p50Ms, baseline: l7.direct.p99Ms, baselineName: 'p99', unit: 'ms' });

    const counts = quick ? [1, 1000] : [1, 1000, 10_000, 100_000];
    note(`services: new-connection cost at ${counts.join(', ')} services, Tendril's socket LB and kube-proxy's iptables (nft, legacy)`);
    const conn = { runs: quick ? 1 : 3, seconds: quick ? 1 : 3, count: quick ? 1000 : 5000 };
    const tendril = await tendrilConnCost(topo, node, counts, { ...conn, note });
    const ipt: Record<'nft' | 'legacy', IptablesConnCost[]> = { nft: [], legacy: [] };
    for (const variant of ['nft', 'legacy'] as const) for (const n of counts) ipt[variant].push(await iptablesConnCost({ services: n, variant, ...conn, note }));
    for (const [i, n] of counts.entries()) {
      const t = tendril[i]!;
      const services = `${n.toLocaleString('en')} service${n === 1 ? '' : 's'}`;
      rows.push({ figure: `new connection p50 through a service, ${services}`, tendril: t.lb.p50Us, baseline: t.direct.p50Us, baselineName: 'direct to the backend', unit: 'us' });
      rows.push({ figure: `new connection p99 through a service, ${services}`, tendril: t.lb.p99Us, baseline: t.direct.p99Us, baselineName: 'direct to the backend', unit: 'us' });
      rows.push({ figure: `new connections/s (one client), ${services}`, tendril: t.lb.perSec, baseline: t.direct.perSec, baselineName: 'direct to the backend', unit: 'conn/s' });
      for (const variant of ['nft', 'legacy'] as const) {
        const r = ipt[variant][i]!;
        rows.push({ figure: `added cost per new connection (p50 - direct p50), ${services}`, tendril: t.addedUs, baseline: r.addedUs, baselineName: `kube-proxy iptables-${variant}`, unit: 'us', ...(variant === 'nft' && n === 10_000 ? { target: { ratio: 0.01, better: 'lower' as const } } : {}) });
        rows.push({ figure: `new connection p50 via kube-proxy iptables-${variant}, ${services} (the peer)`, tendril: r.p50Us, baseline: r.directP50Us, baselineName: 'direct to the backend', unit: 'us' });
      }
    }
    const first = tendril[0]!;
    const last = tendril.at(-1)!;
    rows.push({ figure: `new connection p50 through a service, ${last.services.toLocaleString('en')} vs 1 service (flatness)`, tendril: last.lb.p50Us, baseline: first.lb.p50Us, baselineName: '1 service', unit: 'us', target: { ratio: 1.1, better: 'lower' } });
    note('XDP_TX floor (BPF_PROG_TEST_RUN) and XDP_DROP on a veth (live frames, one CPU): the baselines of the XDP load balancer');
    const floor = xdpTxFloor({ iterations: quick ? 500 : 2000 });
    rows.push({ figure: 'XDP_TX-only program, one call per packet (the floor of an XDP LB)', tendril: floor.singleNs, baseline: floor.batchNs, baselineName: 'same, repeat=20000', unit: 'ns/pkt' });
    const drop = await xdpDropPps({ seconds: quick ? 0.5 : 2 });
    rows.push({ figure: 'XDP_DROP on a veth, live frames from one CPU (baseline of the XDP LB)', tendril: drop.pps, baseline: drop.generatorPps, baselineName: 'generator send rate', unit: 'pkt/s' });

    const repeat = quick ? 1_000_000 : 10_000_000;
    note(`XDP load balancer per packet: BPF_PROG_TEST_RUN through a restoring wrapper, repeat=${repeat.toLocaleString('en')}, median of 5, beside Katran's figures`);
    const lbc = xdpLbCostComparable(repeat, quick ? 1 : XDP_ATTEMPTS);
    const floorNote = `wrapper floor ${lbc.floor.toFixed(0)} ns, attempt ${lbc.attempt} of up to ${lbc.attempts}`;
    rows.push({ figure: `XDP LB: TCP SYN of a new flow, NodePort SNAT, the same SYN repeated as Katran was timed (Maglev choice, FWD and reply slots written, every repeat) (${floorNote})`, tendril: lbc.synNewFlow, baseline: KATRAN_NS.synNewFlow, baselineName: KATRAN_LABEL, unit: 'ns/pkt', target: { ratio: 1, better: 'lower' } });
    rows.push({ figure: `XDP LB: TCP SYN of a flow never seen, NodePort SNAT (its slots freed inside each repeat: an upper bound) (${floorNote})`, tendril: lbc.synNeverSeen, baseline: KATRAN_NS.synNewFlow, baselineName: `${KATRAN_LABEL} (its SYN row: a hot key, no frees)`, unit: 'ns/pkt' });
    rows.push({ figure: `XDP LB: TCP packet of an established flow (${floorNote})`, tendril: lbc.established, baseline: KATRAN_NS.established, baselineName: KATRAN_LABEL, unit: 'ns/pkt', target: { ratio: 1, better: 'lower' } });
    rows.push({ figure: `XDP LB: UDP datagram of a flow (${floorNote})`, tendril: lbc.udp, baseline: KATRAN_NS.udp, baselineName: KATRAN_LABEL, unit: 'ns/pkt', target: { ratio: 1, better: 'lower' } });
    rows.push({ figure: `XDP LB: packet it passes (node address, no frontend) (${floorNote})`, tendril: lbc.pass, baseline: KATRAN_NS.pass, baselineName: KATRAN_LABEL, unit: 'ns/pkt', target: { ratio: 1, better: 'lower' } });
    rows.push({ figure: 'XDP LB bench wrapper alone (save, check, restore): the floor', tendril: lbc.floor, baseline: KATRAN_NS.passThroughWrapper, baselineName: `${KATRAN_LABEL} (pass-through wrapper)`, unit: 'ns/pkt' });
    rows.push({ figure: 'XDP LB bench wrapper claiming, filling and freeing a FWD slot and a reply slot, no LB (the never-seen row\'s map work, clean-up included)', tendril: lbc.churn, baseline: lbc.floor, baselineName: 'the wrapper floor', unit: 'ns/pkt' });
    note('XDP load balancer on a veth: UDP NodePort to a remote backend (XDP_TX), live frames from one CPU, beside XDP_DROP');
    const lbPps = await xdpLbPps({ seconds: quick ? 0.5 : 2, runs: quick ? 1 : 3 });
    rows.push({ figure: 'XDP LB, UDP NodePort to a remote backend (XDP_TX), live frames from one CPU', tendril: lbPps.lbPps, baseline: lbPps.dropPps, baselineName: 'XDP_DROP on a veth, same generator', unit: 'pkt/s', target: { ratio: 0.5, better: 'higher' } });
    rows.push({ figure: `XDP LB as above, beside an XDP_TX-only program with the same generator and restoring sink (the sink alone: ${lbPps.sinkNs.toFixed(0)} ns/frame)`, tendril: lbPps.lbPps, baseline: lbPps.bouncePps, baselineName: 'XDP_TX bounce, same generator and sink', unit: 'pkt/s' });

    const hundred = await addHundred(topo, node);
    const bareHundred = await bareLinks(topo, 100, true);
    rows.push({ figure: 'add 100 endpoints, all ready', tendril: hundred, baseline: bareHundred, baselineName: 'bare veth+addresses+routes', unit: 'ms', target: { absolute: 5000, better: 'lower' } });
  } finally {
    await topo.dispose();
  }

  process.stdout.write('\n');
  printTable(rows);
}

/**
 * Katran's figures were taken on this machine with its pass-through wrapper
 * at 30 ns. This VM's speed moves with its host's load: at times every
 * program here, the wrapper included, runs about 30% slower. A comparison
 * with those fixed figures holds only in the state they were taken in, so
 * the per-packet rows are measured again (up to XDP_ATTEMPTS times, every
 * attempt printed) until the wrapper floor is within XDP_FLOOR_NS of
 * Katran's; if it never is, the attempt with the lowest floor stands, and
 * its floor is printed in every row either way.
 */
const XDP_ATTEMPTS = 5;
const XDP_FLOOR_NS = 36;

function xdpLbCostComparable(repeat: number, attempts: number): XdpLbCost & { attempt: number; attempts: number } {
  let best: (XdpLbCost & { attempt: number }) | undefined;
  for (let attempt = 1; attempt <= attempts; attempt++) {
    const c = xdpLbCost({ repeat, runs: 5 });
    note(`  attempt ${attempt}: wrapper floor ${c.floor} ns; SYN ${c.synNewFlow}, established ${c.established}, UDP ${c.udp}, pass ${c.pass} ns`);
    if (!best || c.floor < best.floor) best = { ...c, attempt };
    if (c.floor <= XDP_FLOOR_NS) break;
  }
  return { ...best!, attempts };
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
