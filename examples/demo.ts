/**
 * `npm run demo`: the seed talk's scenario on one node, step by step, with
 * the commands a user would type and every request's real result.
 *
 * The empire runs a deathstar (two pods, org=empire class=deathstar, an HTTP
 * server on port 80) behind one service address, 10.96.0.10:80, which the
 * datapath balances over the two pods at connect(). A tiefighter
 * (org=empire) and an xwing (org=alliance) request landing through that
 * address. First no policy: both land, on both pods. Then an L3/L4 policy:
 * only the empire reaches port 80, the xwing's connection is dropped on the
 * chosen backend (the monitor shows it). Then an L7 policy: the tiefighter
 * may still land, but its PUT /v1/exhaust-port gets 403 from Tendril's proxy.
 *
 * Everything lives in namespaces of its own and is removed at the end; any
 * step that does not behave as shown makes the demo exit non-zero.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Topology, REPO, sh, sleep, type Node, type Pod } from '../test/harness/topology.js';

const bold = (s: string) => (process.stdout.isTTY ? `\x1b[1m${s}\x1b[0m` : s);
const step = (title: string) => process.stdout.write(`\n${bold(`== ${title}`)}\n`);
const show = (text: string) => process.stdout.write(text.replace(/^/gm, '   ').trimEnd() + '\n');

const L3L4_POLICY = join(REPO, 'examples', 'policies', 'deathstar-l3-l4.yaml');
const L7_POLICY = join(REPO, 'examples', 'policies', 'deathstar-l7.yaml');

function check(ok: boolean, what: string): void {
  if (!ok) throw new Error(what);
}

async function cli(node: Node, args: string[]): Promise<string> {
  process.stdout.write(`$ tendril ${args.join(' ')}\n`);
  const r = await node.cli(args);
  if (r.code !== 0) throw new Error(`tendril ${args.join(' ')} failed: ${r.stderr}`);
  show(r.stdout);
  return r.stdout;
}

/** The deathstar's service address: the ships know only this one. */
const DEATHSTAR = '10.96.0.10';

/** What a request got: the HTTP status, body and the pod that served it, or "dropped" when the connection never got an answer. */
interface Outcome {
  status: number | 'dropped';
  body: string;
  servedBy: string;
}

/** One request with curl from a ship to the deathstar service, printed as the user would type and see it. */
async function request(ship: Pod, method: string, path: string, quiet = false): Promise<Outcome> {
  const url = `http://${DEATHSTAR}${path}`;
  const r = await sh(['curl', '-s', '--max-time', '2', '-X', method, '-w', '\n%{http_code} %header{x-served-by}', url], { netns: ship.netnsPath, timeoutMs: 10_000 });
  const nl = r.stdout.lastIndexOf('\n');
  const [code, servedBy] = r.stdout.slice(nl + 1).split(' ');
  const outcome: Outcome =
    r.code === 28 ? { status: 'dropped', body: '', servedBy: '' } : { status: Number(code), body: r.stdout.slice(0, Math.max(nl, 0)).trim(), servedBy: servedBy ?? '' };
  if (quiet) return outcome;
  const shipName = ship.name.replace(/^tnd[0-9a-f]+-/, '');
  const result = outcome.status === 'dropped' ? 'no answer: connection dropped (curl timed out)' : `${outcome.status} ${outcome.body}   (${outcome.servedBy ? `served by ${outcome.servedBy}` : "answered by Tendril's proxy"})`;
  process.stdout.write(`${shipName.padStart(10)} $ curl -X ${method} ${url}\n${''.padStart(13)}${result}\n`);
  return outcome;
}

/** `tendril monitor` in the background while `during` runs; returns its lines. */
async function watch(node: Node, args: string[], during: () => Promise<void>): Promise<string[]> {
  const child = node.topo.spawnIn(node.netnsPath, [process.execPath, join(REPO, 'bin', 'tendril'), '--socket', node.socket, 'monitor', ...args]);
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  await sleep(300);
  await during();
  await sleep(300);
  child.kill('SIGTERM');
  return out.split('\n').filter(Boolean);
}

