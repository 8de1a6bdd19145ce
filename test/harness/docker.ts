/**
 * dockerd (Debian's docker.io, 20.10) for a test node, with tendril-docker as
 * its network and IPAM driver. Everything is private to the test: dockerd
 * runs in the node's netns and in a mount namespace of its own, where a
 * directory of the topology is bound over /etc/docker (its key.json and
 * plugins/tendril.spec, which names tendril-docker's socket); its data-root,
 * exec-root, pidfile and API socket live in the topology's directory. Its
 * mounts (overlay2, netns files) exist only in that mount namespace, so they
 * go with its last process. Images come from the machine's busybox-static.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO, must, sh, sleep, type CmdResult, type Node, type Topology } from './topology.js';

export const DOCKER_IMAGE = 'tendril-busybox:test';
const BUSYBOX = '/bin/busybox';
const APPLETS = ['sh', 'ping', 'nc', 'ip', 'sleep', 'cat', 'echo', 'httpd', 'hostname', 'ifconfig', 'route'];
const DRIVER_BIN = join(REPO, 'bin', 'tendril-docker');

/** A process of the test, with its output kept for failure messages. */
class Proc {
  log = '';
  constructor(readonly child: ChildProcess) {
    child.stdout?.on('data', (d) => (this.log += d));
    child.stderr?.on('data', (d) => (this.log += d));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 20_000): Promise<void> {
    if (!this.running) return;
    const gone = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), graceMs);
    await gone;
    clearTimeout(timer);
  }
}

export class Dockerd {
  private daemon: Proc | undefined;
  driver: Proc | undefined;
  readonly host: string;
  readonly pluginSocket: string;

  private constructor(
    readonly node: Node,
    readonly dir: string,
  ) {
    this.host = `unix://${join(dir, 'run', 'docker.sock')}`;
    this.pluginSocket = join(dir, 'run', 'tendril.sock');
  }

  /** Why dockerd cannot run here, or null. */
  static unavailable(): string | null {
    if (!existsSync('/usr/sbin/dockerd')) return 'dockerd is not installed (scripts/setup.sh installs docker.io)';
    if (!existsSync(BUSYBOX)) return `${BUSYBOX} is missing (busybox-static, installed by scripts/setup.sh)`;
    return null;
  }

