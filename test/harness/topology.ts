/**
 * Test topology built of network namespaces (never the root namespace): a
 * node netns runs an agent; pods are netns the agent attaches. Names carry a
 * unique run prefix, and dispose() removes every namespace, process, pin,
 * mount and directory the run made, also after a failure.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, existsSync, readdirSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ApiClient } from '../../src/api/client.js';

export const REPO = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
export const AGENT_BIN = join(REPO, 'bin', 'tendril-agent');
export const CLI_BIN = join(REPO, 'bin', 'tendril');

export interface CmdResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion (optionally inside a netns) and returns its output; never throws on exit code. */
export function sh(argv: string[], options: { netns?: string; input?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<CmdResult> {
  const full = options.netns ? ['nsenter', `--net=${options.netns}`, ...argv] : argv;
  return new Promise((resolve) => {
    const child = spawn(full[0]!, full.slice(1), { stdio: ['pipe', 'pipe', 'pipe'], env: options.env ?? process.env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 30_000);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
    child.stdin.on('error', () => undefined); // the command may exit before reading its input
    child.stdin.end(options.input ?? '');
  });
}

/** Like sh() but fails with the command's stderr when it exits non-zero. */
export async function must(argv: string[], options: { netns?: string; input?: string; timeoutMs?: number } = {}): Promise<string> {
  const r = await sh(argv, options);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} exited ${r.code}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export class Agent {
  proc: ChildProcess | undefined;
  log = '';

  constructor(
    readonly node: Node,
    readonly args: string[],
  ) {}

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async start(): Promise<void> {
    const proc = spawn('nsenter', [`--net=${this.node.netnsPath}`, process.execPath, AGENT_BIN, ...this.args], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = proc;
    proc.stdout!.on('data', (d) => (this.log += d));
    proc.stderr!.on('data', (d) => (this.log += d));
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      if (proc.exitCode !== null) throw new Error(`agent exited ${proc.exitCode} at start:\n${this.log}`);
      try {
        await this.node.client.status();
        return;
      } catch {
        await sleep(50);
      }
    }
    throw new Error(`agent did not answer within 20 s:\n${this.log}`);
  }

  /** Sends `signal` and waits for the process to be gone. */
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
    const gone = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
    proc.kill(signal);
    await gone;
  }
}

export class Node {
  readonly netnsPath: string;
  readonly socket: string;
  readonly stateDir: string;
  readonly client: ApiClient;
  agent: Agent | undefined;

  constructor(
    readonly topo: Topology,
    readonly name: string,
    readonly podCidr4: string,
    readonly podCidr6: string,
    readonly extraArgs: string[] = [],
  ) {
    this.netnsPath = `/run/netns/${name}`;
    this.socket = join(topo.dir, `${name}.sock`);
    this.stateDir = join(topo.dir, `${name}-state`);
    this.client = new ApiClient(this.socket);
  }

  agentArgs(): string[] {
    return ['--node', this.name, '--bpffs', this.topo.bpffs, '--state-dir', this.stateDir, '--socket', this.socket, '--pod-cidr', this.podCidr4, '--pod-cidr6', this.podCidr6, ...this.extraArgs];
  }

  /** Starts the node's agent; `extraArgs` for this start only. */
  async startAgent(extraArgs: string[] = []): Promise<Agent> {
    this.agent = new Agent(this, [...this.agentArgs(), ...extraArgs]);
    this.topo.agents.push(this.agent);
    await this.agent.start();
    return this.agent;
  }

  /** Runs the tendril CLI against this node's agent. */
  cli(args: string[], timeoutMs = 30_000): Promise<CmdResult> {
    return sh([process.execPath, CLI_BIN, ...args], { timeoutMs, env: { ...process.env, TENDRIL_SOCKET: this.socket } });
  }

  /**
   * `tendril monitor ARGS -o json` in the background: events collected until
   * stop(settleMs), which first waits settleMs for late events.
   */
  monitor(args: string[]): { events: Array<Record<string, any>>; stop(settleMs?: number): Promise<void> } {
    const events: Array<Record<string, any>> = [];
    const child = spawn(process.execPath, [CLI_BIN, 'monitor', ...args, '-o', 'json'], { env: { ...process.env, TENDRIL_SOCKET: this.socket }, stdio: ['ignore', 'pipe', 'pipe'] });
    let buf = '';
    child.stdout!.on('data', (d: Buffer) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        events.push(JSON.parse(buf.slice(0, nl)) as Record<string, any>);
        buf = buf.slice(nl + 1);
      }
    });
    return {
      events,
      stop: async (settleMs = 0) => {
        if (settleMs) await sleep(settleMs);
        if (child.exitCode === null) {
          const gone = new Promise((r) => child.once('exit', r));
          child.kill('SIGINT');
          await gone;
        }
      },
    };
  }

  exec(argv: string[], timeoutMs?: number): Promise<CmdResult> {
    return sh(argv, { netns: this.netnsPath, timeoutMs });
  }
}

