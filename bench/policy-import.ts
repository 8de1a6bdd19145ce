/**
 * Policy at scale: import and enforce 1,000 rules over 100 endpoints while
 * 10,000 identities exist, through the agent's own enforcement code (parse,
 * validate, resolve, swap the endpoints' policy maps in the kernel). The
 * baseline is the kernel part alone: writing the same entries into fresh
 * policy maps. Also: from `policy import` returning to the first packet the
 * datapath denies, measured on real traffic between two pods.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { NodeMaps } from '../src/datapath/node-maps.js';
import { PinPaths } from '../src/datapath/paths.js';
import { MemoryKvstore } from '../src/kvstore/memory.js';
import { IdentityAllocator } from '../src/identity/allocator.js';
import { Ipcache } from '../src/ipcache/ipcache.js';
import { PolicyRepository } from '../src/policy/repository.js';
import { PolicyEnforcement } from '../src/policy/enforcement.js';
import type { PolicyMapEntry } from '../src/common/policy-entry.js';
import { Topology, REPO, sleep } from '../test/harness/topology.js';
import { median } from './stats.js';

const APPS = 500;
const SHARDS = 20; // APPS x SHARDS = 10,000 identities
const ENDPOINTS = 100;
const RULES_PER_POLICY = 10; // ENDPOINTS policies x 10 = 1,000 rules

/**
 * One CiliumNetworkPolicy per endpoint app with ten rules: seven admit an app
 * (20 identities each, one per shard) on one TCP port, one admits an app on a
 * port range over every protocol, one a CIDR with an except, and one denies a
 * single identity.
 */
function policyText(): string {
  const docs: string[] = [];
  for (let k = 0; k < ENDPOINTS; k++) {
    const rules: string[] = [];
    for (let j = 0; j < RULES_PER_POLICY - 1; j++) {
      const peer = (k + j + 1) % APPS;
      if (j < 7) rules.push(`  - fromEndpoints: [ { matchLabels: { app: app${peer} } } ]\n    toPorts: [ { ports: [ { port: "${8000 + j}", protocol: TCP } ] } ]`);
      else if (j === 7) rules.push(`  - fromEndpoints: [ { matchLabels: { app: app${peer} } } ]\n    toPorts: [ { ports: [ { port: "9000", endPort: 9010, protocol: ANY } ] } ]`);
      else rules.push(`  - fromCIDRSet: [ { cidr: 198.51.${k}.0/24, except: [ 198.51.${k}.128/25 ] } ]`);
    }
    docs.push(
      `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: { name: app${k} }\nspec:\n  endpointSelector: { matchLabels: { app: app${k}, shard: s0 } }\n  ingress:\n${rules.join('\n')}\n  ingressDeny:\n  - fromEndpoints: [ { matchLabels: { app: app${(k + 1) % APPS}, shard: s19 } } ]`,
    );
  }
  return docs.join('\n---\n');
}

export interface PolicyScaleFigures {
  importMs: number;
  baselineMs: number;
  entries: number;
  rules: number;
  identities: number;
  endpoints: number;
}

