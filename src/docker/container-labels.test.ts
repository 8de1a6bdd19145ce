import { test } from 'node:test';
import assert from 'node:assert/strict';
import { containerLabels } from './container-labels.js';

test('containerLabels() keeps Docker labels as they are and the name under the CNI path\'s key', () => {
  assert.deepEqual(containerLabels('/web', { org: 'empire', 'app.kubernetes.io/name': 'web' }), {
    labels: { 'app.kubernetes.io/name': 'web', 'io.kubernetes.pod.name': 'web', org: 'empire' },
    skipped: [],
  });
  assert.deepEqual(containerLabels('/solo', null), { labels: { 'io.kubernetes.pod.name': 'solo' }, skipped: [] });
});

test('containerLabels() leaves out, and names, a label Tendril cannot carry; the name wins over a label of its key', () => {
  const r = containerLabels('/web', { 'com.docker.compose.config-hash': 'f'.repeat(64), 'bad key': 'x', 'io.kubernetes.pod.name': 'other' });
  assert.deepEqual(r.labels, { 'io.kubernetes.pod.name': 'web' });
  assert.equal(r.skipped.length, 2);
  assert.match(r.skipped.join('\n'), /com\.docker\.compose\.config-hash/);
  assert.match(r.skipped.join('\n'), /"bad key"/);
});
