import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AddEndpointBody, EndpointIdParam, MapNameParam, MonitorQuery, parse } from './schemas.js';
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
