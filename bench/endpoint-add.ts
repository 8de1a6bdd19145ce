/**
 * Time to make one endpoint ready and to make 100, through the API, beside
 * the bare link work (veth pair, addresses, routes by iproute2, no BPF) that
 * any CNI plugin has to do.
 */
import { performance } from 'node:perf_hooks';
import { Topology, must, type Node } from '../test/harness/topology.js';
import { median } from './stats.js';

export async function addOne(topo: Topology, node: Node, samples: number): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < samples; i++) {
    const ns = `/run/netns/${await topo.addNamespace(`one${i}`)}`;
    const t0 = performance.now();
    const ep = await node.client.addEndpoint({ netns: ns });
    times.push(performance.now() - t0);
    await node.client.deleteEndpoint(ep.id);
  }
  return median(times);
}

export async function addHundred(topo: Topology, node: Node): Promise<number> {
  const paths: string[] = [];
  for (let i = 0; i < 100; i++) paths.push(`/run/netns/${await topo.addNamespace(`h${i}`)}`);
  const t0 = performance.now();
  const eps = await Promise.all(paths.map((netns) => node.client.addEndpoint({ netns })));
  const elapsed = performance.now() - t0;
  for (const ep of eps) await node.client.deleteEndpoint(ep.id);
  return elapsed;
}

/** The same link work with iproute2 alone: create the pair, address and route both ends. */
let bareRuns = 0;

export async function bareLinks(topo: Topology, count: number, parallel: boolean): Promise<number> {
  const run = ++bareRuns;
  const host = `/run/netns/${await topo.addNamespace(`bare${run}`)}`;
  const pods: string[] = [];
  for (let i = 0; i < count; i++) pods.push(`/run/netns/${await topo.addNamespace(`bare${run}-${i}`)}`);
  const one = async (pod: string, i: number) => {
    const name = `bv${i}`;
    await must(['ip', '-batch', '-'], { netns: host, input: `link add ${name} type veth peer name eth0 netns ${pod}\nlink set ${name} up\n` });
    await must(['ip', '-batch', '-'], {
      netns: pod,
      input: `addr add 10.202.${i >> 8}.${i & 255}/32 dev eth0\naddr add fd10:202::${i + 2}/128 dev eth0 nodad\nlink set eth0 up\nroute add 10.202.255.1 dev eth0 scope link\nroute add default via 10.202.255.1 dev eth0\n`,
    });
  };
  const t0 = performance.now();
  if (parallel) await Promise.all(pods.map(one));
  else for (let i = 0; i < pods.length; i++) await one(pods[i]!, i);
  return performance.now() - t0;
}
