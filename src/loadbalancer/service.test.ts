import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TendrilError } from '../common/errors.js';
import { parsePrefix } from '../common/ip.js';
import { backendKey, formatFrontend, parseDuration, parseFrontend, validateChanges, validateService, type ServiceSpec } from './service.js';

const pods = [parsePrefix('10.200.1.0/24'), parsePrefix('fd10:200:0:1::/64')];
const valid = (spec: ServiceSpec) => validateService(spec, pods);
const rejects = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof TendrilError && e.code === 'invalid-argument' && pattern.test(e.message) && !e.message.includes('\n'));

test('parseFrontend reads IPv4 and bracketed IPv6, protocol in any case, TCP by default', () => {
  assert.deepEqual(parseFrontend('10.96.0.10:80/TCP'), { frontend: { address: '10.96.0.10', port: 80, protocol: 'TCP' }, family: 4 });
  assert.deepEqual(parseFrontend('10.96.0.10:53/udp').frontend.protocol, 'UDP');
  assert.deepEqual(parseFrontend('10.96.0.10:80').frontend.protocol, 'TCP');
  assert.deepEqual(parseFrontend('[fd10:96:0::a]:80/TCP'), { frontend: { address: 'fd10:96::a', port: 80, protocol: 'TCP' }, family: 6 });
  assert.equal(formatFrontend(parseFrontend('[FD10:96::A]:443/tcp').frontend), '[fd10:96::a]:443/TCP');
  assert.equal(backendKey('fd10:200::5', 8080, 'UDP'), '[fd10:200::5]:8080/UDP');
});

test('validateService fills the defaults', () => {
  assert.deepEqual(valid({ frontend: '10.96.0.10:80/TCP', backends: ['10.200.1.5:8080', '10.200.2.6:8080'] }), {
    frontend: { address: '10.96.0.10', port: 80, protocol: 'TCP' },
    family: 4,
    type: 'ClusterIP',
    mode: 'snat',
    affinityTimeoutSec: 0,
    backends: [
      { address: '10.200.1.5', port: 8080 },
      { address: '10.200.2.6', port: 8080 },
    ],
  });
  assert.deepEqual(valid({ frontend: '10.96.0.10:80' }).backends, [], 'zero backends is a valid service');
  assert.equal(valid({ frontend: '10.96.0.10:80', affinity: 'client-ip' }).affinityTimeoutSec, 10800);
  assert.equal(valid({ frontend: '10.96.0.10:80', affinity: 'ClientIP', affinityTimeout: '90s' }).affinityTimeoutSec, 90);
  const np = valid({ frontend: '[fd10:96::a]:80/tcp', type: 'nodeport', nodePort: 30080, mode: 'DSR', backends: ['[fd10:200:0:2::5]:8080/TCP'] });
  assert.equal(np.type, 'NodePort');
  assert.equal(np.nodePort, 30080);
  assert.equal(np.mode, 'dsr');
  assert.deepEqual(np.backends, [{ address: 'fd10:200:0:2::5', port: 8080 }]);
  assert.equal(valid({ frontend: '203.0.113.7:443', type: 'ExternalIP', mode: 'dsr' }).type, 'ExternalIP');
});

test('parseDuration reads s, m, h, combinations and plain seconds', () => {
  assert.equal(parseDuration('90s', 'x'), 90);
  assert.equal(parseDuration('10m', 'x'), 600);
  assert.equal(parseDuration('3h', 'x'), 10800);
  assert.equal(parseDuration('1h30m', 'x'), 5400);
  assert.equal(parseDuration('45', 'x'), 45);
  assert.equal(parseDuration(120, 'x'), 120);
  rejects(() => parseDuration('3x', 'affinity timeout'), /affinity timeout "3x" is not a duration such as 90s/);
  rejects(() => parseDuration('', 'affinity timeout'), /affinity timeout "" is not a duration/);
  rejects(() => parseDuration('0s', 'affinity timeout'), /at least 1s/);
  rejects(() => parseDuration(1.5, 'affinity timeout'), /whole number of seconds/);
});

