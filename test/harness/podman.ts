/**
 * podman (Debian's 4.3) as a real CNI runtime for a test node: its own
 * containers.conf and storage under the topology's directory, the CNI
 * backend with a network "tendril" whose plugin is tendril-cni, runc and
 * cgroupfs, and a busybox image imported from the machine's busybox-static
 * (no registry). podman runs inside the node's netns, so the agent and the
 * containers' host-side links live there.
 */
import { mkdirSync, symlinkSync, writeFileSync, copyFileSync, existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, must, sh, type CmdResult, type Node, type Topology } from './topology.js';

export const PODMAN_IMAGE = 'localhost/tendril-busybox:test';
const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'ping', 'nc', 'ip', 'sleep', 'cat', 'echo', 'wget', 'httpd', 'hostname', 'ifconfig'];

export class Podman {
  private readonly env: NodeJS.ProcessEnv;

  private constructor(
    readonly node: Node,
    readonly dir: string,
  ) {
    this.env = { ...process.env, CONTAINERS_CONF: join(dir, 'containers.conf'), CONTAINERS_STORAGE_CONF: join(dir, 'storage.conf') };
  }

  /** Why podman cannot run here, or null. */
  static unavailable(): string | null {
    if (!existsSync('/usr/bin/podman')) return 'podman is not installed (scripts/setup.sh installs it)';
    if (!existsSync(BUSYBOX)) return `${BUSYBOX} is missing (busybox-static, installed by scripts/setup.sh)`;
    return null;
  }

  /** The network is examples/cni/tendril.conflist's: "tendril". */
  static async create(topo: Topology, node: Node): Promise<Podman> {
    const dir = join(topo.dir, `podman-${node.name}`);
    const bin = join(dir, 'cni-bin');
    const conf = join(dir, 'cni-conf');
    mkdirSync(bin, { recursive: true });
    mkdirSync(conf, { recursive: true });
    // A runtime runs the plugin named after the configuration's type.
    symlinkSync(join(REPO, 'build', 'bin', 'tendril-cni'), join(bin, 'tendril'));
    symlinkSync('/usr/lib/cni/loopback', join(bin, 'loopback'));
    // The example a user installs, with the test node's agent socket: podman's
    // clean-up processes (started by conmon) do not carry our environment.
    const example = JSON.parse(readFileSync(join(REPO, 'examples', 'cni', 'tendril.conflist'), 'utf8')) as { plugins: Array<Record<string, unknown>> };
    example.plugins[0]!.agentSocket = node.socket;
    writeFileSync(join(conf, 'tendril.conflist'), JSON.stringify(example, null, 2));
    writeFileSync(
      join(dir, 'containers.conf'),
      [
        '[containers]',
        'default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]',
        '[engine]',
        'cgroup_manager = "cgroupfs"',
        'runtime = "runc"',
        'events_logger = "file"',
        `tmp_dir = "${join(dir, 'tmp')}"`,
        '[network]',
        'network_backend = "cni"',
        `cni_plugin_dirs = ["${bin}"]`,
        `network_config_dir = "${conf}"`,
        '',
      ].join('\n'),
    );
    writeFileSync(join(dir, 'storage.conf'), ['[storage]', 'driver = "vfs"', `graphroot = "${join(dir, 'graph')}"`, `runroot = "${join(dir, 'run')}"`, ''].join('\n'));
    const podman = new Podman(node, dir);
    await podman.importBusybox();
    topo.onDispose(() => podman.removeAll());
    return podman;
  }

  /** podman ARGS inside the node's netns. */
  run(args: string[], timeoutMs = 60_000): Promise<CmdResult> {
    return sh(['nsenter', `--net=${this.node.netnsPath}`, 'podman', ...args], { env: this.env, timeoutMs });
  }

  async must(args: string[], timeoutMs?: number): Promise<string> {
    const r = await this.run(args, timeoutMs);
    if (r.code !== 0) throw new Error(`podman ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  private async importBusybox(): Promise<void> {
    const root = join(this.dir, 'rootfs');
    mkdirSync(join(root, 'bin'), { recursive: true });
    copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
    for (const applet of APPLETS) symlinkSync('busybox', join(root, 'bin', applet));
    mkdirSync(join(root, 'www'));
    writeFileSync(join(root, 'www', 'index.html'), 'served by a podman container\n');
    const tar = join(this.dir, 'busybox.tar');
    await must(['tar', '-C', root, '-cf', tar, '.']);
    await this.must(['import', tar, PODMAN_IMAGE]);
  }

  /** Every container of this podman goes (their DELs run), also after a failure. */
  async removeAll(): Promise<void> {
    await this.run(['rm', '-a', '-f', '-t', '0'], 60_000);
  }
}
