import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CniCode, CniError, buildResult, endpointLabels, formatError, formatResult, formatVersionInfo, parseEnv, parseNetConf, requestedVersion } from './protocol.js';

const ENV = { CNI_COMMAND: 'ADD', CNI_CONTAINERID: 'c0ffee', CNI_NETNS: '/run/netns/x', CNI_IFNAME: 'eth0', CNI_ARGS: '' };
const CONF = JSON.stringify({ cniVersion: '1.0.0', name: 'tendril', type: 'tendril' });

function cniCode(fn: () => unknown): number {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof CniError, `expected a CniError, got ${String(err)}`);
    return err.code;
  }
  assert.fail('expected an error');
}

test('parseEnv() reads the CNI_* variables of an ADD', () => {
  const env = parseEnv({ ...ENV, CNI_ARGS: 'IgnoreUnknown=1;K8S_POD_NAME=web;TENDRIL_LABELS=org=empire,class=tiefighter' });
  assert.equal(env.command, 'ADD');
  assert.equal(env.containerId, 'c0ffee');
  assert.equal(env.args.get('K8S_POD_NAME'), 'web');
  assert.equal(env.args.get('TENDRIL_LABELS'), 'org=empire,class=tiefighter');
});

test('parseEnv() refuses a missing command, container id, netns or ifname with code 4', () => {
  assert.equal(cniCode(() => parseEnv({ ...ENV, CNI_COMMAND: 'BOGUS' })), CniCode.invalidEnvironment);
  assert.equal(cniCode(() => parseEnv({ ...ENV, CNI_CONTAINERID: undefined })), CniCode.invalidEnvironment);
  assert.equal(cniCode(() => parseEnv({ ...ENV, CNI_NETNS: undefined })), CniCode.invalidEnvironment);
  assert.equal(cniCode(() => parseEnv({ ...ENV, CNI_IFNAME: undefined })), CniCode.invalidEnvironment);
  assert.equal(cniCode(() => parseEnv({ ...ENV, CNI_IFNAME: 'a/b' })), CniCode.invalidEnvironment);
  assert.equal(cniCode(() => parseEnv({ ...ENV, CNI_IFNAME: 'sixteen-letters!' })), CniCode.invalidEnvironment);
  assert.equal(cniCode(() => parseEnv({ ...ENV, CNI_ARGS: 'novalue' })), CniCode.invalidEnvironment);
});

test('parseEnv() lets DEL come without a netns, and VERSION without anything', () => {
  assert.equal(parseEnv({ ...ENV, CNI_COMMAND: 'DEL', CNI_NETNS: undefined }).netns, '');
  assert.equal(parseEnv({ CNI_COMMAND: 'VERSION' }).command, 'VERSION');
});

test('parseNetConf() checks version, JSON, name and type', () => {
  assert.equal(parseNetConf(CONF, 'ADD').cniVersion, '1.0.0');
  assert.equal(cniCode(() => parseNetConf('{', 'ADD')), CniCode.decodingFailure);
  assert.equal(cniCode(() => parseNetConf('[]', 'ADD')), CniCode.decodingFailure);
  assert.equal(cniCode(() => parseNetConf(JSON.stringify({ cniVersion: '0.3.1', name: 'n' }), 'ADD')), CniCode.incompatibleVersion);
  assert.equal(cniCode(() => parseNetConf(JSON.stringify({ name: 'n' }), 'ADD')), CniCode.invalidConfig);
  assert.equal(cniCode(() => parseNetConf(JSON.stringify({ cniVersion: '1.0.0' }), 'ADD')), CniCode.invalidConfig);
  assert.equal(cniCode(() => parseNetConf(JSON.stringify({ cniVersion: '1.0.0', name: 'n', type: 'bridge' }), 'ADD')), CniCode.invalidConfig);
  assert.equal(cniCode(() => parseNetConf(JSON.stringify({ cniVersion: '1.0.0', name: 'n' }), 'GC')), CniCode.incompatibleVersion);
  assert.equal(cniCode(() => parseNetConf(CONF, 'CHECK')), CniCode.invalidConfig, 'CHECK needs prevResult');
});

test('parseNetConf() reads labels from args.cni.labels and runtimeConfig, and port mappings', () => {
  const conf = parseNetConf(
    JSON.stringify({
      cniVersion: '1.0.0',
      name: 'n',
      args: { cni: { labels: [{ key: 'org', value: 'empire' }] } },
      runtimeConfig: { labels: { class: 'deathstar' }, portMappings: [{ hostPort: 8080, containerPort: 80, protocol: 'tcp' }] },
    }),
    'ADD',
  );
  assert.deepEqual(conf.labels, { class: 'deathstar', org: 'empire' });
  assert.deepEqual(conf.portMappings, [{ hostPort: 8080, containerPort: 80, protocol: 'TCP' }]);
  const bad = (rc: unknown) => cniCode(() => parseNetConf(JSON.stringify({ cniVersion: '1.0.0', name: 'n', runtimeConfig: rc }), 'ADD'));
  assert.equal(bad({ labels: { 'bad key!': 'x' } }), CniCode.invalidConfig);
  assert.equal(bad({ portMappings: [{ hostPort: 0, containerPort: 80 }] }), CniCode.invalidConfig);
  assert.equal(bad({ portMappings: [{ hostPort: 80, containerPort: 80, protocol: 'sctp' }] }), CniCode.invalidConfig);
});

