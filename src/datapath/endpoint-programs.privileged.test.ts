import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { privateBpffs } from '../bpf/testdata/fixtures.js';
import { NodeMaps } from './node-maps.js';
import { PinPaths } from './paths.js';
import { loadEndpointPrograms } from './endpoint-programs.js';

/*
 * Loading an endpoint's programs is mostly verification, and endpoint add
 * waits for it (target 50 ms). Processed instructions track load time and are
 * steady across runs, unlike a clock. Dual stack, as the agent loads them:
 * from_container ~12.5k, to_container ~5.1k on Linux 6.18 (~11.2k and ~3.1k
 * before L7 steering: to_container's proxy-upstream path inlines a second
 * conntrack lookup and create).
 * The slow path as static __noinline functions, verified again at every call
 * site, took from_container to ~61.5k (~120 ms); keep it in global functions.
 */
const BUDGET = { from_container: 20_000, to_container: 8_000 } as const;

describe('endpoint programs: cost of loading', () => {
  let fs: ReturnType<typeof privateBpffs>;
  let maps: NodeMaps;
  before(() => {
    fs = privateBpffs();
    maps = NodeMaps.open(new PinPaths(fs.dir, 'node1'));
  });
  after(() => {
    maps.close();
    fs.cleanup();
  });

  it('the verifier processes a bounded number of instructions per program (dual stack)', () => {
    using programs = loadEndpointPrograms(maps, {
      id: 7,
      ifindex: 0,
      identity: 1007,
      podMac: '02:00:00:00:00:02',
      hostMac: '02:00:00:00:00:01',
      ipv4: '10.1.0.2',
      ipv6: 'fd10:1::2',
      routerIPv4: '10.1.0.1',
      routerIPv6: 'fd10:1::1',
    });
    for (const [name, budget] of Object.entries(BUDGET) as [keyof typeof BUDGET, number][]) {
      const insns = programs.program(name).verifiedInsns();
      assert.ok(insns > 0, `${name}: the kernel reports no verified_insns`);
      assert.ok(insns <= budget, `${name}: the verifier processed ${insns} instructions, budget ${budget}`);
    }
  });
});
