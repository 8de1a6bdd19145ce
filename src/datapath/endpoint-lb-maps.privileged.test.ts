/**
 * The endpoint programs share the node's pinned LB maps with LbMaps (and so
 * with sock.o), whichever of the two opens them first, and lxc.o's
 * CONFIG.maglev_size is the M of the pinned Maglev map. Checked through the
 * datapath itself: a service LbMaps writes with no backend makes the loaded
 * from_container refuse a pod's SYN (a redirected RST), which it can only do
 * if it reads LbMaps' tnd_lb_services.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { privateBpffs } from '../bpf/testdata/fixtures.js';
import { LbMaps, MAGLEV_SIZE_DEFAULT } from './lb-maps.js';
import { NodeMaps } from './node-maps.js';
import { PinPaths } from './paths.js';
import { loadEndpointPrograms, type EndpointDatapathSpec } from './endpoint-programs.js';

const SPEC: EndpointDatapathSpec = {
  id: 7,
  ifindex: 0,
  identity: 1007,
  podMac: '02:00:00:00:00:02',
  hostMac: '02:00:00:00:00:01',
  ipv4: '10.200.0.2',
  ipv6: 'fd10:200::2',
  routerIPv4: '10.200.0.1',
  routerIPv6: 'fd10:200::1',
};
const TC_ACT_REDIRECT = 7;

/** A pod's SYN to 10.96.0.10:80: Ethernet, IPv4, TCP (checksums do not matter here). */
function synToService(): Buffer {
  const b = Buffer.alloc(14 + 20 + 20);
  b.writeUInt16BE(0x0800, 12);
  b[14] = 0x45;
  b.writeUInt16BE(40, 16);
  b[22] = 64;
  b[23] = 6;
  Buffer.from([10, 200, 0, 2]).copy(b, 26);
  Buffer.from([10, 96, 0, 10]).copy(b, 30);
  b.writeUInt16BE(40000, 34);
  b.writeUInt16BE(80, 36);
  b[46] = 5 << 4;
  b[47] = 0x02;
  return b;
}

function serviceWithoutBackends(lb: LbMaps): void {
  lb.setFrontend({
    frontend: { address: '10.96.0.10', port: 80, protocol: 'TCP' },
    scope: 'cluster',
    serviceId: 1,
    mode: 'snat',
    affinityTimeoutSec: 0,
    maglevId: 1,
    activeBackends: 0,
  });
}

describe('endpoint programs over the node LB maps (real kernel)', () => {
  let fs: ReturnType<typeof privateBpffs>;
  before(() => (fs = privateBpffs()));
  after(() => fs?.cleanup());

  it("the agent's order (NodeMaps, then LbMaps with its M, then endpoints): lxc.o reads LbMaps' maps with that M", () => {
    const paths = new PinPaths(fs.dir, 'n1');
    using maps = NodeMaps.open(paths);
    using lb = LbMaps.open(paths, { maglevSize: 251 });
    using programs = loadEndpointPrograms(maps, SPEC);
    assert.equal(maps.lb().maglevSize, 251);
    assert.equal(maps.lb().raw.get('tnd_lb_maglev')!.id, lb.get('tnd_lb_maglev').id, 'one Maglev map');
    serviceWithoutBackends(lb);
    const r = programs.program('from_container').testRun({ data: synToService() });
    assert.equal(r.retval, TC_ACT_REDIRECT, 'refused with a reset: the service was seen');
  });

  it('endpoints first: the LB pins get the M NodeMaps was given, and LbMaps reuses them', () => {
    const paths = new PinPaths(fs.dir, 'n2');
    using maps = NodeMaps.open(paths, { maglevSize: 257 });
    using programs = loadEndpointPrograms(maps, SPEC);
    using lb = LbMaps.open(paths);
    assert.equal(lb.maglevSize, 257);
    serviceWithoutBackends(lb);
    assert.equal(programs.program('from_container').testRun({ data: synToService() }).retval, TC_ACT_REDIRECT);
    // Every LB map lxc.o uses is one map of the node, pinned once.
    for (const [name, map] of maps.lb().raw) if (name !== 'tnd_lb_nat' && name !== 'tnd_lb_node_addrs') assert.equal(map.id, lb.get(name).id, name);
  });

  it("endpoints first without an M: the default, which LbMaps' own default agrees with", () => {
    const paths = new PinPaths(fs.dir, 'n3');
    using maps = NodeMaps.open(paths);
    using programs = loadEndpointPrograms(maps, SPEC);
    assert.ok(programs);
    using lb = LbMaps.open(paths);
    assert.equal(lb.maglevSize, MAGLEV_SIZE_DEFAULT);
  });
});
