/**
 * L7 steering end to end on the real kernel: two pods (network namespaces)
 * with their endpoint programs attached in a node namespace, policy maps
 * written directly, the node's proxy routing, and a minimal transparent relay
 * standing in for the L7 proxy (testdata/proxy-steering-helper.ts). Every
 * namespace, process, pin and mount is the test's own and removed at the end,
 * also on failure; nothing touches the root namespace's links or routes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { privateBpffs, uniqueName } from '../bpf/testdata/fixtures.js';
import { RingBufferReader } from '../bpf/index.js';
import { TndDropReason, TndEvent, TndEventType, TndMark, TndPolicyVerdict } from '../bpf/generated/wire.js';
import { allowAllEntries } from './policy-maps.js';
import { NodeMaps } from './node-maps.js';
import { PinPaths } from './paths.js';

const HELPER = fileURLToPath(new URL('./testdata/proxy-steering-helper.js', import.meta.url));
const NODE_NAME = 'n1';
const ROUTER = '10.200.77.1';
const NODE_ADDR = '10.200.255.1';
const A = { id: 11, identity: 1011, ip: '10.200.77.2', podMac: '02:00:00:77:00:02', hostMac: '02:00:00:77:00:01', device: 'hA' };
const B = { id: 12, identity: 1012, ip: '10.200.77.3', podMac: '02:00:00:77:00:03', hostMac: '02:00:00:77:00:04', device: 'hB' };

/** A helper process in a netns, its IPC messages queued for next(). */
class Helper {
  readonly messages: Array<Record<string, unknown>> = [];
  private waiters: Array<() => void> = [];
  log = '';

