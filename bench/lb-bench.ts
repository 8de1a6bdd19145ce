/**
 * Issue 5's figures that exist before Tendril's load balancer does, as rows
 * for bench/run.ts: the kube-proxy iptables baseline (new-connection cost),
 * the XDP_TX floor and XDP_DROP's packet rate. Until Tendril's rows take
 * the tendril column, the peer sits there, as HAProxy's row does for L7.
 */
import type { Row } from './stats.js';
import { iptablesConnCost, type IptablesVariant } from './lb-iptables.js';
import { xdpDropPps, xdpTxFloor } from './xdp-lb.js';

export interface LbBaselineOptions {
  quick?: boolean;
  /** Service counts (default: 1, 1,000 and 10,000; quick: 1 and 1,000). 100,000 takes minutes to load. */
  services?: number[];
  variants?: IptablesVariant[];
  note?: (s: string) => void;
}

export async function lbBaselineRows(o: LbBaselineOptions = {}): Promise<Row[]> {
  const rows: Row[] = [];
  const services = o.services ?? (o.quick ? [1, 1000] : [1, 1000, 10_000]);
  for (const variant of o.variants ?? (['nft', 'legacy'] as IptablesVariant[])) {
    for (const n of services) {
      o.note?.(`new-connection cost through kube-proxy's rules, iptables-${variant}, ${n} services`);
      const r = await iptablesConnCost({ services: n, variant, runs: o.quick ? 1 : 3, seconds: o.quick ? 1 : 3, count: o.quick ? 1000 : 5000, note: o.note });
      const what = `kube-proxy iptables-${variant}, ${n.toLocaleString('en')} service${n === 1 ? '' : 's'} (the peer, in the tendril column)`;
      rows.push({ figure: `new connection p50, ${what}`, tendril: r.p50Us, baseline: r.directP50Us, baselineName: 'direct to the backend', unit: 'us' });
      rows.push({ figure: `new connection p99, ${what}`, tendril: r.p99Us, baseline: r.directP99Us, baselineName: 'direct to the backend', unit: 'us' });
      rows.push({ figure: `new connections/s (one client), ${what}`, tendril: r.setupPerSec, baseline: r.directSetupPerSec, baselineName: 'direct to the backend', unit: 'conn/s' });
      rows.push({ figure: `load the rules (iptables-restore), ${what}`, tendril: r.loadMs, baseline: r.removeMs, baselineName: 'removing them', unit: 'ms' });
    }
  }
  o.note?.('XDP_TX floor (BPF_PROG_TEST_RUN) and XDP_DROP on a veth (live frames, one CPU)');
  const floor = xdpTxFloor({ iterations: o.quick ? 500 : 2000 });
  rows.push({ figure: 'XDP_TX-only program, one call per packet (the floor of an XDP LB)', tendril: floor.singleNs, baseline: floor.batchNs, baselineName: 'same, repeat=20000', unit: 'ns/pkt' });
  const drop = await xdpDropPps({ seconds: o.quick ? 0.5 : 2 });
  rows.push({ figure: 'XDP_DROP on a veth, live frames from one CPU (baseline of the XDP LB)', tendril: drop.pps, baseline: drop.generatorPps, baselineName: 'generator send rate', unit: 'pkt/s' });
  return rows;
}
