import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { kubeProxyRules, serviceFrontend } from './lb-iptables.js';

describe('kubeProxyRules()', () => {
  it('lays out one KUBE-SERVICES rule, one KUBE-SVC chain and a KUBE-SEP chain per endpoint, as kube-proxy does', () => {
    const r = kubeProxyRules(3, 2, ['10.200.2.2', '10.200.2.3']);
    const lines = r.text.split('\n');
    assert.equal(lines.filter((l) => l.startsWith('-A KUBE-SERVICES -d ')).length, 3);
    assert.equal(lines.filter((l) => /^:KUBE-SVC-/.test(l)).length, 3);
    assert.equal(lines.filter((l) => /^:KUBE-SEP-/.test(l)).length, 6);
    assert.equal(lines.filter((l) => l.includes('--probability 0.50000000000')).length, 3);
    assert.equal(lines.filter((l) => l.includes('-j DNAT')).length, 6);
    assert.equal(r.rules, lines.filter((l) => l.startsWith('-A ')).length);
    assert.match(lines.filter((l) => l.startsWith('-A KUBE-SERVICES')).at(-1)!, /KUBE-NODEPORTS/);
    assert.ok(lines.some((l) => l.includes(`-j DNAT --to-destination 10.200.2.3:8080`)), 'the last service goes to the real backends');
    assert.deepEqual(r.last, serviceFrontend(2, 3));
    assert.equal(r.text.split('\n').at(-2), 'COMMIT');
  });

  it('gives 100,000 services distinct frontends inside 10.96.0.0/16 (VIP x port past 65,000)', () => {
    const seen = new Set<string>();
    for (let i = 0; i < 100_000; i++) {
      const f = serviceFrontend(i, 100_000);
      assert.match(f.vip, /^10\.96\.\d{1,3}\.\d{1,3}$/);
      assert.ok(!f.vip.endsWith('.0.0') && f.vip !== '10.96.255.255', f.vip);
      seen.add(`${f.vip}:${f.port}`);
    }
    assert.equal(seen.size, 100_000);
    assert.equal(serviceFrontend(0, 1).vip, '10.96.0.1');
  });

  it('refuses a service count it cannot lay out, and endpoints that do not match', () => {
    assert.throws(() => kubeProxyRules(0, 1, ['10.200.2.2']), /services must be an integer from 1/);
    assert.throws(() => kubeProxyRules(2, 2, ['10.200.2.2']), /needs 2 endpoints, got 1/);
  });
});