/** A netns standing for the world outside the node, routed through the node. */
export interface World {
  name: string;
  netnsPath: string;
  /** The world's own address (a documentation address, 203.0.113.0/24). */
  ipv4: string;
  /** The node's address on the link to the world. */
  nodeIPv4: string;
  /** The same in IPv6 (2001:db8::/32). */
  ipv6: string;
  nodeIPv6: string;
  /** The node's end of the link (its world-facing device: --lb-interface). */
  nodeDev: string;
}

/**
 * A node or the world on the shared underlay (a bridge in its own netns):
 * addresses in 203.0.113.64/27 and 2001:db8:1::/64, on-link to each other.
 */
export interface UnderlayMember {
  netnsPath: string;
  /** Its device on the underlay. */
  dev: string;
  mac: string;
  ipv4: string;
  ipv6: string;
}

export interface Pod {
  name: string;
  netnsPath: string;
  id: number;
  ipv4: string;
  ipv6: string;
}

export class Topology implements AsyncDisposable {
  readonly prefix: string;
  readonly dir: string;
  readonly bpffs: string;
  readonly agents: Agent[] = [];
  private readonly namespaces: string[] = [];
  private readonly children: ChildProcess[] = [];
  private readonly disposers: Array<() => Promise<void>> = [];
  private nodeCount = 0;
  private worldCount = 0;
  private underlay: { netnsPath: string; members: Array<UnderlayMember & { node?: Node }> } | undefined;

  private constructor() {
    this.prefix = `tnd${randomBytes(3).toString('hex')}`;
    this.dir = mkdtempSync(join(tmpdir(), `${this.prefix}-`));
    this.bpffs = join(this.dir, 'bpffs');
    mkdirSync(this.bpffs);
    execFileSync('mount', ['-t', 'bpf', 'bpf', this.bpffs]);
  }

  static create(): Topology {
    const topo = new Topology();
    live.add(topo);
    return topo;
  }

  async addNamespace(suffix: string): Promise<string> {
    const name = `${this.prefix}-${suffix}`;
    await must(['ip', 'netns', 'add', name]);
    this.namespaces.push(name);
    await must(['ip', 'link', 'set', 'lo', 'up'], { netns: `/run/netns/${name}` });
    return name;
  }

  /** A node netns with its agent running. */
  async addNode(options: { podCidr4?: string; podCidr6?: string; start?: boolean; agentArgs?: string[] } = {}): Promise<Node> {
    const n = ++this.nodeCount;
    const name = await this.addNamespace(`node${n}`);
    const node = new Node(this, name, options.podCidr4 ?? `10.200.${n}.0/24`, options.podCidr6 ?? `fd10:200:0:${n}::/64`, options.agentArgs);
    if (options.start !== false) await node.startAgent();
    return node;
  }

  /** A pod netns attached to `node` through the CLI. */
  async addPod(node: Node, suffix: string, labels?: string): Promise<Pod> {
    const name = await this.addNamespace(suffix);
    const netnsPath = `/run/netns/${name}`;
    const args = ['endpoint', 'add', '--netns', netnsPath, '-o', 'json', ...(labels ? ['--labels', labels] : [])];
    const r = await node.cli(args);
    if (r.code !== 0) throw new Error(`endpoint add failed (${r.code}): ${r.stderr}`);
    const ep = JSON.parse(r.stdout) as { id: number; ipv4: string; ipv6: string };
    return { name, netnsPath, id: ep.id, ipv4: ep.ipv4, ipv6: ep.ipv6 };
  }