  constructor(readonly proc: ChildProcess) {
    proc.on('message', (m) => {
      this.messages.push(m as Record<string, unknown>);
      for (const w of this.waiters.splice(0)) w();
    });
    proc.stdout?.on('data', (d) => (this.log += d));
    proc.stderr?.on('data', (d) => (this.log += d));
    proc.on('exit', () => {
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static start(netns: string, mode: string, cfg: unknown): Helper {
    return new Helper(spawn('nsenter', [`--net=/run/netns/${netns}`, process.execPath, HELPER, mode, JSON.stringify(cfg)], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'] }));
  }

  /** The first queued message of this type (taken off the queue), waiting for it up to timeoutMs. */
  async next(type: string, timeoutMs = 10_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const i = this.messages.findIndex((m) => m.type === type);
      if (i >= 0) return this.messages.splice(i, 1)[0]!;
      if (this.proc.exitCode !== null || this.proc.signalCode !== null) throw new Error(`helper exited (${this.proc.exitCode ?? this.proc.signalCode}) before "${type}":\n${this.log}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${type}" from the helper within ${timeoutMs} ms:\n${this.log}`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  send(msg: unknown): void {
    this.proc.send(msg as object);
  }

  kill(): void {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGKILL');
  }
}

function ip(netns: string | undefined, ...args: string[]): void {
  execFileSync('ip', netns ? ['-n', netns, ...args] : args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

/** One connection from pod A; its first answer or why there was none. */
async function connectFromA(netns: string, port: number, message: string, timeoutMs = 1500): Promise<{ ok: boolean; data?: string; error?: string }> {
  const client = Helper.start(netns, 'client', { addr: B.ip, port, message, timeoutMs });
  try {
    const { type: _type, ...result } = await client.next('result', timeoutMs + 5000);
    return result as { ok: boolean; data?: string; error?: string };
  } finally {
    client.kill();
  }
}

describe('L7 steering on the real kernel', () => {
  const prefix = uniqueName('tndpx');
  const ns = { node: `${prefix}-node`, a: `${prefix}-a`, b: `${prefix}-b` };
  const helpers: Helper[] = [];
  const events: TndEvent[] = [];
  let fs: ReturnType<typeof privateBpffs> | undefined;
  let maps: NodeMaps | undefined;
  let reader: RingBufferReader | undefined;
  let node: Helper;
  let server: Helper;
  let proxyPort = 0;

  const drops = (reason: number) => events.filter((e) => e.type === TndEventType.TND_EVENT_DROP && e.reason === reason);
  /** Connections B's servers saw, as [port, remote address]. */
  const seenByB = () => server.messages.filter((m) => m.type === 'conn').map((m) => [m.port, m.remote]);

  before(async () => {
    fs = privateBpffs();
    maps = NodeMaps.open(new PinPaths(fs.dir, NODE_NAME));
    reader = new RingBufferReader(maps.raw.get('tnd_events')!, (rec) => events.push(TndEvent.decode(rec)));
    reader.start();
    for (const name of Object.values(ns)) {
      ip(undefined, 'netns', 'add', name);
      ip(name, 'link', 'set', 'lo', 'up');
    }
    ip(ns.node, 'addr', 'add', `${NODE_ADDR}/32`, 'dev', 'lo');
    for (const [pod, netns] of [[A, ns.a], [B, ns.b]] as const) {
      ip(ns.node, 'link', 'add', pod.device, 'address', pod.hostMac, 'type', 'veth', 'peer', 'name', 'eth0', 'address', pod.podMac, 'netns', netns);
      ip(ns.node, 'link', 'set', pod.device, 'up');
      ip(ns.node, 'route', 'add', `${pod.ip}/32`, 'dev', pod.device);
      ip(netns, 'addr', 'add', `${pod.ip}/32`, 'dev', 'eth0');
      ip(netns, 'link', 'set', 'eth0', 'up');
      ip(netns, 'route', 'add', ROUTER, 'dev', 'eth0', 'scope', 'link');
      ip(netns, 'route', 'add', 'default', 'via', ROUTER, 'dev', 'eth0');
      const [link] = JSON.parse(execFileSync('ip', ['-n', ns.node, '-j', 'link', 'show', pod.device], { encoding: 'utf8' })) as Array<{ ifindex: number }>;
      maps.endpoints.update({ addr: Buffer.concat([Buffer.from(pod.ip.split('.').map(Number)), Buffer.alloc(12)]), family: 2 }, {
        ifindex: link!.ifindex,
        identity: pod.identity,
        endpointId: pod.id,
        flags: 0,
        mac: Buffer.from(pod.podMac.split(':').map((h) => parseInt(h, 16))),
        routerMac: Buffer.from(pod.hostMac.split(':').map((h) => parseInt(h, 16))),
      } as never);
    }
    maps.ipcache.set(`${NODE_ADDR}/32`, 1); // the node itself: host
    // A may send anything; B accepts only A on TCP 80, and only through the proxy.
    maps.policy.install(A.id, allowAllEntries());
    maps.policy.install(B.id, [
      ...allowAllEntries().filter((e) => e.direction === 'egress'),
      { direction: 'ingress', identity: A.identity, protocol: 6, port: 80, portPrefixLen: 16, verdict: 'redirect', ruleId: 42 },
    ]);
    const spec = (pod: typeof A) => ({ ...pod, ifindex: 0, ipv4: pod.ip, ipv6: 'fd10:200:77::' + pod.id.toString(16), routerIPv4: ROUTER, routerIPv6: 'fd10:200:77::1' });
    node = Helper.start(ns.node, 'node', { bpffs: fs.dir, node: NODE_NAME, endpoints: [spec(A), spec(B)] });
    helpers.push(node);
    proxyPort = (await node.next('ready', 20_000)).port as number;
    maps.proxyConfig.setPort(proxyPort);
    server = Helper.start(ns.b, 'server', { ports: [80, 81] });
    helpers.push(server);
    await server.next('ready');
  });

  after(() => {
    for (const h of helpers) h.kill();
    reader?.close();
    maps?.close();
    for (const name of Object.values(ns)) spawnQuiet('ip', ['netns', 'del', name]);
    fs?.cleanup();
  });

  it('the node has the proxy routing: one fwmark rule and the local route, however often it was ensured', () => {
    const rules = JSON.parse(execFileSync('ip', ['-n', ns.node, '-j', 'rule', 'show', 'pref', '1000'], { encoding: 'utf8' })) as Array<{ fwmark?: string; table?: string }>;
    assert.equal(rules.length, 1, JSON.stringify(rules));
    assert.equal(Number(rules[0]!.fwmark), TndMark.TND_MARK_TO_PROXY);
    assert.equal(rules[0]!.table, '2004');
    const routes = execFileSync('ip', ['-n', ns.node, 'route', 'show', 'table', '2004'], { encoding: 'utf8' });
    assert.match(routes, /^local default dev lo/m);
  });

  it('A\'s connection to B:80 lands on the proxy\'s listener as B:80, the flow map names both sides, and bytes flow both ways through the relay', async () => {
    const message = 'hello '.repeat(2000); // several segments after the SYN: the mark alone steers them
    const r = await connectFromA(ns.a, 80, message, 5000);
    assert.equal(r.ok, true, `answer through the relay: ${JSON.stringify(r)}\n${node.log}`);
    assert.ok(r.data?.startsWith('80:hello hello'), r.data?.slice(0, 40));
    const acc = await node.next('accepted');
    assert.equal(acc.dstAddr, B.ip, 'localAddress is the original destination');
    assert.equal(acc.dstPort, 80);
    assert.equal(acc.srcAddr, A.ip);
    assert.deepEqual(acc.flow, { srcIdentity: A.identity, dstIdentity: B.identity, srcEndpoint: A.id, dstEndpoint: B.id, egress: false, ingress: true });
    // B saw the relay's upstream connection from the node, never A itself.
    assert.deepEqual(seenByB(), [[80, NODE_ADDR]]);
    const pol = events.filter((e) => e.type === TndEventType.TND_EVENT_POLICY && e.endpointId === B.id);
    assert.ok(pol.some((e) => e.verdict === TndPolicyVerdict.TND_POLICY_REDIRECT && e.ruleId === 42), 'a policy event says redirect');
  });

  it('a connection from the node to B:80 without the mark is dropped (default deny); with the proxy\'s mark it passes', async () => {
    node.send({ cmd: 'connect', addr: B.ip, port: 80, message: 'direct', timeoutMs: 1500 });
    assert.deepEqual(await node.next('connected'), { type: 'connected', ok: false, error: 'timeout' });
    node.send({ cmd: 'connect', addr: B.ip, port: 80, message: 'marked', mark: TndMark.TND_MARK_FROM_PROXY, timeoutMs: 5000 });
    assert.deepEqual(await node.next('connected'), { type: 'connected', ok: true, data: '80:marked' });
    assert.ok(events.some((e) => e.type === TndEventType.TND_EVENT_DROP && e.reason === TndDropReason.DROP_POLICY_DENIED && e.endpointId === B.id && e.srcIdentity === 1), 'the unmarked SYN dropped by B\'s ingress as host');
  });

  it('A\'s connection to B:81 (no rule) is denied', async () => {
    const r = await connectFromA(ns.a, 81, 'x');
    assert.deepEqual(r, { ok: false, error: 'timeout' });
    assert.ok(events.some((e) => e.type === TndEventType.TND_EVENT_DROP && e.reason === TndDropReason.DROP_POLICY_DENIED && e.dport === 0x5100), 'dropped by policy');
    assert.ok(!seenByB().some(([port]) => port === 81));
  });

  it('with the listener gone, A\'s new connection to B:80 is dropped as "proxy unavailable", never delivered to B', async () => {
    node.send({ cmd: 'closeListener' });
    await node.next('closed');
    const before = drops(TndDropReason.DROP_PROXY_UNAVAILABLE).length;
    const r = await connectFromA(ns.a, 80, 'again');
    assert.equal(r.ok, false, JSON.stringify(r));
    assert.ok(drops(TndDropReason.DROP_PROXY_UNAVAILABLE).length > before, 'a DROP_PROXY_UNAVAILABLE event');
    assert.ok(!seenByB().some(([, remote]) => remote === A.ip), `B never saw A: ${JSON.stringify(seenByB())}`);
  });

  it('removeProxyRouting() takes the rule and the route away again', async () => {
    node.send({ cmd: 'removeRouting' });
    await node.next('removed');
    assert.equal(execFileSync('ip', ['-n', ns.node, 'rule', 'show', 'pref', '1000'], { encoding: 'utf8' }).trim(), '');
    assert.equal(execFileSync('ip', ['-n', ns.node, 'route', 'show', 'table', '2004'], { encoding: 'utf8' }).trim(), '');
  });
});

function spawnQuiet(cmd: string, args: string[]): void {
  try {
    execFileSync(cmd, args, { stdio: 'ignore' });
  } catch {
    // already gone
  }
}
