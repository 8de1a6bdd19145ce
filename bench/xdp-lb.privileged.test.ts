import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { BpfObject, bpfObjectPath } from '../src/bpf/index.js';
import { XDP_PASS, XDP_TX, receiverPps, timeXdp, udpFrame, xdpDropPps, xdpProgramCost, xdpTxFloor } from './xdp-lb.js';

const netns = () => new Set(readdirSync('/run/netns'));

describe('XDP bench tools', () => {
  it('xdpTxFloor() times xdp_tx single-call and batch', () => {
    const f = xdpTxFloor({ iterations: 200, runs: 3 });
    assert.ok(f.singleNs > 0 && f.batchNs > 0, JSON.stringify(f));
  });

  it('timeXdp() checks every verdict and output, and xdpProgramCost() puts a program beside the floor', () => {
    const obj = BpfObject.open(bpfObjectPath('tests/passthrough.o'));
    try {
      obj.load();
      const pass = obj.program('xdp_pass');
      const frame = udpFrame();
      assert.throws(() => timeXdp(pass, frame, { expect: XDP_TX, iterations: 10, runs: 1 }), /verdict 2 instead of 3 at iteration 0/);
      const other = Buffer.from(frame);
      other[0] ^= 1;
      assert.throws(() => timeXdp(pass, frame, { expect: XDP_PASS, iterations: 10, runs: 1, expectData: other }), /output of iteration 0 differs/);
      const t = timeXdp(pass, frame, { expect: XDP_PASS, iterations: 50, runs: 3, expectData: frame });
      assert.equal(t.runsNs.length, 3);
      const c = xdpProgramCost(pass, frame, { expect: XDP_PASS, iterations: 50, runs: 3 });
      assert.ok(c.ns > 0 && c.floorNs > 0);
      assert.equal(c.addedNs, c.ns - c.floorNs);
    } finally {
      obj.close();
    }
  });

  it('xdpDropPps() counts live frames from the generator for 0.2 s and removes its namespaces', async () => {
    const before = netns();
    const r = await xdpDropPps({ seconds: 0.2, warmupMs: 100 });
    assert.ok(r.pps > 0 && r.generatorPps > 0 && r.packets > 0, JSON.stringify(r));
    assert.ok(r.returnedPps < r.pps / 100, 'a dropping program sends nothing back');
    assert.deepEqual([...netns()].filter((n) => !before.has(n) && n.includes('-xdp-')), []);
  });

  it('receiverPps() counts what a program sends back (XDP_TX), or its runs through BPF statistics', async () => {
    const obj = BpfObject.open(bpfObjectPath('bench/xdp_bench.o'));
    const stats = readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8');
    try {
      obj.load();
      const returned = await receiverPps({ program: obj.program('xdp_tx'), seconds: 0.2, warmupMs: 100 });
      assert.ok(returned.pps > 0 && returned.pps === returned.returnedPps, JSON.stringify(returned));
      const runs = await receiverPps({ program: obj.program('xdp_tx'), count: 'bpf-stats', seconds: 0.2, warmupMs: 100 });
      assert.ok(runs.pps > 0 && runs.returnedPps > 0, JSON.stringify(runs));
      assert.equal(readFileSync('/proc/sys/kernel/bpf_stats_enabled', 'utf8'), stats, 'BPF statistics are switched back');
    } finally {
      obj.close();
    }
  });
});
