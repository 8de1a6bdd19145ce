import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatLabels, parseLabels } from './labels.js';

test('parseLabels reads k=v lists and formats them sorted', () => {
  const labels = parseLabels('org=empire,class=deathstar,app.kubernetes.io/name=ds');
  assert.equal(formatLabels(labels), 'app.kubernetes.io/name=ds,class=deathstar,org=empire');
  assert.deepEqual(parseLabels(''), {});
});

test('parseLabels rejects malformed labels naming the culprit', () => {
  assert.throws(() => parseLabels('org'), /label "org" must be written key=value/);
  assert.throws(() => parseLabels('org=a,org=b'), /"org" is given twice/);
  assert.throws(() => parseLabels('-bad=x'), /label key "-bad" is invalid/);
  assert.throws(() => parseLabels('k=a b'), /label value "a b" of "k" is invalid/);
});