  /**
   * An "outside world" netns joined to `node` by a point-to-point veth (the
   * node's end 203.0.113.(2k+1) and 2001:db8::(2k+1), the world's
   * 203.0.113.(2k+100) and 2001:db8::(2k+100)); the world routes the pod
   * ranges back through the node. Call before starting the agent, or the
   * agent learns the node's new address on its next refresh. The world's
   * device sends full checksums, as a real wire carries them.
   */
  async addWorld(node: Node, suffix = 'world'): Promise<World> {
    const name = await this.addNamespace(suffix);
    const netnsPath = `/run/netns/${name}`;
    const k = this.worldCount++;
    const nodeIPv4 = `203.0.113.${2 * k + 1}`;
    const ipv4 = `203.0.113.${2 * k + 100}`;
    const dev = `w${k}${this.prefix.slice(3)}`;
    const nodeIPv6 = `2001:db8::${(2 * k + 1).toString(16)}`;
    const ipv6 = `2001:db8::${(2 * k + 100).toString(16)}`;
    await must(['ip', 'link', 'add', dev, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', netnsPath], { netns: node.netnsPath });
    await must(['ip', '-batch', '-'], {
      netns: node.netnsPath,
      input: `addr add ${nodeIPv4}/32 peer ${ipv4}/32 dev ${dev}\naddr add ${nodeIPv6}/128 dev ${dev} nodad\nlink set ${dev} up\nroute add ${ipv6}/128 dev ${dev}\n`,
    });
    await must(['ip', '-batch', '-'], {
      netns: netnsPath,
      input:
        `addr add ${ipv4}/32 peer ${nodeIPv4}/32 dev eth0\naddr add ${ipv6}/128 dev eth0 nodad\nlink set eth0 up\nroute add 10.200.0.0/16 via ${nodeIPv4}\n` +
        `route add ${nodeIPv6}/128 dev eth0\nroute add fd10:200::/32 via ${nodeIPv6} dev eth0\n`,
    });
    await must(['ethtool', '-K', 'eth0', 'tx', 'off'], { netns: netnsPath });
    await acceptXdpFrames('eth0', netnsPath);
    return { name, netnsPath, ipv4, nodeIPv4, ipv6, nodeIPv6, nodeDev: dev };
  }

  /**
   * Puts `member` (a node or a world) on the underlay: a veth ("ul0" on its
   * side) into the underlay netns's bridge, member i getting 203.0.113.(65+i)/27
   * and 2001:db8:1::(i+1)/64. Tendril has no multi-node routing yet, so the
   * harness routes each node's pod ranges to the other nodes through its
   * underlay address. A world's device sends full checksums (a real wire's).
   */
  async joinUnderlay(member: Node | World): Promise<UnderlayMember> {
    if (!this.underlay) {
      const name = await this.addNamespace('underlay');
      const netnsPath = `/run/netns/${name}`;
      await must(['ip', '-batch', '-'], { netns: netnsPath, input: 'link add br0 type bridge\nlink set br0 up\n' });
      this.underlay = { netnsPath, members: [] };
    }
    const u = this.underlay;
    const i = u.members.length;
    if (i >= 30) throw new Error('the underlay holds 30 members');
    const port = `u${i}${this.prefix.slice(3)}`;
    const ipv4 = `203.0.113.${65 + i}`;
    const ipv6 = `2001:db8:1::${(i + 1).toString(16)}`;
    await must(['ip', 'link', 'add', port, 'type', 'veth', 'peer', 'name', 'ul0', 'netns', member.netnsPath], { netns: u.netnsPath });
    await must(['ip', '-batch', '-'], { netns: u.netnsPath, input: `link set ${port} master br0\nlink set ${port} up\n` });
    await acceptXdpFrames(port, u.netnsPath);
    await must(['ip', '-batch', '-'], { netns: member.netnsPath, input: `addr add ${ipv4}/27 dev ul0\naddr add ${ipv6}/64 dev ul0 nodad\nlink set ul0 up\n` });
    const mac = (JSON.parse(await must(['ip', '-j', 'link', 'show', 'ul0'], { netns: member.netnsPath })) as Array<{ address: string }>)[0]!.address;
    const node = member instanceof Node ? member : undefined;
    if (node) {
      for (const other of u.members) {
        if (!other.node) continue;
        await must(['ip', '-batch', '-'], { netns: node.netnsPath, input: `route add ${other.node.podCidr4} via ${other.ipv4}\nroute add ${other.node.podCidr6} via ${other.ipv6}\n` });
        await must(['ip', '-batch', '-'], { netns: other.netnsPath, input: `route add ${node.podCidr4} via ${ipv4}\nroute add ${node.podCidr6} via ${ipv6}\n` });
      }
    } else {
      await must(['ethtool', '-K', 'ul0', 'tx', 'off'], { netns: member.netnsPath });
    }
    const joined = { netnsPath: member.netnsPath, dev: 'ul0', mac, ipv4, ipv6, ...(node ? { node } : {}) };
    u.members.push(joined);
    return { netnsPath: joined.netnsPath, dev: joined.dev, mac, ipv4, ipv6 };
  }

  /** A bare world netns (no link yet): join it to the underlay with joinUnderlay(). */
  async addBareWorld(suffix = 'world'): Promise<World> {
    const name = await this.addNamespace(suffix);
    return { name, netnsPath: `/run/netns/${name}`, ipv4: '', nodeIPv4: '', ipv6: '', nodeIPv6: '', nodeDev: '' };
  }

  /** A long-running process inside a netns, killed at dispose; `stdin: true` gives it a pipe to write to. */
  spawnIn(netnsPath: string, argv: string[], options: { stdin?: boolean } = {}): ChildProcess {
    const child = spawn('nsenter', [`--net=${netnsPath}`, ...argv], { stdio: [options.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    this.children.push(child);
    return child;
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.dispose();
  }

  /** `fn` runs first at dispose, while the agents still run (e.g. a runtime's containers are removed through them). */
  onDispose(fn: () => Promise<void>): void {
    this.disposers.push(fn);
  }

  async dispose(): Promise<void> {
    live.delete(this);
    for (const fn of this.disposers.reverse()) await fn().catch(() => undefined);
    for (const child of this.children) if (child.exitCode === null) child.kill('SIGKILL');
    for (const agent of this.agents) await agent.kill('SIGKILL').catch(() => undefined);
    for (const name of this.namespaces.reverse()) await sh(['ip', 'netns', 'del', name]);
    removeLeftoverNamespaces(this.prefix);
    await sh(['umount', this.bpffs]);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

const live = new Set<Topology>();

/** Last resort when the test process exits without disposing (e.g. a crash). */
process.once('exit', () => {
  for (const topo of live) {
    for (const agent of topo.agents) agent.proc?.kill('SIGKILL');
    removeLeftoverNamespaces(topo.prefix);
    try {
      execFileSync('umount', [topo.bpffs], { stdio: 'ignore' });
    } catch {
      // not mounted
    }
    rmSync(topo.dir, { recursive: true, force: true });
  }
});

function removeLeftoverNamespaces(prefix: string): void {
  if (!existsSync('/run/netns')) return;
  for (const name of readdirSync('/run/netns')) {
    if (name.startsWith(`${prefix}-`)) {
      try {
        execFileSync('ip', ['netns', 'del', name], { stdio: 'ignore' });
      } catch {
        // gone already
      }
    }
  }
}

/**
 * A veth drops the frames its peer sends with XDP_TX or XDP_REDIRECT unless
 * it runs an XDP program itself (measured here: GRO on is not enough on
 * this kernel); a real NIC takes them as any frame. The devices facing a
 * node's XDP load balancer get a pass-through program.
 */
async function acceptXdpFrames(dev: string, netnsPath: string): Promise<void> {
  await must(['ip', 'link', 'set', 'dev', dev, 'xdpdrv', 'obj', join(REPO, 'build', 'bpf', 'tests', 'passthrough.o'), 'sec', 'xdp'], { netns: netnsPath });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
