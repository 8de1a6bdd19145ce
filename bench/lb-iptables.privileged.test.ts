import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { Topology } from '../test/harness/topology.js';
import { connectionCost, startConnServer } from './conn-latency.js';
import { BACKEND_PORT, iptablesConnCost, kubeProxyRules, loadIptables, natRuleCount, removeIptables, routedLbTopology, type IptablesVariant } from './lb-iptables.js';

const netns = () => new Set(readdirSync('/run/netns'));

describe('iptables load-balancer baseline (bench)', () => {
  for (const variant of ['nft', 'legacy'] as IptablesVariant[]) {
    it(`iptables-${variant}: kube-proxy rules load, DNAT a service to its backends, and are removed`, async () => {
      const topo = Topology.create();
      try {
        const t = await routedLbTopology(topo, 'ipttest');
        const server = await startConnServer(t.backend.netnsPath, BACKEND_PORT);
        try {
          const rules = kubeProxyRules(10, 2, t.backend.ipv4s);
          const loadMs = await loadIptables(t.router.netnsPath, variant, rules.text);
          assert.ok(loadMs > 0);
          assert.equal(await natRuleCount(t.router.netnsPath, variant), rules.rules);
          const viaVip = await connectionCost(t.client.netnsPath, rules.last.vip, rules.last.port, { count: 100, seconds: 5, warmup: 5 });
          assert.equal(viaVip.connections, 100);
          assert.equal(viaVip.errors, 0);
          await removeIptables(t.router.netnsPath, variant);
          assert.equal(await natRuleCount(t.router.netnsPath, variant), 0);
          await assert.rejects(connectionCost(t.client.netnsPath, rules.last.vip, rules.last.port, { count: 1, seconds: 3, warmup: 0 }), /no connection/);
        } finally {
          await server.stop();
        }
      } finally {
        await topo.dispose();
      }
    });

    it(`iptablesConnCost(${variant}) at 10 services gives sane figures and leaves no namespace`, async () => {
      const before = netns();
      const r = await iptablesConnCost({ services: 10, variant, count: 200, seconds: 5, runs: 1, warmup: 5 });
      assert.equal(r.services, 10);
      assert.equal(r.lb.connections, 200);
      assert.equal(r.direct.connections, 200);
      for (const s of [r.lb, r.direct, r.directWithRules]) {
        assert.ok(s.perSec > 0);
        assert.ok(s.p50Us > 0 && s.p99Us >= s.p50Us && s.maxUs >= s.p99Us);
        assert.ok(s.connectP50Us > 0 && s.connectP50Us <= s.p50Us);
      }
      assert.ok(r.loadMs > 0 && r.removeMs > 0);
      assert.equal(r.addedUs, r.p50Us - r.directP50Us);
      const left = [...netns()].filter((n) => !before.has(n) && n.includes('-ipt'));
      assert.deepEqual(left, []);
    });
  }
});
