/**
 * `npm run demo`: one node, three pods, traffic between them through the eBPF
 * datapath, shown step by step with the commands a user would type. Everything
 * it builds lives in namespaces of its own and is removed at the end. Any step
 * that does not behave as shown makes the demo exit non-zero.
 */
import { join } from 'node:path';
import { Topology, REPO, must, sleep, type Node, type Pod } from '../test/harness/topology.js';

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (title: string) => process.stdout.write(`\n${bold(`== ${title}`)}\n`);
const show = (text: string) => process.stdout.write(text.replace(/^/gm, '   ').trimEnd() + '\n');

async function cli(node: Node, args: string[]): Promise<string> {
  process.stdout.write(`$ tendril ${args.join(' ')}\n`);
  const r = await node.cli(args);
  if (r.code !== 0) throw new Error(`tendril ${args.join(' ')} failed: ${r.stderr}`);
  show(r.stdout);
  return r.stdout;
}

async function ping(from: Pod, to: Pod, family: 4 | 6): Promise<void> {
  const addr = family === 4 ? to.ipv4 : to.ipv6;
  const out = await must(['ping', `-${family}`, '-c', '1', '-W', '2', addr], { netns: from.netnsPath });
  const rtt = /time=([\d.]+ ms)/.exec(out)?.[1] ?? '?';
  show(`${from.name.split('-').pop()} -> ${to.name.split('-').pop()} ${addr.padEnd(22)} reply in ${rtt}`);
}

async function main(): Promise<void> {
  const topo = Topology.create();
  try {
    step('A node: a network namespace running tendril-agent');
    const node = await topo.addNode();
    show(`node netns ${node.name}, pod ranges ${node.podCidr4} and ${node.podCidr6}`);
    await cli(node, ['status']);

    step('Three pods, attached with "tendril endpoint add"');
    const pods: Pod[] = [];
    for (const [name, labels] of [
      ['web', 'app=web'],
      ['api', 'app=api'],
      ['db', 'app=db'],
    ] as const) {
      process.stdout.write(`$ tendril endpoint add --netns /run/netns/${topo.prefix}-${name} --labels ${labels}\n`);
      const pod = await topo.addPod(node, name, labels);
      show(`endpoint ${pod.id}: ${pod.ipv4} ${pod.ipv6}`);
      pods.push(pod);
    }
    await cli(node, ['endpoint', 'list']);

    step('Every pod pings every other, IPv4 and IPv6 (ARP, ND and forwarding all in BPF)');
    for (const from of pods) for (const to of pods) if (from !== to) for (const fam of [4, 6] as const) await ping(from, to, fam);

    step('TCP: web connects to a server in db');
    const tool = join(REPO, 'dist', 'test', 'tools', 'tcp.js');
    const server = topo.spawnIn(pods[2]!.netnsPath, [process.execPath, tool, 'server', '5432']);
    await new Promise((resolve) => server.stdout!.once('data', resolve));
    show(await must([process.execPath, tool, 'client', pods[2]!.ipv4, '5432'], { netns: pods[0]!.netnsPath }));
    show(await must([process.execPath, tool, 'client', pods[2]!.ipv6, '5432'], { netns: pods[0]!.netnsPath }));

    step('What the datapath saw: "tendril monitor" while api pings web');
    const monitor = topo.spawnIn(node.netnsPath, [process.execPath, join(REPO, 'bin', 'tendril'), '--socket', node.socket, 'monitor']);
    let events = '';
    monitor.stdout!.on('data', (d) => (events += d));
    await sleep(300);
    await must(['ping', '-c', '1', '-W', '2', pods[0]!.ipv4], { netns: pods[1]!.netnsPath });
    await sleep(500);
    monitor.kill('SIGTERM');
    if (!events.includes(pods[1]!.ipv4)) throw new Error(`monitor showed no event of the ping:\n${events}`);
    process.stdout.write('$ tendril monitor\n');
    show(events);

    step('Connection tracking and the endpoints map');
    await cli(node, ['map', 'dump', 'tnd_endpoints']);
    await cli(node, ['map', 'dump', 'tnd_ct']);

    step('The node itself never learned a pod neighbour: answers came from BPF');
    const neigh = (await must(['ip', 'neigh', 'show'], { netns: node.netnsPath })) + (await must(['ip', '-6', 'neigh', 'show'], { netns: node.netnsPath }));
    show(`ip neigh in the node: ${neigh.trim() === '' ? '(empty)' : neigh}`);
    for (const p of pods) if (neigh.includes(p.ipv4) || neigh.includes(p.ipv6)) throw new Error(`node holds a neighbour entry for ${p.name}`);

    step('Cleaning up');
    for (const p of pods) await cli(node, ['endpoint', 'delete', String(p.id)]);
  } finally {
    await topo.dispose();
  }
  process.stdout.write(`\n${bold('Demo finished: every step behaved as shown.')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  process.exit(1);
});
