import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { nodeIn, privateBpffs, vethPair } from './testdata/fixtures.js';

const CHILD = fileURLToPath(new URL('./testdata/attach-child.js', import.meta.url));

// The programs run in a child process inside a fresh network namespace (nsenter),
// so nothing is ever attached in the machine's own namespace.
describe('attachTcx() and attachXdp() on a veth in a test namespace', () => {
  let net: ReturnType<typeof vethPair>;
  let fs: ReturnType<typeof privateBpffs>;
  before(() => {
    fs = privateBpffs();
    net = vethPair();
  });
  after(() => {
    net?.cleanup();
    fs?.cleanup();
  });

  const results = new Map<string, Record<string, any>>();
  function run(scenario: string): Record<string, any> {
    const cached = results.get(scenario);
    if (cached) return cached;
    const r = nodeIn(net.nsB, CHILD, [scenario, fs.dir]);
    assert.equal(r.status, 0, `child failed:\n${r.stderr}`);
    const parsed = JSON.parse(r.stdout);
    results.set(scenario, parsed);
    return parsed;
  }

  it('TCX: attach, see traffic, pin, openPinned, update atomically, detach', () => {
    const o = run('tcx');
    assert.deepEqual(o.info, { type: 11, id: o.linkId, progId: o.countId, ifindex: o.ifindex, attachType: 46 });
    assert.equal(o.pingWithCount, true);
    assert.ok(o.countedAfterPing >= 2, `counted ${o.countedAfterPing} packets at ingress`);
    assert.equal(o.pinnedId, o.linkId);
    assert.equal(o.infoAfterUpdate.progId, o.passId);
    assert.equal(o.pingWithPass, true);
    assert.equal(o.countedDuringPass, 0);
    assert.equal(o.stillAttachedAfterClose, true);
    assert.equal(o.infoAfterDetach.ifindex, 0);
    assert.equal(o.egressInfo.attachType, 47);
  });

  it('attachTcx() rejects ifindex 0 and a missing device, naming them', () => {
    const o = run('tcx');
    assert.equal(o.errIfindex0.code, 'ENODEV');
    assert.match(o.errIfindex0.message, /ifindex 0 names no device/);
    assert.equal(o.errNoDevice.code, 'ENODEV');
    assert.match(o.errNoDevice.message, /ifindex 999999 .*no such device/);
    assert.equal(o.errNoName.code, 'ENODEV');
    assert.match(o.errNoName.message, /"nosuchdev0"/);
  });

  it('XDP: attach natively, see traffic, refuse a second program, update, generic mode', () => {
    const o = run('xdp');
    assert.equal(o.info.type, 6);
    assert.equal(o.info.ifindex, o.ifindex);
    assert.equal(o.info.progId, o.countId);
    assert.equal(o.ping, true);
    assert.ok(o.counted >= 2, `counted ${o.counted} packets`);
    assert.ok(o.errSecond, 'a second XDP link on the same device fails');
    assert.match(o.errSecond.message, /Cannot attach XDP program "xdp_pass" to ifindex/);
    assert.equal(o.progIdAfterUpdate, o.passId);
    assert.equal(o.genericInfo.type, 6);
    assert.equal(o.errIfindex0.code, 'ENODEV');
  });

  it('tc clsact: attach, see traffic, replace in place, query, detach; errors name the device', () => {
    const o = run('tc');
    assert.equal(o.queryBefore, null);
    assert.equal(o.attachedId, o.countId);
    assert.equal(o.query, o.countId);
    assert.equal(o.pingWithCount, true);
    assert.ok(o.countedAfterPing >= 2, `counted ${o.countedAfterPing} packets at ingress`);
    assert.equal(o.replacedId, o.passId);
    assert.equal(o.pingWithPass, true);
    assert.equal(o.countedDuringPass, 0);
    assert.equal(o.filters, 1, 'replacing kept one filter');
    assert.equal(o.egressId, o.countId);
    assert.equal(o.queryAfterDetach, null);
    assert.equal(o.egressStill, o.countId);
    assert.equal(o.errIfindex0.code, 'ENODEV');
    assert.match(o.errIfindex0.message, /ifindex 0: it names no device/);
    assert.match(o.errNoDevice.message, /Cannot attach tc egress program "count_packets" to ifindex 999999/);
  });
});
