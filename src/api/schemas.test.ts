import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddEndpointBody, AddServiceBody, EndpointIdParam, MapNameParam, MonitorQuery, ServiceIdParam, UpdateServiceBody, parse } from './schemas.js';
import { TendrilError } from '../common/errors.js';

const rejects = (fn: () => unknown, pattern: RegExp) =>
  assert.throws(fn, (e: unknown) => e instanceof TendrilError && e.code === 'invalid-argument' && pattern.test(e.message));

test('AddEndpointBody accepts a netns with labels and normalises nothing away', () => {
  assert.deepEqual(parse(AddEndpointBody, { netns: '/run/netns/p1', labels: { app: 'web' } }, 'endpoint'), { netns: '/run/netns/p1', labels: { app: 'web' } });
});

test('AddEndpointBody rejects each kind of bad field, naming it', () => {
  rejects(() => parse(AddEndpointBody, {}, 'endpoint'), /invalid endpoint field "netns"/);
  rejects(() => parse(AddEndpointBody, { netns: 'rel/path' }, 'endpoint'), /netns must be an absolute path/);
  rejects(() => parse(AddEndpointBody, { netns: '/x', extra: 1 }, 'endpoint'), /unknown field\(s\) "extra"/);
  rejects(() => parse(AddEndpointBody, { netns: '/x', labels: { '-x': 'y' } }, 'endpoint'), /label key "-x" is invalid/);
  rejects(() => parse(AddEndpointBody, { netns: '/x', labels: { app: 7 } }, 'endpoint'), /field "labels.app"/);
  rejects(() => parse(AddEndpointBody, { netns: '/x', ifname: 'much-too-long-name' }, 'endpoint'), /ifname must be 1-15/);
  rejects(() => parse(AddEndpointBody, [], 'endpoint'), /invalid endpoint/);
});

test('EndpointIdParam takes 1-65535 only', () => {
  assert.equal(parse(EndpointIdParam, '42', 'endpoint id'), 42);
  rejects(() => parse(EndpointIdParam, '0', 'endpoint id'), /1-65535/);
  rejects(() => parse(EndpointIdParam, '65536', 'endpoint id'), /1-65535/);
  rejects(() => parse(EndpointIdParam, '4x', 'endpoint id'), /is a number/);
});

test('MonitorQuery splits types and checks them; MapNameParam checks names', () => {
  assert.deepEqual(parse(MonitorQuery, { type: 'drop,trace', endpoint: '3' }, 'monitor query'), { type: ['drop', 'trace'], endpoint: 3 });
  rejects(() => parse(MonitorQuery, { type: 'http' }, 'monitor query'), /type must be drop, trace, policy or l7/);
  rejects(() => parse(MonitorQuery, { since: '1' }, 'monitor query'), /unknown field\(s\) "since"/);
  assert.equal(parse(MapNameParam, 'tnd_ct', 'map name'), 'tnd_ct');
  rejects(() => parse(MapNameParam, '../x', 'map name'), /a map name is/);
});

test('AddServiceBody checks shapes and leaves addresses to the service model', () => {
  const body = { frontend: '10.96.0.10:80/TCP', backends: ['10.200.1.5:8080'], type: 'NodePort', nodePort: 30080, affinity: 'client-ip', affinityTimeout: '3h', mode: 'dsr' };
  assert.deepEqual(parse(AddServiceBody, body, 'service'), body);
  assert.deepEqual(parse(AddServiceBody, { frontend: '10.96.0.10:80', affinityTimeout: 90 }, 'service'), { frontend: '10.96.0.10:80', affinityTimeout: 90 });
  rejects(() => parse(AddServiceBody, {}, 'service'), /invalid service field "frontend": frontend must be ADDRESS:PORT\/PROTOCOL/);
  rejects(() => parse(AddServiceBody, { frontend: '10.96.0.10:80', backend: ['x'] }, 'service'), /unknown field\(s\) "backend"/);
  rejects(() => parse(AddServiceBody, { frontend: '10.96.0.10:80', backends: '10.200.1.5:80' }, 'service'), /field "backends"/);
  rejects(() => parse(AddServiceBody, { frontend: '10.96.0.10:80', backends: [''] }, 'service'), /field "backends.0": a backend is ADDRESS:PORT/);
  rejects(() => parse(AddServiceBody, { frontend: '10.96.0.10:80', nodePort: '30080' }, 'service'), /field "nodePort": nodePort must be a number/);
  rejects(() => parse(AddServiceBody, { frontend: '10.96.0.10:80', affinityTimeout: true }, 'service'), /affinityTimeout is a duration/);
});

test('UpdateServiceBody and ServiceIdParam', () => {
  assert.deepEqual(parse(UpdateServiceBody, { addBackends: ['10.200.1.7:80'], mode: 'snat' }, 'service update'), { addBackends: ['10.200.1.7:80'], mode: 'snat' });
  rejects(() => parse(UpdateServiceBody, { frontend: '10.96.0.11:80' }, 'service update'), /unknown field\(s\) "frontend"/);
  assert.equal(parse(ServiceIdParam, '4294967295', 'service id'), 4294967295);
  rejects(() => parse(ServiceIdParam, '0', 'service id'), /1-4294967295/);
  rejects(() => parse(ServiceIdParam, 'web', 'service id'), /a service id is a number/);
});
