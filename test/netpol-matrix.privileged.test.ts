/**
 * Network policy against the full reachability matrix, in the style of the
 * Kubernetes network-policy e2e suite: namespaces x, y, z with pods a, b, c,
 * each serving TCP and UDP on ports 80 and 81. For every policy the test
 * imports it through the CLI, probes all 9 x 9 pairs on the four
 * port/protocol pairs with real traffic, and compares with what the policy's
 * semantics say. A pod reaching itself never leaves its namespace, so it is
 * always allowed (as in the Kubernetes suite).
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Topology, REPO, must, type Node, type Pod } from './harness/topology.js';

const PROBE_TOOL = join(REPO, 'dist', 'test', 'tools', 'probe.js');
const NAMESPACES = ['x', 'y', 'z'] as const;
const PODS = ['a', 'b', 'c'] as const;
const PORTS = [80, 81] as const;
const PROTOS = ['tcp', 'udp'] as const;
const PROBE_TIMEOUT_MS = 1500;

interface MatrixPod {
  ns: (typeof NAMESPACES)[number];
  pod: (typeof PODS)[number];
  ep: Pod;
}

type Proto = (typeof PROTOS)[number];
type Expectation = (src: MatrixPod, dst: MatrixPod, port: number, proto: Proto) => boolean;

interface Case {
  name: string;
  policy?: string;
  expect: Expectation;
}

const is = (p: MatrixPod, ns: string, pod?: string) => p.ns === ns && (pod === undefined || p.pod === pod);

const CASES: Case[] = [
  { name: 'no policy: every pod reaches every pod', expect: () => true },
  {
    name: 'NetworkPolicy denying all ingress in x',
    policy: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: deny-all, namespace: x }
spec:
  podSelector: {}
  policyTypes: [Ingress]`,
    expect: (_s, d) => d.ns !== 'x',
  },
  {
    name: 'NetworkPolicy: x/a admits its own namespace only',
    policy: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: a-from-x, namespace: x }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
  - from:
    - podSelector: {}`,
    expect: (s, d) => !is(d, 'x', 'a') || s.ns === 'x',
  },
  {
    name: 'NetworkPolicy: namespaceSelector and podSelector together (y/b only), TCP 80 only',
    policy: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: a-from-yb, namespace: x }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
  - from:
    - namespaceSelector: { matchLabels: { ns: y } }
      podSelector: { matchLabels: { pod: b } }
    ports:
    - { port: 80, protocol: TCP }`,
    expect: (s, d, port, proto) => !is(d, 'x', 'a') || (is(s, 'y', 'b') && port === 80 && proto === 'tcp'),
  },
  {
    name: 'NetworkPolicy: two peers are ORed (namespace y, or pod b of x)',
    policy: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: a-from-y-or-b, namespace: x }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
  - from:
    - namespaceSelector: { matchLabels: { ns: y } }
    - podSelector: { matchLabels: { pod: b } }`,
    expect: (s, d) => !is(d, 'x', 'a') || s.ns === 'y' || is(s, 'x', 'b'),
  },
  {
    name: 'NetworkPolicy egress: x/a reaches namespace z on port 81 only',
    policy: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: a-to-z81, namespace: x }
spec:
  podSelector: { matchLabels: { pod: a } }
  policyTypes: [Egress]
  egress:
  - to:
    - namespaceSelector: { matchLabels: { kubernetes.io/metadata.name: z } }
    ports:
    - { port: 81, protocol: TCP }
    - { port: 81, protocol: UDP }`,
    expect: (s, d, port) => !is(s, 'x', 'a') || (d.ns === 'z' && port === 81),
  },
  {
    name: 'NetworkPolicy port range: y admits x on TCP 80-81',
    policy: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: y-from-x-range, namespace: y }
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: { matchLabels: { ns: x } }
    ports:
    - { port: 80, endPort: 81 }`,
    expect: (s, d, _port, proto) => d.ns !== 'y' || (s.ns === 'x' && proto === 'tcp'),
  },
  {
    name: 'NetworkPolicy matchExpressions NotIn: z admits every pod but the a pods, from all namespaces',
    policy: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: z-not-a, namespace: z }
spec:
  podSelector: {}
  ingress:
  - from:
    - namespaceSelector: {}
      podSelector:
        matchExpressions:
        - { key: pod, operator: NotIn, values: [a] }`,
    expect: (s, d) => d.ns !== 'z' || s.pod !== 'a',
  },
  {
    name: 'NetworkPolicy with both policy types and no ingress rule: y/c takes nothing, sends anything',
    policy: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: c-isolated, namespace: y }
spec:
  podSelector: { matchLabels: { pod: c } }
  policyTypes: [Ingress, Egress]
  egress:
  - {}`,
    expect: (_s, d) => !is(d, 'y', 'c'),
  },
  {
    name: 'two NetworkPolicies add up: x/a admits x/b and y/c',
    policy: `
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: a-from-b, namespace: x }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
  - from: [ { podSelector: { matchLabels: { pod: b } } } ]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: { name: a-from-yc, namespace: x }
spec:
  podSelector: { matchLabels: { pod: a } }
  ingress:
  - from:
    - namespaceSelector: { matchLabels: { ns: y } }
      podSelector: { matchLabels: { pod: c } }`,
    expect: (s, d) => !is(d, 'x', 'a') || is(s, 'x', 'b') || is(s, 'y', 'c'),
  },
  {
    name: 'CiliumNetworkPolicy: x admits every endpoint, but ingressDeny from z on TCP 80 wins',
    policy: `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: x-all-but-z80 }
spec:
  endpointSelector: { matchLabels: { io.kubernetes.pod.namespace: x } }
  ingress:
  - fromEndpoints: [ {} ]
  ingressDeny:
  - fromEndpoints: [ { matchLabels: { io.kubernetes.pod.namespace: z } } ]
    toPorts:
    - ports: [ { port: "80", protocol: TCP } ]`,
    expect: (s, d, port, proto) => d.ns !== 'x' || !(s.ns === 'z' && port === 80 && proto === 'tcp'),
  },
  {
    name: 'CiliumNetworkPolicy egress with toPorts only: y/b sends UDP 80 to anyone, nothing else',
    policy: `
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: { name: b-udp80, namespace: y }
spec:
  endpointSelector: { matchLabels: { pod: b } }
  egress:
  - toPorts:
    - ports: [ { port: "80", protocol: UDP } ]`,
    expect: (s, _d, port, proto) => !is(s, 'y', 'b') || (port === 80 && proto === 'udp'),
  },
];

describe('network policy reachability matrix (namespaces x, y, z; pods a, b, c)', () => {
  let topo: Topology;
  let node: Node;
  const pods: MatrixPod[] = [];

  before(async () => {
    topo = Topology.create();
    node = await topo.addNode();
    for (const ns of NAMESPACES) {
      for (const pod of PODS) {
        const labels = `pod=${pod},io.kubernetes.pod.namespace=${ns},io.cilium.k8s.namespace.labels.ns=${ns}`;
        pods.push({ ns, pod, ep: await topo.addPod(node, `${ns}-${pod}`, labels) });
      }
    }
    await Promise.all(pods.map((p) => startServer(topo, p.ep)));
  });
  after(async () => {
    await topo?.dispose();
  });

  for (const c of CASES) {
    test(c.name, async () => {
      if (c.policy) {
        const file = join(topo.dir, 'policy.yaml');
        writeFileSync(file, c.policy);
        const r = await node.cli(['policy', 'import', file]);
        assert.equal(r.code, 0, r.stderr);
      }
      try {
        await checkMatrix(pods, c.expect);
      } finally {
        if (c.policy) assert.equal((await node.cli(['policy', 'delete', '--all'])).code, 0);
      }
    });
  }
});

async function startServer(topo: Topology, pod: Pod): Promise<void> {
  const child = topo.spawnIn(pod.netnsPath, [process.execPath, PROBE_TOOL, 'serve', ...PORTS.map(String)]);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('listening')) resolve();
    });
    child.once('exit', (code) => reject(new Error(`probe server in ${pod.name} exited ${code}`)));
  });
}

interface Cell {
  src: MatrixPod;
  dst: MatrixPod;
  port: number;
  proto: Proto;
}

/** Probes every cell from its source pod (one process per source, all at once). */
async function probe(cells: Cell[]): Promise<boolean[]> {
  const bySource = new Map<MatrixPod, number[]>();
  cells.forEach((c, i) => bySource.set(c.src, [...(bySource.get(c.src) ?? []), i]));
  const out = new Array<boolean>(cells.length);
  await Promise.all(
    [...bySource].map(async ([src, indexes]) => {
      const targets = indexes.map((i) => ({ host: cells[i]!.dst.ep.ipv4, port: cells[i]!.port, proto: cells[i]!.proto }));
      const text = await must([process.execPath, PROBE_TOOL, 'probe', String(PROBE_TIMEOUT_MS), JSON.stringify(targets)], { netns: src.ep.netnsPath });
      const results = JSON.parse(text) as boolean[];
      indexes.forEach((cellIndex, k) => (out[cellIndex] = results[k]!));
    }),
  );
  return out;
}

