/**
 * The XDP load balancer asks the FIB of the namespace it runs in, and a
 * BPF_PROG_TEST_RUN runs in the caller's: so its tests run inside a node
 * namespace of their own. runInNodeNetns() builds that namespace (and the
 * one holding the far ends of its devices), mounts a private bpffs, runs
 * `node --test <file>` inside it with nsenter (which keeps the bpffs mount)
 * and removes everything afterwards, also on failure. The file sees
 * innerEnv() set and runs its real tests.
 *
 * The node (addresses from the documentation ranges, MACs fixed so output
 * bytes are exact):
 *   ext0 02:00:00:00:e0:00  203.0.113.1/24  2001:db8::1/64   the external interface
 *        neighbours 203.0.113.2 / 2001:db8::2 (another node, aa:02) and
 *        203.0.113.7 / 2001:db8::7 (a client, aa:07), permanent;
 *        10.200.2.0/24 and fd10:200:0:2::/64 via the other node
 *   ext1 02:00:00:00:e1:00  198.51.100.1/24, 10.200.3.0/24 via 198.51.100.2 (bb:02)
 *   lxc0 a pod's veth: 10.200.1.5 and fd10:200:0:1::5 routed to it
 * Forwarding is on.
 */
import { spawnSync } from 'node:child_process';
import { ipIn, privateBpffs, uniqueName } from '../../src/bpf/testdata/fixtures.js';

const ENV = 'TND_XDP_NODE_NETNS';

export const NODE = {
  ext0Mac: '02:00:00:00:e0:00',
  ext1Mac: '02:00:00:00:e1:00',
  node4: '203.0.113.1',
  node6: '2001:db8::1',
  peer4: '203.0.113.2',
  peer6: '2001:db8::2',
  peerMac: '02:00:00:00:aa:02',
  client4: '203.0.113.7',
  client6: '2001:db8::7',
  clientMac: '02:00:00:00:aa:07',
  ext1Peer4: '198.51.100.2',
  ext1PeerMac: '02:00:00:00:bb:02',
  remoteBackend4: '10.200.2.5',
  remoteBackend6: 'fd10:200:0:2::5',
  otherBackend4: '10.200.3.5',
  localBackend4: '10.200.1.5',
  localBackend6: 'fd10:200:0:1::5',
} as const;

/** Inside: the namespace's name and the bpffs to pin in; undefined outside. */
export function innerEnv(): { netns: string; bpffs: string } | undefined {
  const v = process.env[ENV];
  if (!v) return undefined;
  return JSON.parse(v) as { netns: string; bpffs: string };
}

function build(node: string, peer: string): void {
  ipIn(node, 'link', 'add', 'ext0', 'address', NODE.ext0Mac, 'type', 'veth', 'peer', 'name', 'ext0p', 'netns', peer);
  ipIn(node, 'link', 'add', 'ext1', 'address', NODE.ext1Mac, 'type', 'veth', 'peer', 'name', 'ext1p', 'netns', peer);
  ipIn(node, 'link', 'add', 'lxc0', 'type', 'veth', 'peer', 'name', 'pod0', 'netns', peer);
  for (const dev of ['lo', 'ext0', 'ext1', 'lxc0']) ipIn(node, 'link', 'set', dev, 'up');
  for (const dev of ['lo', 'ext0p', 'ext1p', 'pod0']) ipIn(peer, 'link', 'set', dev, 'up');
  const sysctl = spawnSync('nsenter', [`--net=/run/netns/${node}`, 'sysctl', '-qw', 'net.ipv4.conf.all.forwarding=1', 'net.ipv6.conf.all.forwarding=1'], { encoding: 'utf8' });
  if (sysctl.status !== 0) throw new Error(`sysctl in ${node}: ${sysctl.stderr}`);
  ipIn(node, 'addr', 'add', `${NODE.node4}/24`, 'dev', 'ext0');
  ipIn(node, 'addr', 'add', `${NODE.node6}/64`, 'dev', 'ext0', 'nodad');
  ipIn(node, 'addr', 'add', '198.51.100.1/24', 'dev', 'ext1');
  ipIn(node, 'neigh', 'add', NODE.peer4, 'lladdr', NODE.peerMac, 'nud', 'permanent', 'dev', 'ext0');
  ipIn(node, 'neigh', 'add', NODE.peer6, 'lladdr', NODE.peerMac, 'nud', 'permanent', 'dev', 'ext0');
  ipIn(node, 'neigh', 'add', NODE.client4, 'lladdr', NODE.clientMac, 'nud', 'permanent', 'dev', 'ext0');
  ipIn(node, 'neigh', 'add', NODE.client6, 'lladdr', NODE.clientMac, 'nud', 'permanent', 'dev', 'ext0');
  ipIn(node, 'neigh', 'add', NODE.ext1Peer4, 'lladdr', NODE.ext1PeerMac, 'nud', 'permanent', 'dev', 'ext1');
  ipIn(node, 'route', 'add', '10.200.2.0/24', 'via', NODE.peer4);
  ipIn(node, '-6', 'route', 'add', 'fd10:200:0:2::/64', 'via', NODE.peer6);
  ipIn(node, 'route', 'add', '10.200.3.0/24', 'via', NODE.ext1Peer4);
  ipIn(node, 'route', 'add', `${NODE.localBackend4}/32`, 'dev', 'lxc0');
  ipIn(node, '-6', 'route', 'add', `${NODE.localBackend6}/128`, 'dev', 'lxc0');
}

function withoutTestContext(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const out = { ...env };
  delete out.NODE_TEST_CONTEXT;
  return out;
}

/**
 * Builds the node namespace (and its peers' one) and a private bpffs, runs
 * fn with their names, removes everything afterwards, also on failure.
 */
export function withNodeNetns<T>(fn: (netns: string, bpffs: string) => T): T {
  const node = uniqueName('tndxdp');
  const peer = uniqueName('tndxdp');
  const bpffs = privateBpffs();
  try {
    spawnSync('ip', ['netns', 'add', node]);
    spawnSync('ip', ['netns', 'add', peer]);
    build(node, peer);
    return fn(node, bpffs.dir);
  } finally {
    spawnSync('ip', ['netns', 'del', node]);
    spawnSync('ip', ['netns', 'del', peer]);
    bpffs.cleanup();
  }
}

/** Runs `node --test file` inside a fresh node namespace; its exit status and output. */
export function runInNodeNetns(file: string, timeoutMs = 120_000): { status: number | null; output: string } {
  return withNodeNetns((node, bpffs) => {
    const r = spawnSync('nsenter', [`--net=/run/netns/${node}`, process.execPath, '--test', '--test-reporter=spec', file], {
      encoding: 'utf8',
      timeout: timeoutMs,
      // Not as a child of our own test runner (NODE_TEST_CONTEXT): a run of its own, with its own exit code.
      env: { ...withoutTestContext(process.env), [ENV]: JSON.stringify({ netns: node, bpffs }) },
    });
    return { status: r.status, output: `${r.stdout}\n${r.stderr}` };
  });
}