test('validateService rejects bad frontends, one line naming the value', () => {
  rejects(() => valid({ frontend: '10.200.1.9:80' }), /frontend address 10\.200\.1\.9 is inside the node's pod range 10\.200\.1\.0\/24/);
  rejects(() => valid({ frontend: '[fd10:200:0:1::9]:80' }), /fd10:200:0:1::9 is inside the node's pod range fd10:200:0:1::\/64/);
  rejects(() => valid({ frontend: '0.0.0.0:80' }), /frontend address 0\.0\.0\.0 is unspecified/);
  rejects(() => valid({ frontend: '[::]:80' }), /frontend address :: is unspecified/);
  rejects(() => valid({ frontend: '127.0.0.1:80' }), /127\.0\.0\.1 is loopback/);
  rejects(() => valid({ frontend: '[::1]:80' }), /::1 is loopback/);
  rejects(() => valid({ frontend: '239.1.2.3:80' }), /239\.1\.2\.3 is multicast/);
  rejects(() => valid({ frontend: '[ff02::1]:80' }), /ff02::1 is multicast/);
  rejects(() => valid({ frontend: '255.255.255.255:80' }), /is broadcast/);
  rejects(() => valid({ frontend: '10.96.0.10:0' }), /frontend "10\.96\.0\.10:0": port 0 is not a port \(1-65535\)/);
  rejects(() => valid({ frontend: '10.96.0.10:65536' }), /port 65536 is not a port/);
  rejects(() => valid({ frontend: '10.96.0.10:http' }), /port "http" is not a number/);
  rejects(() => valid({ frontend: '10.96.0.10' }), /frontend "10\.96\.0\.10" has no port/);
  rejects(() => valid({ frontend: 'fd10:96::a:80' }), /write an IPv6 address in brackets/);
  rejects(() => valid({ frontend: '10.96.0.300:80' }), /"10\.96\.0\.300" is not an IPv4 or IPv6 address/);
  rejects(() => valid({ frontend: '10.96.0.10:80/SCTP' }), /protocol "SCTP" in "10\.96\.0\.10:80\/SCTP" is not TCP or UDP/);
});

test('validateService rejects bad backends, one line naming the value', () => {
  const fe = '10.96.0.10:80/TCP';
  rejects(() => valid({ frontend: fe, backends: ['10.200.1.5'] }), /backend "10\.200\.1\.5" has no port/);
  rejects(() => valid({ frontend: fe, backends: ['10.200.1.5:0'] }), /backend "10\.200\.1\.5:0": port 0 is not a port/);
  rejects(() => valid({ frontend: fe, backends: ['10.200.1.5:99999'] }), /port "99999" is not a number 1-65535|port 99999 is not a port/);
  rejects(() => valid({ frontend: fe, backends: ['banana:80'] }), /"banana" is not an IPv4 or IPv6 address/);
  rejects(() => valid({ frontend: fe, backends: ['[fd10:200::5]:80'] }), /backend \[fd10:200::5\]:80 is IPv6 but the frontend 10\.96\.0\.10 is IPv4/);
  rejects(() => valid({ frontend: fe, backends: ['10.200.1.5:80', '10.200.1.5:80'] }), /backend 10\.200\.1\.5:80 is listed twice/);
  rejects(() => valid({ frontend: fe, backends: ['10.200.1.5:80/UDP'] }), /backend "10\.200\.1\.5:80\/UDP" is UDP but the frontend is TCP/);
  rejects(() => valid({ frontend: fe, backends: ['127.0.0.1:80'] }), /backend address 127\.0\.0\.1 is loopback/);
  rejects(() => valid({ frontend: fe, backends: ['0.0.0.0:80'] }), /backend address 0\.0\.0\.0 is unspecified/);
});

test('validateService rejects unknown or ill-fitting type, mode, affinity and node port', () => {
  const fe = '10.96.0.10:80';
  rejects(() => valid({ frontend: fe, type: 'LoadBalancer' }), /unknown service type "LoadBalancer": use ClusterIP, NodePort or ExternalIP/);
  rejects(() => valid({ frontend: fe, mode: 'nat' }), /unknown mode "nat": use snat or dsr/);
  rejects(() => valid({ frontend: fe, mode: 'dsr' }), /mode dsr is for NodePort and ExternalIP services/);
  rejects(() => valid({ frontend: fe, affinity: 'sticky' }), /unknown affinity "sticky": use none or client-ip/);
  rejects(() => valid({ frontend: fe, affinityTimeout: '3h' }), /affinity timeout "3h" needs affinity client-ip/);
  rejects(() => valid({ frontend: fe, affinity: 'client-ip', affinityTimeout: '25h' }), /affinity timeout "25h" is longer than 24h/);
  rejects(() => valid({ frontend: fe, type: 'NodePort' }), /type NodePort needs a node port/);
  rejects(() => valid({ frontend: fe, type: 'NodePort', nodePort: 0 }), /node port 0 is not a port/);
  rejects(() => valid({ frontend: fe, type: 'NodePort', nodePort: 70000 }), /node port 70000 is not a port/);
  rejects(() => valid({ frontend: fe, nodePort: 30080 }), /node port 30080 is only for type NodePort, not ClusterIP/);
});

test('validateChanges checks an update against the service', () => {
  const current = { frontend: { address: '10.96.0.10', port: 80, protocol: 'TCP' as const }, type: 'ClusterIP' as const, mode: 'snat' as const, affinityTimeoutSec: 0 };
  assert.deepEqual(validateChanges(current, { addBackends: ['10.200.1.5:80'] }), {
    addBackends: [{ address: '10.200.1.5', port: 80 }],
    removeBackends: [],
    mode: 'snat',
    affinityTimeoutSec: 0,
  });
  assert.deepEqual(validateChanges(current, { backends: [] }).backends, []);
  assert.equal(validateChanges(current, { affinity: 'client-ip' }).affinityTimeoutSec, 10800);
  const sticky = { ...current, affinityTimeoutSec: 600 };
  assert.equal(validateChanges(sticky, { affinity: 'client-ip' }).affinityTimeoutSec, 600, 'client-ip alone keeps the timeout');
  assert.equal(validateChanges(sticky, { affinityTimeout: '1h' }).affinityTimeoutSec, 3600, 'a timeout alone keeps client-ip');
  assert.equal(validateChanges(sticky, { affinity: 'none' }).affinityTimeoutSec, 0);
  rejects(() => validateChanges(current, {}), /an update needs at least one change/);
  rejects(() => validateChanges(current, { backends: [], addBackends: ['10.200.1.5:80'] }), /not both/);
  rejects(() => validateChanges(current, { addBackends: ['10.200.1.5:80'], removeBackends: ['10.200.1.5:80'] }), /10\.200\.1\.5:80 is both added and removed/);
  rejects(() => validateChanges(current, { affinityTimeout: '1h' }), /affinity timeout "1h" needs affinity client-ip/);
  rejects(() => validateChanges(current, { mode: 'dsr' }), /mode dsr is for NodePort and ExternalIP/);
  rejects(() => validateChanges(current, { removeBackends: ['[fd10::1]:80'] }), /is IPv6 but the frontend 10\.96\.0\.10 is IPv4/);
  assert.equal(validateChanges({ ...current, type: 'NodePort' }, { mode: 'dsr' }).mode, 'dsr');
});