const label = (p: MatrixPod) => `${p.ns}/${p.pod}`;

/** The whole matrix; a cell that disagrees is probed once more before it counts (as the Kubernetes suite retries). */
async function checkMatrix(pods: MatrixPod[], expect: Expectation): Promise<void> {
  const cells: Cell[] = [];
  for (const src of pods) for (const dst of pods) for (const port of PORTS) for (const proto of PROTOS) cells.push({ src, dst, port, proto });
  const want = cells.map((c) => c.src === c.dst || expect(c.src, c.dst, c.port, c.proto));
  let got = await probe(cells);
  const suspect = cells.map((_, i) => i).filter((i) => got[i] !== want[i]);
  if (suspect.length > 0) {
    const again = await probe(suspect.map((i) => cells[i]!));
    got = [...got];
    suspect.forEach((i, k) => (got[i] = again[k]!));
  }
  const wrong = cells.filter((_, i) => got[i] !== want[i]);
  if (wrong.length === 0) return;
  // Print the matrix per port/protocol the way the Kubernetes suite does: rows are sources.
  const lines: string[] = [];
  for (const port of PORTS) {
    for (const proto of PROTOS) {
      lines.push(`${proto}/${port} (. = as expected, X = reached but should not, - = blocked but should reach)`);
      lines.push(`      ${pods.map(label).join(' ')}`);
      for (const src of pods) {
        const row = pods.map((dst) => {
          const i = cells.findIndex((c) => c.src === src && c.dst === dst && c.port === port && c.proto === proto);
          return got[i] === want[i] ? '  . ' : got[i] ? '  X ' : '  - ';
        });
        lines.push(`  ${label(src)} ${row.join('')}`);
      }
    }
  }
  assert.fail(`${wrong.length} of ${cells.length} cells differ:\n${lines.join('\n')}`);
}
