/**
 * Socket LB on the real kernel. cgroup sock_addr programs cannot be run
 * through BPF_PROG_TEST_RUN (the kernel answers ENOTSUPP, checked below), so
 * real sockets it is: a pod namespace joined by a veth to a backends
 * namespace (three addresses on its lo, TCP and UDP servers), sock.o
 * attached to a child cgroup of the cgroup2 root made for this run, and
 * clients started inside that cgroup and the pod's namespace. A second,
 * unregistered namespace has the frontend address itself, on lo.
 * Everything (namespaces, processes, cgroup, links, pins, bpffs) is the
 * test's own and removed at the end, also on failure.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ipIn, privateBpffs, uniqueName } from '../bpf/testdata/fixtures.js';
import { BpfObject, bpfObjectPath } from '../bpf/index.js';
import { TndSockConfig } from '../bpf/generated/wire.js';
import { netnsCookie } from '../sys/index.js';
import type { BackendEntry, FrontendEntry } from '../common/lb.js';
import { LB_MAPS, LbMaps } from './lb-maps.js';
import { SockLb, cgroup2Root } from './sock-lb.js';
import { PinPaths } from './paths.js';

const HELPER = fileURLToPath(new URL('./testdata/sock-lb-helper.js', import.meta.url));

const POD4 = '10.200.61.2';
const POD6 = 'fd10:200:61::2';
const GW4 = '10.200.61.1';
const GW6 = 'fd10:200:61::1';
const BACK4 = ['10.200.62.1', '10.200.62.2', '10.200.62.3'];
const BACK6 = ['fd10:200:62::1', 'fd10:200:62::2', 'fd10:200:62::3'];
const VIP = '10.96.61.10'; // TCP :80 and UDP :53
const VIP_AFFINITY = '10.96.61.11';
const VIP_EMPTY = '10.96.61.12';
const VIP_TERMINATING = '10.96.61.13';
const VIP6 = 'fd10:96::61';

type Result = Record<string, unknown>;

describe('socket LB (sock.o on a cgroup) on the real kernel', () => {
  const prefix = uniqueName('tndslb');
  const ns = { pod: `${prefix}-p`, back: `${prefix}-b`, other: `${prefix}-u` };
  const cgroup = join(cgroup2Root(), prefix);
  const procs: ChildProcess[] = [];
  let fs: ReturnType<typeof privateBpffs> | undefined;
  let paths: PinPaths;
  let maps: LbMaps | undefined;
  let lb: SockLb | undefined;
  let backends: ChildProcess;

  /** A client in the test's cgroup and the namespace `netns`; its one JSON line of results. */
  function client(netns: string, ops: unknown[]): Promise<Result[][] | Result[]> {
    return new Promise((resolve, reject) => {
      execFile(
        'sh',
        ['-c', 'echo $$ > "$0/cgroup.procs" && exec nsenter --net="$1" "$2" "$3" client "$4"', cgroup, `/run/netns/${netns}`, process.execPath, HELPER, JSON.stringify(ops)],
        { timeout: 60_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`client failed: ${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout))),
      );
    });
  }

  function serverIn(netns: string, cfg: unknown): Promise<ChildProcess> {
    const p = spawn('nsenter', [`--net=/run/netns/${netns}`, process.execPath, HELPER, 'server', JSON.stringify(cfg)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    procs.push(p);
    return new Promise((resolve, reject) => {
      p.once('message', () => resolve(p));
      p.once('exit', (code) => reject(new Error(`server in ${netns} exited (${code})`)));
    });
  }

  function serverCounts(p: ChildProcess): Promise<Record<string, number>> {
    return new Promise((resolve) => {
      p.once('message', (m: { counts: Record<string, number> }) => resolve(m.counts));
      p.send({ type: 'counts' });
    });
  }

  const roundRobin = (ids: number[]) => Uint32Array.from({ length: maps!.maglevSize }, (_, i) => ids[i % ids.length]!);

  function backend(id: number, address: string, port: number, protocol: 'TCP' | 'UDP' = 'TCP', state: BackendEntry['state'] = 'active'): void {
    maps!.setBackend({ id, address, port, protocol, state });
  }

  function frontend(address: string, port: number, o: Partial<FrontendEntry> & { serviceId: number; maglevId: number }): void {
    maps!.setFrontend({ frontend: { address, port, protocol: 'TCP' }, scope: 'cluster', mode: 'snat', affinityTimeoutSec: 0, activeBackends: 3, ...o });
  }

  before(async () => {
    fs = privateBpffs();
    paths = new PinPaths(fs.dir, 'n1');
    for (const n of Object.values(ns)) {
      execFileSync('ip', ['netns', 'add', n]);
      ipIn(n, 'link', 'set', 'lo', 'up');
    }
    ipIn(ns.pod, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0b', 'netns', ns.back);
    ipIn(ns.back, 'link', 'set', 'eth0b', 'name', 'eth0');
    ipIn(ns.pod, 'addr', 'add', `${POD4}/24`, 'dev', 'eth0');
    ipIn(ns.pod, 'addr', 'add', `${POD6}/64`, 'dev', 'eth0', 'nodad');
    ipIn(ns.back, 'addr', 'add', `${GW4}/24`, 'dev', 'eth0');
    ipIn(ns.back, 'addr', 'add', `${GW6}/64`, 'dev', 'eth0', 'nodad');
    for (const a of BACK4) ipIn(ns.back, 'addr', 'add', `${a}/32`, 'dev', 'lo');
    for (const a of BACK6) ipIn(ns.back, 'addr', 'add', `${a}/128`, 'dev', 'lo');
    for (const n of [ns.pod, ns.back]) ipIn(n, 'link', 'set', 'eth0', 'up');
    ipIn(ns.pod, 'route', 'add', 'default', 'via', GW4);
    ipIn(ns.pod, '-6', 'route', 'add', 'default', 'via', GW6);
    ipIn(ns.other, 'addr', 'add', `${VIP}/32`, 'dev', 'lo');

    backends = await serverIn(ns.back, {
      tcp: [...BACK4, ...BACK6].map((addr) => ({ addr, port: 8080 })),
      udp: BACK4.map((addr) => ({ addr, port: 5353 })),
    });
    await serverIn(ns.other, { tcp: [{ addr: VIP, port: 80 }], udp: [] });

    mkdirSync(cgroup);
    maps = LbMaps.open(paths);
    lb = SockLb.attach(maps, { cgroup });
    maps.registerPodNetns(netnsCookie(`/run/netns/${ns.pod}`), 7, POD4, POD6);

    // TCP 10.96.61.10:80 and 10.96.61.11:80 (affinity) share table 1 over backends 101-103.
    BACK4.forEach((a, i) => backend(101 + i, a, 8080));
    maps.setMaglev(1, roundRobin([101, 102, 103]));
    frontend(VIP, 80, { serviceId: 1, maglevId: 1 });
    frontend(VIP_AFFINITY, 80, { serviceId: 2, maglevId: 1, affinityTimeoutSec: 60 });
    // UDP 10.96.61.10:53 -> :5353.
    BACK4.forEach((a, i) => backend(111 + i, a, 5353, 'UDP'));
    maps.setMaglev(2, roundRobin([111, 112, 113]));
    maps.setFrontend({ frontend: { address: VIP, port: 53, protocol: 'UDP' }, scope: 'cluster', serviceId: 3, mode: 'snat', affinityTimeoutSec: 0, maglevId: 2, activeBackends: 3 });
    // IPv6.
    BACK6.forEach((a, i) => backend(121 + i, a, 8080));
    maps.setMaglev(3, roundRobin([121, 122, 123]));
    frontend(VIP6, 80, { serviceId: 4, maglevId: 3 });
    // No backends: TCP and UDP.
    frontend(VIP_EMPTY, 80, { serviceId: 5, maglevId: 1, activeBackends: 0 });
    maps.setFrontend({ frontend: { address: VIP_EMPTY, port: 53, protocol: 'UDP' }, scope: 'cluster', serviceId: 6, mode: 'snat', affinityTimeoutSec: 0, maglevId: 2, activeBackends: 0 });
    // A stale table still naming a terminating backend (133).
    BACK4.forEach((a, i) => backend(131 + i, a, 8080, 'TCP', i === 2 ? 'terminating' : 'active'));
    maps.setMaglev(4, roundRobin([131, 132, 133]));
    frontend(VIP_TERMINATING, 80, { serviceId: 7, maglevId: 4, activeBackends: 2 });
  });

  after(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    if (fs) {
      try {
        SockLb.detach(paths);
      } catch {
        // the bpffs goes below, and its pins with it
      }
    }
    maps?.close();
    if (existsSync(cgroup)) {
      // Clients exit before their test ends; a process left over would keep the cgroup busy.
      for (const pid of readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // gone already
        }
      }
      for (let i = 0; i < 50 && readFileSync(join(cgroup, 'cgroup.procs'), 'utf8').trim(); i++) execFileSync('sleep', ['0.1']);
      rmdirSync(cgroup);
    }
    for (const n of Object.values(ns)) execFile('ip', ['netns', 'del', n], () => undefined);
    fs?.cleanup();
  });

  it('cannot be test-run: the kernel has no BPF_PROG_TEST_RUN for cgroup sock_addr programs', () => {
    using obj = BpfObject.open(bpfObjectPath('sock.o'), {
      constants: { CONFIG: TndSockConfig.encode({ maglevSize: maps!.maglevSize }) },
      reuseMaps: Object.fromEntries(LB_MAPS.map((n) => [n, maps!.get(n)])),
      autoload: { sock6_connect: false, sock4_sendmsg: false, sock6_sendmsg: false, sock4_recvmsg: false, sock6_recvmsg: false, sock4_getpeer: false, sock6_getpeer: false },
    });
    obj.load();
    assert.throws(() => obj.program('sock4_connect').testRun({ data: Buffer.alloc(64) }), (e: { errno?: number }) => e.errno === 524 /* ENOTSUPP */);
  });

  it('spreads TCP connections over the backends; the counters, the servers and getpeername agree', async () => {
    const before = maps!.backendConnections();
    const serversBefore = await serverCounts(backends);
    const [results] = (await client(ns.pod, [{ op: 'tcp', host: VIP, port: 80, n: 60 }])) as Result[][];
    const seen: Record<string, number> = {};
    for (const r of results!) {
      assert.equal(r.error, undefined, JSON.stringify(r));
      assert.deepEqual([r.remote, r.remotePort], [VIP, 80], 'getpeername shows the frontend');
      seen[r.backend as string] = (seen[r.backend as string] ?? 0) + 1;
    }
    assert.deepEqual(Object.keys(seen).sort(), BACK4, `every backend got some: ${JSON.stringify(seen)}`);
    const after = maps!.backendConnections();
    const serversAfter = await serverCounts(backends);
    BACK4.forEach((a, i) => {
      const id = 101 + i;
      assert.equal(after.get(id)! - (before.get(id) ?? 0), seen[a], `counter of backend ${id}`);
      assert.equal((serversAfter[`tcp ${a}`] ?? 0) - (serversBefore[`tcp ${a}`] ?? 0), seen[a], `server ${a}`);
    });
  });

  it('keeps a client on one backend when the service has affinity', async () => {
    const [results] = (await client(ns.pod, [{ op: 'tcp', host: VIP_AFFINITY, port: 80, n: 20 }])) as Result[][];
    const chosen = new Set(results!.map((r) => r.backend));
    assert.equal(chosen.size, 1, JSON.stringify(results));
    assert.ok(BACK4.includes([...chosen][0] as string));
    assert.ok(results!.every((r) => r.remote === VIP_AFFINITY));
  });

  it('refuses at once when the service has no active backend (TCP connect and UDP sendto)', async () => {
    const [tcp, udp] = (await client(ns.pod, [
      { op: 'tcp', host: VIP_EMPTY, port: 80, n: 2 },
      { op: 'udp', host: VIP_EMPTY, port: 53, n: 1 },
    ])) as Result[][];
    for (const r of tcp!) {
      assert.equal(r.error, 'ECONNREFUSED', JSON.stringify(r));
      assert.ok((r.ms as number) < 1000, `refused after ${r.ms} ms`);
    }
    assert.deepEqual(udp, [{ error: 'ECONNREFUSED' }]);
    assert.ok(maps!.sockStats().TND_LB_SOCK_NO_BACKENDS! >= 3);
  });

  it('answers UDP through the frontend: replies come from it (recvmsg), one backend per socket, counted once', async () => {
    const before = maps!.backendConnections();
    const [many, connected] = (await client(ns.pod, [
      { op: 'udp', host: VIP, port: 53, n: 5 },
      { op: 'udp-connected', host: VIP, port: 53 },
    ])) as [Result[], Result];
    assert.equal(many!.length, 5, JSON.stringify(many));
    for (const r of many!) assert.deepEqual([r.from, r.fromPort], [VIP, 53], JSON.stringify(r));
    assert.equal(new Set(many!.map((r) => r.backend)).size, 1, 'one socket, one backend');
    assert.ok(BACK4.includes(many![0]!.backend as string));
    assert.deepEqual([connected.remote, connected.remotePort], [VIP, 53], 'getpeername of a connected UDP socket');
    assert.ok(BACK4.includes(connected.backend as string));
    const after = maps!.backendConnections();
    const added = [111, 112, 113].reduce((n, id) => n + after.get(id)! - (before.get(id) ?? 0), 0);
    assert.equal(added, 2, 'the unconnected socket once, the connected one once');
  });

  it('balances an IPv6 frontend, and a v4-mapped address over the IPv4 service', async () => {
    const [v6, mapped] = (await client(ns.pod, [
      { op: 'tcp', host: VIP6, port: 80, n: 12 },
      { op: 'tcp', host: `::ffff:${VIP}`, port: 80, n: 6 },
    ])) as Result[][];
    for (const r of v6!) {
      assert.ok(BACK6.includes(r.backend as string), JSON.stringify(r));
      assert.equal(r.remote, VIP6);
    }
    for (const r of mapped!) {
      assert.ok(BACK4.includes(r.backend as string), JSON.stringify(r));
      assert.equal(r.remote, `::ffff:${VIP}`);
    }
  });

  it('gives a terminating backend no new connections, even from a stale table', async () => {
    const [results] = (await client(ns.pod, [{ op: 'tcp', host: VIP_TERMINATING, port: 80, n: 30 }])) as Result[][];
    for (const r of results!) assert.equal(r.error, undefined, JSON.stringify(r));
    const seen = new Set(results!.map((r) => r.backend));
    assert.ok(!seen.has(BACK4[2]), JSON.stringify([...seen]));
    assert.deepEqual([...seen].sort(), BACK4.slice(0, 2));
  });

  it('leaves sockets of an unregistered namespace alone, in the same cgroup', async () => {
    const [results] = (await client(ns.other, [{ op: 'tcp', host: VIP, port: 80, n: 3 }])) as Result[][];
    for (const r of results!) assert.deepEqual([r.backend, r.remote], [VIP, VIP], JSON.stringify(r));
  });

  it('attaching again swaps the programs of the same pinned links; detaching removes them', async () => {
    const again = SockLb.attach(maps!, { cgroup });
    for (const [name, info] of again.links) {
      assert.equal(info.id, lb!.links.get(name)!.id, `${name} keeps its link`);
      assert.notEqual(info.progId, lb!.links.get(name)!.progId, `${name} runs the new program`);
    }
    assert.equal(SockLb.pinned(paths).size, 8);
    assert.equal(SockLb.detach(paths), 8);
    assert.equal(SockLb.pinned(paths).size, 0);
    // Untranslated, the frontend is nobody's: no backend answers.
    const [results] = (await client(ns.pod, [{ op: 'tcp', host: VIP, port: 80, n: 1, timeoutMs: 1500 }])) as Result[][];
    assert.equal(results![0]!.backend, undefined, JSON.stringify(results));
  });
});