async function main(): Promise<void> {
  const topo = Topology.create();
  try {
    step('A node: a network namespace running tendril-agent');
    const node = await topo.addNode();
    show(`node netns ${node.name}, pod ranges ${node.podCidr4} and ${node.podCidr6}`);

    step('The deathstar (two pods) and two ships, attached with "tendril endpoint add"');
    const add = async (name: string, labels: string) => {
      process.stdout.write(`$ tendril endpoint add --netns /run/netns/${topo.prefix}-${name} --labels ${labels}\n`);
      const pod = await topo.addPod(node, name, labels);
      show(`endpoint ${pod.id}: ${pod.ipv4} ${pod.ipv6}`);
      return pod;
    };
    const deathstars = [await add('deathstar-1', 'org=empire,class=deathstar'), await add('deathstar-2', 'org=empire,class=deathstar')];
    const tiefighter = await add('tiefighter', 'org=empire,class=tiefighter');
    const xwing = await add('xwing', 'org=alliance,class=xwing');
    for (const [i, pod] of deathstars.entries()) {
      const server = topo.spawnIn(pod.netnsPath, [process.execPath, join(REPO, 'dist', 'examples', 'deathstar-server.js'), '80', `deathstar-${i + 1}`]);
      await new Promise((resolve) => server.stdout!.once('data', resolve));
    }
    show('each deathstar pod serves POST /v1/request-landing and PUT /v1/exhaust-port on port 80');
    await cli(node, ['endpoint', 'list']);

    step(`The deathstar becomes a service: one address, ${DEATHSTAR}:80, balanced over its two pods`);
    const added = await cli(node, ['service', 'add', '--frontend', `${DEATHSTAR}:80/TCP`, ...deathstars.flatMap((d) => ['--backend', `${d.ipv4}:80`])]);
    const svcId = Number(/^ID: +(\d+)$/m.exec(added)?.[1]);
    check(svcId > 0, 'service add should print the new service id');
    show('(each ship\'s connect() to the address goes straight to one pod, chosen by Maglev hashing in the kernel)');

    step('No policy: every ship may land, through the service, on either pod');
    const served = new Map<string, number>();
    for (const ship of [tiefighter, xwing]) {
      const r = await request(ship, 'POST', '/v1/request-landing');
      check(r.status === 200 && r.body === 'Ship landed', `${ship.name} should land without a policy`);
    }
    process.stdout.write(`   ... and 20 more landings of the tiefighter:\n`);
    for (let i = 0; i < 20; i++) {
      const r = await request(tiefighter, 'POST', '/v1/request-landing', true);
      check(r.status === 200, 'every landing through the service should succeed');
      served.set(r.servedBy, (served.get(r.servedBy) ?? 0) + 1);
    }
    show([...served].sort().map(([pod, n]) => `${pod}: ${n} landings`).join('\n'));
    check(served.size === 2 && deathstars.every((_, i) => served.has(`deathstar-${i + 1}`)), `both deathstar pods should serve landings, saw ${JSON.stringify([...served])}`);
    const list = await cli(node, ['service', 'list']);
    check(list.includes(`${DEATHSTAR}:80/TCP`), 'service list should show the deathstar service');

    step('L3/L4 policy: only org=empire may reach the deathstar, on TCP port 80');
    show(readFileSync(L3L4_POLICY, 'utf8'));
    await cli(node, ['policy', 'import', L3L4_POLICY]);
    const drops = await watch(node, ['--type', 'drop'], async () => {
      for (let i = 0; i < 2; i++) {
        check((await request(tiefighter, 'POST', '/v1/request-landing')).status === 200, 'the tiefighter should still land');
        check((await request(xwing, 'POST', '/v1/request-landing')).status === 'dropped', "the xwing's connection should be dropped");
      }
    });
    const xwingDrops = drops.filter((l) => l.includes(xwing.ipv4) && l.includes('policy denied'));
    check(xwingDrops.length > 0, `the monitor should show the xwing's drops, saw:\n${drops.join('\n')}`);
    process.stdout.write('$ tendril monitor --type drop   (while the ships tried)\n');
    show(xwingDrops.slice(0, 4).join('\n'));

    step('But L3/L4 cannot tell requests apart: the tiefighter hits the exhaust port');
    const boom = await request(tiefighter, 'PUT', '/v1/exhaust-port');
    check(boom.status === 503 && boom.body.startsWith('Panic'), 'without L7 rules the exhaust port should be reachable');

    step('L7 policy: empire ships may only POST /v1/request-landing');
    show(readFileSync(L7_POLICY, 'utf8'));
    await cli(node, ['policy', 'import', L7_POLICY]);
    await cli(node, ['policy', 'trace', '--src', 'org=empire,class=tiefighter', '--dst', 'org=empire,class=deathstar', '--dport', '80/TCP']);
    const l7 = await watch(node, ['--type', 'l7'], async () => {
      for (let i = 0; i < 2; i++) {
        const landing = await request(tiefighter, 'POST', '/v1/request-landing');
        check(landing.status === 200 && landing.body === 'Ship landed', 'the tiefighter should land through the proxy');
        const exhaust = await request(tiefighter, 'PUT', '/v1/exhaust-port');
        check(exhaust.status === 403 && exhaust.body === 'Access denied', 'the exhaust port should be denied with 403');
      }
      check((await request(xwing, 'POST', '/v1/request-landing')).status === 'dropped', 'the xwing should stay dropped');
    });
    check(l7.filter((l) => l.includes(' L7 ')).length === 4, `the monitor should show 4 L7 events, saw:\n${l7.join('\n')}`);
    process.stdout.write('$ tendril monitor --type l7   (while the ships tried)\n');
    show(l7.sort().join('\n'));

    step('The service after all this: new connections per deathstar pod');
    await cli(node, ['service', 'list']);
    const after = await node.client.getService(svcId);
    check(after.backends.length === 2 && after.backends.every((b) => b.connections > 0), 'both backends should count connections');

    step('Cleaning up');
    await cli(node, ['service', 'delete', String(svcId)]);
    await cli(node, ['policy', 'delete', '--all']);
    for (const p of [...deathstars, tiefighter, xwing]) await cli(node, ['endpoint', 'delete', String(p.id)]);
  } finally {
    await topo.dispose();
  }
  process.stdout.write(`\n${bold('Demo finished: every step behaved as shown.')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${(err as Error).message}\n`);
  process.exit(1);
});