  /** dockerd and tendril-docker for `node` (its agent running), with the busybox image imported. */
  static async start(topo: Topology, node: Node): Promise<Dockerd> {
    const d = new Dockerd(node, join(topo.dir, `docker-${node.name}`));
    topo.onDispose(() => d.dispose());
    for (const sub of ['etc/plugins', 'data', 'exec', 'run']) mkdirSync(join(d.dir, sub), { recursive: true });
    // The mount point of dockerd's private /etc/docker (docker.io's own directory; empty).
    mkdirSync('/etc/docker', { recursive: true });
    // The example spec a user installs, pointing at this test's socket.
    const spec = readFileSync(join(REPO, 'examples', 'docker', 'tendril.spec'), 'utf8').replace(/unix:\/\/\S+/, `unix://${d.pluginSocket}`);
    writeFileSync(join(d.dir, 'etc', 'plugins', 'tendril.spec'), spec);
    await d.startDriver();
    const script = [
      `mount --bind ${join(d.dir, 'etc')} /etc/docker`,
      [
        'exec dockerd',
        `--data-root ${join(d.dir, 'data')}`,
        `--exec-root ${join(d.dir, 'exec')}`,
        `--pidfile ${join(d.dir, 'run', 'docker.pid')}`,
        `-H ${d.host}`,
        '--bridge=none --iptables=false --ip6tables=false --ip-masq=false',
        `--storage-driver ${process.env.TENDRIL_DOCKER_STORAGE ?? 'overlay2'}`,
        // containerd namespaces of our own: a machine's containerd is never shared with.
        `--containerd-namespace ${topo.prefix} --containerd-plugins-namespace ${topo.prefix}-plugins`,
      ].join(' '),
    ].join(' && ');
    d.daemon = new Proc(
      spawn('nsenter', [`--net=${node.netnsPath}`, 'unshare', '-m', '--propagation', 'private', 'sh', '-c', script], { stdio: ['ignore', 'pipe', 'pipe'] }),
    );
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (!d.daemon.running) throw new Error(`dockerd exited at start:\n${d.daemon.log.slice(-3000)}`);
      if ((await d.docker(['version', '--format', '{{.Server.Version}}'], 10_000)).code === 0) break;
      if (Date.now() > deadline) throw new Error(`dockerd did not answer within 60 s:\n${d.daemon.log.slice(-3000)}`);
      await sleep(200);
    }
    await d.importBusybox();
    return d;
  }

  /** (Re)starts tendril-docker in the node's netns, where it talks to the node's agent and dockerd. */
  async startDriver(): Promise<void> {
    if (this.driver?.running) throw new Error('tendril-docker runs already');
    const args = [DRIVER_BIN, '--socket', this.pluginSocket, '--agent-socket', this.node.socket, '--docker-host', this.host];
    const driver = new Proc(spawn('nsenter', [`--net=${this.node.netnsPath}`, process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
    this.driver = driver;
    const deadline = Date.now() + 20_000;
    while (!driver.log.includes('serving ')) {
      if (!driver.running) throw new Error(`tendril-docker exited at start:\n${driver.log}`);
      if (Date.now() > deadline) throw new Error(`tendril-docker did not start within 20 s:\n${driver.log}`);
      await sleep(50);
    }
  }

  async stopDriver(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (!this.driver?.running) return;
    if (signal === 'SIGKILL') {
      const gone = new Promise<void>((resolve) => this.driver!.child.once('exit', () => resolve()));
      this.driver.child.kill('SIGKILL');
      await gone;
    } else await this.driver.stop();
  }

  get logs(): string {
    return `--- dockerd ---\n${this.daemon?.log.slice(-4000) ?? ''}\n--- tendril-docker ---\n${this.driver?.log.slice(-4000) ?? ''}`;
  }

  /** The docker CLI against this daemon. */
  docker(args: string[], timeoutMs = 60_000): Promise<CmdResult> {
    return sh(['docker', '-H', this.host, ...args], { timeoutMs });
  }

  async must(args: string[], timeoutMs?: number): Promise<string> {
    const r = await this.docker(args, timeoutMs);
    if (r.code !== 0) throw new Error(`docker ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}\n${this.logs}`);
    return r.stdout;
  }

  private async importBusybox(): Promise<void> {
    const root = join(this.dir, 'rootfs');
    mkdirSync(join(root, 'bin'), { recursive: true });
    copyFileSync(BUSYBOX, join(root, 'bin', 'busybox'));
    for (const applet of APPLETS) symlinkSync('busybox', join(root, 'bin', applet));
    for (const d of ['www', 'etc', 'proc', 'sys', 'dev', 'tmp']) mkdirSync(join(root, d), { recursive: true });
    writeFileSync(join(root, 'www', 'index.html'), 'served by a docker container\n');
    const tar = join(this.dir, 'busybox.tar');
    await must(['tar', '-C', root, '-cf', tar, '.']);
    await this.must(['import', tar, DOCKER_IMAGE]);
  }

  /**
   * Containers and networks go (through the driver, while it runs), then
   * dockerd and tendril-docker stop; the directory goes once no process of
   * dockerd's mount namespace is left (nothing is mounted outside it).
   */
  async dispose(): Promise<void> {
    if (this.daemon?.running) {
      const ids = (await this.docker(['ps', '-aq'])).stdout.split('\n').filter(Boolean);
      if (ids.length) await this.docker(['rm', '-f', ...ids], 120_000);
      const nets = (await this.docker(['network', 'ls', '-q', '--filter', 'driver=tendril'])).stdout.split('\n').filter(Boolean);
      if (nets.length) await this.docker(['network', 'rm', ...nets]);
      await this.daemon.stop(30_000);
    }
    await this.driver?.stop();
    // containerd, its shims and the containers outlive a killed dockerd: end this daemon's, by pid.
    for (const pid of await processesUnder(this.dir)) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    for (let i = 0; i < 100 && (await processesUnder(this.dir)).length > 0; i++) await sleep(100);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

/**
 * Pids of the processes of this daemon, by id: those whose command line names
 * `dir` (containerd and its shims name dockerd's exec-root) or whose mount
 * table does (dockerd's private /etc/docker, a container's overlay on the
 * data-root). A container's processes keep running when their shim is gone.
 */
async function processesUnder(dir: string): Promise<number[]> {
  const pids: number[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(dir) || readFileSync(`/proc/${pid}/mountinfo`, 'utf8').includes(dir)) pids.push(pid);
    } catch {
      // gone meanwhile, or a kernel thread
    }
  }
  return pids;
}
