/**
 * Pod-to-pod throughput (iperf3) and request/response rate (sockperf
 * ping-pong), through Tendril and through plain kernel routing between the
 * same kind of veth-attached pods with no BPF at all.
 */
import { Topology, must, sleep, type Pod } from '../test/harness/topology.js';
import { median } from './stats.js';

export interface PodPair {
  client: { netnsPath: string };
  server: { netnsPath: string; ipv4: string };
}

/** Two pods joined by a router netns with ip_forward: the kernel's own path. */
export async function plainRoutedPair(topo: Topology): Promise<PodPair> {
  const router = `/run/netns/${await topo.addNamespace('plain-router')}`;
  const pods: Array<{ netnsPath: string; ipv4: string }> = [];
  for (const n of [1, 2]) {
    const ns = `/run/netns/${await topo.addNamespace(`plain-pod${n}`)}`;
    const host = `pl${topo.prefix.slice(3)}${n}`;
    await must(['ip', 'link', 'add', host, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns], { netns: router });
    await must(['ip', '-batch', '-'], { netns: router, input: `addr add 10.201.${n}.1/24 dev ${host}\nlink set ${host} up\n` });
    await must(['ip', '-batch', '-'], { netns: ns, input: `addr add 10.201.${n}.2/24 dev eth0\nlink set eth0 up\nroute add default via 10.201.${n}.1\n` });
    pods.push({ netnsPath: ns, ipv4: `10.201.${n}.2` });
  }
  await must(['sysctl', '-qw', 'net.ipv4.ip_forward=1'], { netns: router });
  await must(['ping', '-c', '1', '-W', '2', pods[1]!.ipv4], { netns: pods[0]!.netnsPath });
  return { client: pods[0]!, server: pods[1]! };
}

export function tendrilPair(a: Pod, b: Pod): PodPair {
  return { client: a, server: b };
}

/** iperf3 TCP throughput in Gbit/s, median of `runs` runs of `seconds` each. */
export async function throughput(topo: Topology, pair: PodPair, runs: number, seconds: number): Promise<number> {
  const server = topo.spawnIn(pair.server.netnsPath, ['iperf3', '-s', '-p', '5301']);
  await sleep(300);
  const results: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const out = await must(['iperf3', '-c', pair.server.ipv4, '-p', '5301', '-t', String(seconds), '-J'], { netns: pair.client.netnsPath, timeoutMs: (seconds + 10) * 1000 });
      const json = JSON.parse(out) as { end: { sum_received: { bits_per_second: number } } };
      results.push(json.end.sum_received.bits_per_second / 1e9);
    }
  } finally {
    server.kill('SIGKILL');
  }
  return median(results);
}

/** sockperf TCP ping-pong: round trips per second, median of `runs`. */
export async function requestResponse(topo: Topology, pair: PodPair, runs: number, seconds: number): Promise<number> {
  const server = topo.spawnIn(pair.server.netnsPath, ['sockperf', 'server', '--tcp', '-i', pair.server.ipv4, '-p', '5302']);
  await sleep(500);
  const results: number[] = [];
  try {
    for (let i = 0; i < runs; i++) {
      const out = await must(['sockperf', 'ping-pong', '--tcp', '-i', pair.server.ipv4, '-p', '5302', '-t', String(seconds), '-m', '64'], {
        netns: pair.client.netnsPath,
        timeoutMs: (seconds + 10) * 1000,
      });
      const m = /RunTime=([\d.]+) sec; SentMessages=(\d+); ReceivedMessages=(\d+)/.exec(out);
      if (!m) throw new Error(`unexpected sockperf output:\n${out}`);
      results.push(Number(m[3]) / Number(m[1]));
    }
  } finally {
    server.kill('SIGKILL');
  }
  return median(results);
}
