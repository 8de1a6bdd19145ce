/**
 * What an endpoint's life leaves behind and what is made ahead of it: the
 * agent's prepared endpoints (status, a small range used to its last
 * address) and an identity that outlives its last endpoint by
 * --identity-linger, then goes.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { Topology, sleep, type Node } from './harness/topology.js';

/** Polls `cond` for up to `ms`. */
async function waitFor(cond: () => Promise<boolean>, ms = 10_000): Promise<boolean> {
  for (const deadline = Date.now() + ms; Date.now() < deadline; await sleep(50)) if (await cond()) return true;
  return false;
}

describe('endpoint lifecycle: prepared endpoints and lingering identities', () => {
  let topo: Topology;
  let node: Node;
  const netns = async (suffix: string) => `/run/netns/${await topo.addNamespace(suffix)}`;

  before(async () => {
    topo = Topology.create();
    // A /29 has 5 pod addresses: fewer than the endpoints the agent would prepare.
    node = await topo.addNode({ podCidr4: '10.200.77.0/29', agentArgs: ['--identity-linger', '1'] });
  });
  after(async () => {
    await topo?.dispose();
  });

  test('a small range: the agent prepares what it can, and every address still goes to an endpoint', async () => {
    assert.ok(await waitFor(async () => (await node.client.status()).preparedEndpoints.ready === 5), JSON.stringify((await node.client.status()).preparedEndpoints));
    assert.equal((await node.client.status()).preparedEndpoints.target, 8);
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await node.client.addEndpoint({ netns: await netns(`small${i}`) }));
    assert.deepEqual(made.map((ep) => ep.ipv4).sort(), ['10.200.77.2', '10.200.77.3', '10.200.77.4', '10.200.77.5', '10.200.77.6']);
    const full = await node.cli(['endpoint', 'add', '--netns', await netns('small5')]);
    assert.equal(full.code, 1);
    assert.match(full.stderr, /IPAM range 10\.200\.77\.0\/29 is exhausted \(5 addresses in use\)/);
    for (const ep of made) await node.client.deleteEndpoint(ep.id);
    // The addresses come back to the pool, and the pool is made again.
    assert.ok(await waitFor(async () => (await node.client.status()).preparedEndpoints.ready === 5));
  });

  test('an identity outlives its last endpoint by --identity-linger: a re-made endpoint gets it back; then it is released', async () => {
    const labelled = async (suffix: string) => node.client.addEndpoint({ netns: await netns(suffix), labels: { app: 'linger' } });
    const first = await labelled('linger1');
    await node.client.deleteEndpoint(first.id);
    const held = (await node.client.listIdentities()).find((i) => i.id === first.identity);
    assert.ok(held, 'the identity is still there right after its last endpoint went');
    assert.deepEqual(held.endpoints, []);
    const again = await labelled('linger2');
    assert.equal(again.identity, first.identity, 'the re-made endpoint has the same identity');
    await node.client.deleteEndpoint(again.id);
    assert.ok(
      await waitFor(async () => !(await node.client.listIdentities()).some((i) => i.id === first.identity), 5000),
      'the identity is released once the linger time is over',
    );
  });
});
