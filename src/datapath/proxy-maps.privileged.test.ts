import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { privateBpffs } from '../bpf/testdata/fixtures.js';
import { TndCtDir, TndCtKey, TndProxyFlow, TndProxyFlags } from '../bpf/generated/wire.js';
import { NODE_MAPS, NodeMaps } from './node-maps.js';
import { PinPaths } from './paths.js';
import { ProxyFlowMap } from './proxy-maps.js';

describe('proxy maps', () => {
  let fs: ReturnType<typeof privateBpffs>;
  let maps: NodeMaps;
  before(() => {
    fs = privateBpffs();
    maps = NodeMaps.open(new PinPaths(fs.dir, 'n1'));
  });
  after(() => {
    maps.close();
    fs.cleanup();
  });

  it('both maps are node-wide and pinned', () => {
    assert.ok(NODE_MAPS.includes('tnd_proxy_config') && NODE_MAPS.includes('tnd_proxy_flows'));
    assert.equal(maps.proxyFlowsPath, `${maps.paths.maps}/tnd_proxy_flows`);
  });

  it('ProxyConfigMap: setPort() and clear(), refusing ports that are not 1-65535', () => {
    assert.equal(maps.proxyConfig.port(), 0, 'no proxy until told');
    maps.proxyConfig.setPort(15001);
    assert.equal(maps.proxyConfig.port(), 15001);
    assert.throws(() => maps.proxyConfig.setPort(0), /proxy port 0 is not an integer from 1 to 65535/);
    assert.throws(() => maps.proxyConfig.setPort(65536), /65536/);
    assert.equal(maps.proxyConfig.port(), 15001, 'bad input changes nothing');
    maps.proxyConfig.clear();
    assert.equal(maps.proxyConfig.port(), 0);
  });

  it('ProxyFlowMap finds what the datapath wrote under the client\'s tuple (from its own pin too), and forgets it', () => {
    const key = TndCtKey.encode({
      saddr: Buffer.from([10, 200, 0, 2, ...new Array(12).fill(0)]),
      daddr: Buffer.from([10, 200, 0, 3, ...new Array(12).fill(0)]),
      sport: 0x409c, // 40000, network order
      dport: 0x5000, // 80
      proto: 6,
      family: 2,
      dir: TndCtDir.TND_CT_EGRESS,
    });
    maps.proxyFlows.map.update(key, TndProxyFlow.encode({ srcIdentity: 1001, dstIdentity: 1002, srcEndpoint: 7, dstEndpoint: 8, flags: TndProxyFlags.TND_PROXY_F_INGRESS }));
    using flows = ProxyFlowMap.openPinned(maps.proxyFlowsPath);
    const tuple = { family: 4 as const, srcAddr: '10.200.0.2', srcPort: 40000, dstAddr: '10.200.0.3', dstPort: 80 };
    const want = { srcIdentity: 1001, dstIdentity: 1002, srcEndpoint: 7, dstEndpoint: 8, egress: false, ingress: true };
    assert.deepEqual(flows.lookup(tuple), want);
    assert.deepEqual(flows.lookup({ ...tuple, srcAddr: '::ffff:10.200.0.2', dstAddr: '::ffff:10.200.0.3' }), want, 'a dual-stack socket\'s addresses');
    assert.equal(flows.lookup({ ...tuple, srcPort: 40001 }), undefined);
    assert.throws(() => flows.lookup({ ...tuple, srcAddr: 'fd10::2' }), /"fd10::2" is not an IPv4 address/);
    assert.equal(flows.delete(tuple), true);
    assert.equal(flows.lookup(tuple), undefined);
    assert.equal(flows.delete(tuple), false);
  });
});