test('parseNetConf() reads GC attachments', () => {
  const conf = parseNetConf(JSON.stringify({ cniVersion: '1.1.0', name: 'n', 'cni.dev/valid-attachments': [{ containerID: 'a', ifname: 'eth0' }] }), 'GC');
  assert.deepEqual(conf.validAttachments, [{ containerId: 'a', ifname: 'eth0' }]);
  assert.equal(cniCode(() => parseNetConf(JSON.stringify({ cniVersion: '1.1.0', name: 'n', 'cni.dev/valid-attachments': [{}] }), 'GC')), CniCode.invalidConfig);
});

test('endpointLabels() joins configuration labels with CNI_ARGS, the arguments winning', () => {
  const env = parseEnv({ ...ENV, CNI_ARGS: 'K8S_POD_NAMESPACE=default;K8S_POD_NAME=xwing;TENDRIL_LABELS=org=alliance' });
  const conf = parseNetConf(JSON.stringify({ cniVersion: '1.0.0', name: 'n', runtimeConfig: { labels: { org: 'empire', class: 'xwing' } } }), 'ADD');
  assert.deepEqual(endpointLabels(env, conf), { class: 'xwing', 'io.kubernetes.pod.name': 'xwing', 'io.kubernetes.pod.namespace': 'default', org: 'alliance' });
  assert.equal(cniCode(() => endpointLabels(parseEnv({ ...ENV, CNI_ARGS: 'TENDRIL_LABELS=org' }), conf)), CniCode.invalidEnvironment);
});

test('buildResult() appends to a previous result and points ips at the container interface', () => {
  const prev = { interfaces: [{ name: 'other0' }], ips: [{ address: '192.168.5.2/24', interface: 0 }], routes: [], dns: { nameservers: ['10.0.0.1'] } };
  const r = buildResult(prev, {
    ifname: 'eth0',
    mac: '02:00:00:00:00:01',
    netns: '/run/netns/x',
    hostIfname: 'lxc1',
    hostMac: '02:00:00:00:00:02',
    ipv4: '10.200.1.5',
    ipv6: 'fd10:200:0:1::5',
    routerIPv4: '10.200.1.1',
    routerIPv6: 'fd10:200:0:1::1',
  });
  assert.deepEqual(r.interfaces, [{ name: 'other0' }, { name: 'lxc1', mac: '02:00:00:00:00:02' }, { name: 'eth0', mac: '02:00:00:00:00:01', sandbox: '/run/netns/x' }]);
  assert.deepEqual(r.ips, [
    { address: '192.168.5.2/24', interface: 0 },
    { address: '10.200.1.5/32', gateway: '10.200.1.1', interface: 2 },
    { address: 'fd10:200:0:1::5/128', gateway: 'fd10:200:0:1::1', interface: 2 },
  ]);
  assert.deepEqual(r.routes, [
    { dst: '0.0.0.0/0', gw: '10.200.1.1' },
    { dst: '::/0', gw: 'fd10:200:0:1::1' },
  ]);
  assert.deepEqual(r.dns, { nameservers: ['10.0.0.1'] });
});

test('formatResult() writes the IP version only for 0.4.0', () => {
  const r = { ips: [{ address: '10.200.1.5/32', interface: 1 }, { address: 'fd10::5/128', interface: 1 }] };
  assert.deepEqual((formatResult('0.4.0', r).ips as Array<{ version: string }>).map((ip) => ip.version), ['4', '6']);
  assert.equal((formatResult('1.0.0', r).ips as Array<Record<string, unknown>>)[0]!.version, undefined);
});

test('error and version objects carry the caller\'s version', () => {
  assert.equal(requestedVersion('{"cniVersion":"0.4.0"}'), '0.4.0');
  assert.equal(requestedVersion('{'), null);
  assert.deepEqual(formatError('0.4.0', new CniError(7, 'bad', 'why')), { cniVersion: '0.4.0', code: 7, msg: 'bad', details: 'why' });
  assert.deepEqual(formatVersionInfo('1.0.0'), { cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0', '1.1.0'] });
  assert.equal(formatVersionInfo('9.9.9').cniVersion, '1.1.0');
});
