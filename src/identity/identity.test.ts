import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RESERVED_IDENTITIES, endpointLabels, labelKey, parseLabelKey, reservedIdentity } from './identity.js';
import { ReservedIdentity } from '../common/identity.js';

test('labelKey is the same for equal label sets and parseLabelKey reads it back', () => {
  const a = endpointLabels({ env: 'prod', app: 'web', 'k8s:io.kubernetes.pod.namespace': 'default', empty: '' });
  const b = endpointLabels({ app: 'web', empty: '', 'k8s:io.kubernetes.pod.namespace': 'default', env: 'prod' });
  assert.equal(labelKey(a), 'app=web,empty=,env=prod,k8s:io.kubernetes.pod.namespace=default');
  assert.equal(labelKey(a), labelKey(b));
  assert.deepEqual(parseLabelKey(labelKey(a)), a);
  assert.deepEqual(parseLabelKey(''), {});
  assert.equal(parseLabelKey('b=1,a=2'), undefined, 'not canonical: unsorted');
  assert.equal(parseLabelKey('novalue'), undefined);
});

test('RESERVED_IDENTITIES names every reserved id of common/identity.ts once', () => {
  assert.deepEqual(RESERVED_IDENTITIES.map((i) => i.id), Object.values(ReservedIdentity));
  assert.deepEqual(reservedIdentity(ReservedIdentity['remote-node'])?.labels, { 'reserved:remote-node': '' });
  assert.equal(reservedIdentity(256), undefined);
});
