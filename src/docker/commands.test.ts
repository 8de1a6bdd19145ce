import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runPlugin, type DockerBackend } from './commands.js';

/** The node's facts; any endpoint or address work would be a bug in these calls. */
const NODE: DockerBackend = new Proxy(
  { ranges: { ipv4: '10.200.1.0/24', ipv6: 'fd10:200:0:1::/64' }, routerIPv4: '10.200.1.1', routerIPv6: 'fd10:200:0:1::1' } as unknown as DockerBackend,
  {
    get(target, key) {
      if (key in target) return target[key as keyof DockerBackend];
      return () => assert.fail(`${String(key)} was called`);
    },
  },
);

test('the activation and capability calls answer what libnetwork expects of a local driver with MAC-keyed IPAM', async () => {
  assert.deepEqual(await runPlugin(NODE, 'Plugin.Activate', ''), { Implements: ['NetworkDriver', 'IpamDriver'] });
  assert.deepEqual(await runPlugin(NODE, 'NetworkDriver.GetCapabilities', ''), { Scope: 'local', ConnectivityScope: 'local' });
  assert.deepEqual(await runPlugin(NODE, 'IpamDriver.GetCapabilities', ''), { RequiresMACAddress: true, RequiresRequestReplay: false });
  assert.deepEqual(await runPlugin(NODE, 'IpamDriver.GetDefaultAddressSpaces', ''), { LocalDefaultAddressSpace: 'tendril-local', GlobalDefaultAddressSpace: 'tendril-global' });
});

test('RequestPool hands out the node\'s pod range per family and refuses another subnet or address space', async () => {
  const pool = (body: object) => runPlugin(NODE, 'IpamDriver.RequestPool', JSON.stringify(body));
  assert.deepEqual(await pool({ AddressSpace: 'tendril-local' }), { PoolID: 'tendril-ipv4', Pool: '10.200.1.0/24', Data: {} });
  assert.deepEqual(await pool({ AddressSpace: 'tendril-local', V6: true }), { PoolID: 'tendril-ipv6', Pool: 'fd10:200:0:1::/64', Data: {} });
  assert.deepEqual(await pool({ AddressSpace: 'tendril-local', Pool: '10.200.1.0/24' }), { PoolID: 'tendril-ipv4', Pool: '10.200.1.0/24', Data: {} });
  assert.match(String((await pool({ AddressSpace: 'tendril-local', Pool: '172.18.0.0/16' })).Err), /^RequestPool: tendril hands out this node's pod range 10\.200\.1\.0\/24/);
  assert.match(String((await pool({ AddressSpace: 'tendril-global' })).Err), /tendril networks are local/);
  assert.match(String((await pool({ AddressSpace: 'tendril-local', SubPool: '10.200.1.0/28' })).Err), /--ip-range/);
});

test('the gateway is the node\'s router; a chosen address, a foreign pool or a call without the MAC is refused', async () => {
  const addr = (body: object) => runPlugin(NODE, 'IpamDriver.RequestAddress', JSON.stringify(body));
  const gw = { RequestAddressType: 'com.docker.network.gateway' };
  assert.deepEqual(await addr({ PoolID: 'tendril-ipv4', Options: gw }), { Address: '10.200.1.1/32', Data: {} });
  assert.deepEqual(await addr({ PoolID: 'tendril-ipv6', Options: gw }), { Address: 'fd10:200:0:1::1/128', Data: {} });
  assert.match(String((await addr({ PoolID: 'tendril-ipv4', Address: '10.200.1.9', Options: gw })).Err), /leave --gateway out/);
  assert.match(String((await addr({ PoolID: 'tendril-ipv4', Address: '10.200.1.9' })).Err), /leave --ip\/--ip6 out/);
  assert.match(String((await addr({ PoolID: 'default' })).Err), /unknown pool "default"/);
  assert.match(String((await addr({ PoolID: 'tendril-ipv4', Options: {} })).Err), /com\.docker\.network\.endpoint\.macaddress/);
  // Releasing the router is a no-op: it was never taken from the pool.
  assert.deepEqual(await runPlugin(NODE, 'IpamDriver.ReleaseAddress', JSON.stringify({ PoolID: 'tendril-ipv4', Address: '10.200.1.1' })), {});
});

test('CreateNetwork refuses a network without tendril IPAM; malformed calls are Err naming the call', async () => {
  const net = (data: object[]) => runPlugin(NODE, 'NetworkDriver.CreateNetwork', JSON.stringify({ NetworkID: 'ab'.repeat(32), IPv4Data: data }));
  assert.deepEqual(await net([{ AddressSpace: 'tendril-local', Pool: '10.200.1.0/24' }]), {});
  assert.match(String((await net([{ AddressSpace: 'LocalDefault', Pool: '172.18.0.0/16' }])).Err), /needs tendril IPAM/);
  assert.match(String((await net([])).Err), /needs tendril IPAM/);
  assert.deepEqual(await runPlugin(NODE, 'NetworkDriver.Join', '{'), { Err: 'NetworkDriver.Join: the body is not valid JSON' });
});
