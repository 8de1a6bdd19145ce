import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PluginError, joinAnswer, parseCall } from './protocol.js';

const NID = 'a1'.repeat(32);
const EID = 'b2'.repeat(32);

function refused(method: string, body: string): string {
  try {
    parseCall(method, body);
  } catch (err) {
    assert.ok(err instanceof PluginError, `expected a PluginError, got ${String(err)}`);
    return err.message;
  }
  assert.fail(`${method} ${body} was accepted`);
}

test('parseCall() reads CreateEndpoint with the field names of libnetwork\'s remote.md', () => {
  const call = parseCall(
    'NetworkDriver.CreateEndpoint',
    JSON.stringify({ NetworkID: NID, EndpointID: EID, Options: { 'com.docker.network.endpoint.exposedports': [] }, Interface: { Address: '10.200.1.5/32', AddressIPv6: '', MacAddress: '02:42:0a:c8:01:05' } }),
  );
  assert.deepEqual(call, { method: 'NetworkDriver.CreateEndpoint', networkId: NID, endpointId: EID, address: '10.200.1.5/32', addressIPv6: '', macAddress: '02:42:0a:c8:01:05' });
  // Docker sends a null Interface when the IPAM gave nothing.
  assert.equal((parseCall('NetworkDriver.CreateEndpoint', JSON.stringify({ NetworkID: NID, EndpointID: EID, Interface: null })) as { address: string }).address, '');
});

test('parseCall() reads CreateNetwork\'s IPAM data, Join\'s sandbox key and the IPAM calls', () => {
  assert.deepEqual(
    parseCall('NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: NID, Options: null, IPv4Data: [{ AddressSpace: 'tendril-local', Pool: '10.200.1.0/24', Gateway: '10.200.1.1/32', AuxAddresses: null }], IPv6Data: null })),
    { method: 'NetworkDriver.CreateNetwork', networkId: NID, ipv4Data: [{ addressSpace: 'tendril-local', pool: '10.200.1.0/24', gateway: '10.200.1.1/32' }], ipv6Data: [] },
  );
  assert.deepEqual(parseCall('NetworkDriver.Join', JSON.stringify({ NetworkID: NID, EndpointID: EID, SandboxKey: '/var/run/docker/netns/1a2b', Options: {} })), {
    method: 'NetworkDriver.Join',
    networkId: NID,
    endpointId: EID,
    sandboxKey: '/var/run/docker/netns/1a2b',
  });
  assert.deepEqual(parseCall('IpamDriver.RequestPool', JSON.stringify({ AddressSpace: 'tendril-local', Pool: '', SubPool: '', Options: {}, V6: true })), {
    method: 'IpamDriver.RequestPool',
    addressSpace: 'tendril-local',
    pool: '',
    subPool: '',
    v6: true,
  });
  assert.deepEqual(parseCall('IpamDriver.RequestAddress', JSON.stringify({ PoolID: 'tendril-ipv4', Address: '', Options: { RequestAddressType: 'com.docker.network.gateway', n: 1 } })), {
    method: 'IpamDriver.RequestAddress',
    poolId: 'tendril-ipv4',
    address: '',
    options: { RequestAddressType: 'com.docker.network.gateway' },
  });
  assert.deepEqual(parseCall('IpamDriver.ReleaseAddress', JSON.stringify({ PoolID: 'tendril-ipv6', Address: 'fd10:200:0:1::5' })), {
    method: 'IpamDriver.ReleaseAddress',
    poolId: 'tendril-ipv6',
    address: 'fd10:200:0:1::5',
  });
});

test('parseCall() takes the calls without a body whatever Docker sends with them', () => {
  for (const method of ['Plugin.Activate', 'NetworkDriver.GetCapabilities', 'IpamDriver.GetCapabilities', 'IpamDriver.GetDefaultAddressSpaces', 'NetworkDriver.DiscoverNew']) {
    assert.deepEqual(parseCall(method, ''), { method });
    assert.deepEqual(parseCall(method, 'null'), { method });
  }
});

test('parseCall() refuses an unknown method, malformed JSON, a body that is no object and wrong fields, each with one line', () => {
  assert.match(refused('NetworkDriver.Frobnicate', '{}'), /^unknown method NetworkDriver\.Frobnicate: tendril-docker serves Plugin\.Activate, /);
  assert.match(refused('NetworkDriver.Join', '{"NetworkID": '), /^NetworkDriver\.Join: the body is not valid JSON$/);
  assert.match(refused('NetworkDriver.Join', '[1]'), /must be a JSON object/);
  assert.match(refused('NetworkDriver.Join', JSON.stringify({ NetworkID: NID, EndpointID: EID })), /"SandboxKey" must be a non-empty string/);
  assert.match(refused('NetworkDriver.Leave', JSON.stringify({ NetworkID: NID, EndpointID: '../../etc' })), /"EndpointID" is not a Docker id/);
  assert.match(refused('NetworkDriver.CreateEndpoint', JSON.stringify({ NetworkID: NID, EndpointID: EID, Interface: { Address: 5 } })), /"Interface\.Address" must be a string/);
  assert.match(refused('NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: NID, IPv4Data: [7] })), /"IPv4Data\[0\]" must be an object/);
  assert.match(refused('IpamDriver.RequestPool', JSON.stringify({ AddressSpace: 'tendril-local', V6: 'yes' })), /"V6" must be true or false/);
  assert.match(refused('IpamDriver.ReleasePool', '{}'), /"PoolID" must be a non-empty string/);
});

test('joinAnswer() hands Docker the link and the router as gateway, reached by a connected route', () => {
  assert.deepEqual(joinAnswer({ srcName: 'tnd0123456789ab', routerIPv4: '10.200.1.1', routerIPv6: 'fd10:200:0:1::1', ipv6: false }), {
    InterfaceName: { SrcName: 'tnd0123456789ab', DstPrefix: 'eth' },
    Gateway: '10.200.1.1',
    StaticRoutes: [{ Destination: '10.200.1.1/32', RouteType: 1 }],
    DisableGatewayService: true,
  });
  const v6 = joinAnswer({ srcName: 'tnd0123456789ab', routerIPv4: '10.200.1.1', routerIPv6: 'fd10:200:0:1::1', ipv6: true });
  assert.equal(v6.GatewayIPv6, 'fd10:200:0:1::1');
  assert.deepEqual(v6.StaticRoutes, [
    { Destination: '10.200.1.1/32', RouteType: 1 },
    { Destination: 'fd10:200:0:1::1/128', RouteType: 1 },
  ]);
});
