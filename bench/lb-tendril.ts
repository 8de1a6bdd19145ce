/**
 * New-connection cost of Tendril's socket load balancer at 1 to 100,000
 * services: a client pod connects to the last-added service (one backend
 * pod running the connlat server), beside the same client connecting to
 * that backend directly, in turns (bench/conn-latency.ts).
 *
 * The measured service is added through the CLI like a user would. The
 * other N-1 frontends are written straight into the node's pinned service
 * map (same backend and Maglev table): 100,000 CLI calls would measure the
 * CLI, not the datapath, whose lookup is the thing that must not grow.
 */
import { PinPaths } from '../src/datapath/paths.js';
import { LbMaps } from '../src/datapath/lb-maps.js';
import type { FrontendEntry } from '../src/common/lb.js';
import type { Node, Pod, Topology } from '../test/harness/topology.js';
import { compareConnectionCost, startConnServer, type ConnComparison } from './conn-latency.js';
import { serviceFrontend } from './lb-iptables.js';

export interface TendrilConnCost extends ConnComparison {
  services: number;
}

const BACKEND_PORT = 8080;

/** Frontend addresses of the fillers and of the measured service, laid out as the iptables baseline lays them. */
function frontendOf(i: number, n: number): { address: string; port: number } {
  const f = serviceFrontend(i, n);
  return { address: f.vip, port: f.port };
}

export async function tendrilConnCost(
  topo: Topology,
  node: Node,
  counts: number[],
  o: { runs?: number; count?: number; seconds?: number; note?: (s: string) => void } = {},
): Promise<TendrilConnCost[]> {
  const client: Pod = await topo.addPod(node, 'lb-client');
  const backend: Pod = await topo.addPod(node, 'lb-backend');
  const server = await startConnServer(backend.netnsPath, BACKEND_PORT);
  const maps = LbMaps.open(new PinPaths(topo.bpffs, node.name));
  const results: TendrilConnCost[] = [];
  let measured: number | undefined;
  try {
    for (const n of counts) {
      if (measured !== undefined) {
        const r = await node.cli(['service', 'delete', String(measured)]);
        if (r.code !== 0) throw new Error(`lb bench: service delete failed: ${r.stderr}`);
      }
      // Services 0..n-2 are fillers; n-1 is added last and measured.
      const last = frontendOf(n - 1, n);
      const add = await node.cli(['service', 'add', '--frontend', `${last.address}:${last.port}/TCP`, '--backend', `${backend.ipv4}:${BACKEND_PORT}`, '-o', 'json']);
      if (add.code !== 0) throw new Error(`lb bench: service add failed: ${add.stderr}`);
      measured = (JSON.parse(add.stdout) as { id: number }).id;
      const entry = maps.frontend({ ...last, protocol: 'TCP' }, 'cluster');
      if (!entry) throw new Error('lb bench: the added service is not in the service map');
      o.note?.(`tendril socket LB: ${n.toLocaleString('en')} services`);
      for (let i = 0; i < n - 1; i++) {
        const f = frontendOf(i, n);
        const filler: FrontendEntry = {
          frontend: { ...f, protocol: 'TCP' },
          scope: 'cluster',
          serviceId: entry.serviceId,
          mode: 'snat',
          affinityTimeoutSec: 0,
          maglevId: entry.maglevId,
          activeBackends: entry.activeBackends,
        };
        maps.setFrontend(filler);
      }
      const cmp = await compareConnectionCost(client.netnsPath, { host: last.address, port: last.port }, { host: backend.ipv4, port: BACKEND_PORT }, {
        runs: o.runs ?? 3,
        ...(o.count !== undefined ? { count: o.count } : {}),
        ...(o.seconds !== undefined ? { seconds: o.seconds } : {}),
      });
      if (cmp.lb.errors > 0) throw new Error(`lb bench: ${cmp.lb.errors} connections through the service failed`);
      results.push({ services: n, ...cmp });
      for (let i = 0; i < n - 1; i++) maps.deleteFrontend({ ...frontendOf(i, n), protocol: 'TCP' }, 'cluster');
    }
  } finally {
    maps.close();
    await server.stop();
  }
  return results;
}
