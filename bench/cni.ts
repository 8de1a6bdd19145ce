/**
 * CNI ADD and DEL, timed the way a runtime sees them: the plugin executed
 * with CNI_* and the configuration on stdin, until it exits. Tendril's
 * tendril-cni (which hands the call to the agent) beside Debian's reference
 * plugins, bridge with host-local IPAM, called the same way in the same
 * node netns. Medians over `samples` containers, each ADDed then DELeted.
 */
import { performance } from 'node:perf_hooks';
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { REPO, sh, type Node, type Topology } from '../test/harness/topology.js';
import { median } from './stats.js';

const REFERENCE_DIR = '/usr/lib/cni';

export interface CniTimes {
  addMs: number;
  delMs: number;
}

async function timedCall(argv: string[], env: Record<string, string>, stdin: string, netns?: string): Promise<number> {
  const t0 = performance.now();
  const r = await sh(argv, { input: stdin, env: { PATH: process.env.PATH ?? '', ...env }, ...(netns ? { netns } : {}) });
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(`${argv.join(' ')} ${env.CNI_COMMAND} failed (${r.code}): ${r.stdout}${r.stderr}`);
  return ms;
}

async function timeAddDel(topo: Topology, samples: number, call: (command: string, env: Record<string, string>) => Promise<number>): Promise<CniTimes> {
  const adds: number[] = [];
  const dels: number[] = [];
  for (let i = 0; i < samples; i++) {
    const name = await topo.addNamespace(`cni${Math.random().toString(36).slice(2, 8)}`);
    const env = { CNI_CONTAINERID: `bench-${name}`, CNI_NETNS: `/run/netns/${name}`, CNI_IFNAME: 'eth0', CNI_PATH: REFERENCE_DIR };
    adds.push(await call('ADD', env));
    dels.push(await call('DEL', env));
  }
  return { addMs: median(adds), delMs: median(dels) };
}

/**
 * tendril-cni against the node's agent, run in the node netns as the runtime
 * (and the reference) is. The node is measured settled, as a node between
 * pod starts is: its prepared endpoints loaded (tendril status).
 */
export async function tendrilCniTimes(topo: Topology, node: Node, samples: number): Promise<CniTimes> {
  for (const deadline = Date.now() + 30_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50))) {
    const { ready, target } = (await node.client.status()).preparedEndpoints;
    if (ready >= target) break;
  }
  const conf = JSON.stringify({ cniVersion: '1.0.0', name: 'bench', type: 'tendril' });
  const plugin = join(REPO, 'build', 'bin', 'tendril-cni');
  return timeAddDel(topo, samples, (command, env) => timedCall([plugin], { ...env, CNI_COMMAND: command, TENDRIL_SOCKET: node.socket }, conf, node.netnsPath));
}

/** Debian's bridge + host-local, run inside the node netns (the bridge is made there). */
export async function referenceCniTimes(topo: Topology, node: Node, samples: number): Promise<CniTimes> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tnd-hostlocal-'));
  try {
    const conf = JSON.stringify({
      cniVersion: '1.0.0',
      name: 'bench-ref',
      type: 'bridge',
      bridge: 'cniref0',
      isGateway: true,
      ipMasq: false,
      ipam: { type: 'host-local', ranges: [[{ subnet: '10.222.0.0/16' }]], dataDir },
    });
    return await timeAddDel(topo, samples, (command, env) => timedCall([join(REFERENCE_DIR, 'bridge')], { ...env, CNI_COMMAND: command }, conf, node.netnsPath));
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