export async function policyAtScale(runs: number): Promise<PolicyScaleFigures> {
  const dir = mkdtempSync(join(tmpdir(), 'tnd-bench-policy-'));
  const bpffs = join(dir, 'bpffs');
  mkdirSync(bpffs);
  execFileSync('mount', ['-t', 'bpf', 'bpf', bpffs]);
  const maps = NodeMaps.open(new PinPaths(bpffs, 'bench'));
  const kv = await MemoryKvstore.open(dir);
  const allocator = await IdentityAllocator.open(kv, 'bench');
  try {
    const all: Promise<unknown>[] = [];
    for (let a = 0; a < APPS; a++) for (let s = 0; s < SHARDS; s++) all.push(allocator.allocate({ app: `app${a}`, shard: `s${s}` }));
    await Promise.all(all);
    const enforcement = new PolicyEnforcement(new PolicyRepository(dir), allocator, new Ipcache(maps.ipcache), maps.policy, dir);
    await enforcement.start();
    for (let k = 0; k < ENDPOINTS; k++) {
      await enforcement.attach({ id: k + 1, labels: { app: `app${k}`, shard: 's0' }, ipv4: `10.250.${k}.1`, ipv6: `fd10:250::${k + 1}` });
    }
    const text = policyText();
    const importTimes: number[] = [];
    const baselineTimes: number[] = [];
    let entries = 0;
    let rules = 0;
    for (let r = 0; r < runs; r++) {
      await enforcement.deleteAllPolicies();
      const t0 = process.hrtime.bigint();
      const result = await enforcement.importFiles([{ file: 'bench.yaml', text }]);
      importTimes.push(Number(process.hrtime.bigint() - t0) / 1e6);
      rules = result.imported.reduce((n, p) => n + p.rules, 0);
      // The kernel floor: the same entries written into fresh maps, nothing resolved.
      const installed: Array<[number, PolicyMapEntry[]]> = [];
      for (let k = 1; k <= ENDPOINTS; k++) installed.push([k, maps.policy.entries(k)]);
      entries = installed.reduce((n, [, e]) => n + e.length, 0);
      const t1 = process.hrtime.bigint();
      await maps.policy.installMany(installed);
      maps.policy.bumpGeneration();
      baselineTimes.push(Number(process.hrtime.bigint() - t1) / 1e6);
    }
    await enforcement.deleteAllPolicies();
    for (let k = 1; k <= ENDPOINTS; k++) await enforcement.detach(k);
    await enforcement.close();
    return { importMs: median(importTimes), baselineMs: median(baselineTimes), entries, rules, identities: allocator.list().length, endpoints: ENDPOINTS };
  } finally {
    allocator.close();
    await kv.close();
    maps.close();
    execFileSync('umount', [bpffs]);
    rmSync(dir, { recursive: true, force: true });
  }
}

const PROBE_TOOL = join(REPO, 'dist', 'test', 'tools', 'probe.js');

export interface EnforcementLatency {
  /** From the import call returning to the first denied packet (negative: enforced before the answer arrived). */
  afterReturnMs: number;
  /** The import call itself, as the CLI's caller sees it. */
  callMs: number;
  /** How often the sender sends: the resolution of the figure. */
  sendIntervalMs: number;
}

/**
 * A pod sends UDP datagrams to another every millisecond (one flow); each
 * round imports a policy denying it and takes the first "policy denied" drop
 * from the monitor stream. Rounds alternate with deleting the policy.
 */
export async function importToEnforcement(topo: Topology, rounds: number): Promise<EnforcementLatency> {
  const node = await topo.addNode();
  const sender = await topo.addPod(node, 'lat-src', 'role=sender');
  const receiver = await topo.addPod(node, 'lat-dst', 'role=receiver');
  const file = join(topo.dir, 'deny.yaml');
  writeFileSync(file, `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: { name: deny-sender }\nspec:\n  endpointSelector: { matchLabels: { role: receiver } }\n  ingress: [ { fromEntities: [ host ] } ]\n`);
  const flood = topo.spawnIn(sender.netnsPath, [process.execPath, PROBE_TOOL, 'flood', receiver.ipv4, '9', '1']);
  const drops: number[] = [];
  const abort = new AbortController();
  const stream = node.client.monitor({ type: 'drop' }, (ev) => {
    if (ev.reason === 'policy denied') drops.push(Date.parse(ev.time));
  }, abort.signal);
  stream.catch(() => undefined);
  const after: number[] = [];
  const calls: number[] = [];
  try {
    await sleep(300);
    for (let r = 0; r < rounds; r++) {
      drops.length = 0;
      const t0 = Date.now();
      await node.client.importPolicies([{ file, text: readFileSync(file, 'utf8') }]);
      const t1 = Date.now();
      const deadline = Date.now() + 2000;
      while (drops.length === 0 && Date.now() < deadline) await sleep(2);
      if (drops.length === 0) throw new Error('no packet was denied within 2 s of the import');
      after.push(Math.min(...drops) - t1);
      calls.push(t1 - t0);
      await node.client.deleteAllPolicies();
      await sleep(100);
    }
  } finally {
    abort.abort();
    flood.kill('SIGKILL');
  }
  return { afterReturnMs: median(after), callMs: median(calls), sendIntervalMs: 1 };
}
