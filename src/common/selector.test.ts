import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  SelectorError,
  inNamespace,
  namespaceLabelsOf,
  namespaceSelectorOverEndpoints,
  normalizeSelectorKey,
  parseSelector,
  selectorKey,
  selectorMatches,
  withRequirements,
  type SelectorSpec,
} from './selector.js';

const empire = { org: 'empire', class: 'deathstar', 'io.kubernetes.pod.namespace': 'x' };
const rebel = { org: 'alliance', class: 'xwing' };
const matches = (spec: SelectorSpec, labels: Record<string, string>) => selectorMatches(parseSelector(spec), labels);

test('matchLabels requires every label with its value', () => {
  assert.ok(matches({ matchLabels: { org: 'empire' } }, empire));
  assert.ok(matches({ matchLabels: { org: 'empire', class: 'deathstar' } }, empire));
  assert.ok(!matches({ matchLabels: { org: 'empire', class: 'tiefighter' } }, empire));
  assert.ok(!matches({ matchLabels: { org: 'empire' } }, rebel));
  assert.ok(!matches({ matchLabels: { missing: '' } }, empire));
});

test('an empty selector selects every label set, the empty one too', () => {
  assert.ok(matches({}, empire));
  assert.ok(matches({ matchLabels: {}, matchExpressions: [] }, {}));
});

test('In matches a present key with a listed value', () => {
  const spec: SelectorSpec = { matchExpressions: [{ key: 'org', operator: 'In', values: ['empire', 'hutts'] }] };
  assert.ok(matches(spec, empire));
  assert.ok(!matches(spec, rebel));
  assert.ok(!matches(spec, {}));
});

test('NotIn matches a different value and an absent key (Kubernetes semantics)', () => {
  const spec: SelectorSpec = { matchExpressions: [{ key: 'org', operator: 'NotIn', values: ['empire'] }] };
  assert.ok(!matches(spec, empire));
  assert.ok(matches(spec, rebel));
  assert.ok(matches(spec, { class: 'deathstar' }));
});

test('Exists and DoesNotExist look at the key alone', () => {
  const exists: SelectorSpec = { matchExpressions: [{ key: 'class', operator: 'Exists' }] };
  const absent: SelectorSpec = { matchExpressions: [{ key: 'class', operator: 'DoesNotExist', values: [] }] };
  assert.ok(matches(exists, empire));
  assert.ok(matches(exists, { class: '' }));
  assert.ok(!matches(exists, { org: 'empire' }));
  assert.ok(!matches(absent, empire));
  assert.ok(matches(absent, { org: 'empire' }));
});

test('matchLabels and matchExpressions are ANDed', () => {
  const spec: SelectorSpec = {
    matchLabels: { org: 'empire' },
    matchExpressions: [{ key: 'class', operator: 'NotIn', values: ['deathstar'] }],
  };
  assert.ok(!matches(spec, empire));
  assert.ok(matches(spec, { org: 'empire', class: 'tiefighter' }));
});

test('source prefixes k8s:, any: and container: are dropped, reserved: is kept', () => {
  assert.equal(normalizeSelectorKey('k8s:org'), 'org');
  assert.equal(normalizeSelectorKey('any:org'), 'org');
  assert.equal(normalizeSelectorKey('container:org'), 'org');
  assert.equal(normalizeSelectorKey('k8s:io.kubernetes.pod.namespace'), 'io.kubernetes.pod.namespace');
  assert.equal(normalizeSelectorKey('reserved:host'), 'reserved:host');
  assert.ok(matches({ matchLabels: { 'k8s:org': 'empire' } }, empire));
  assert.ok(matches({ matchExpressions: [{ key: 'any:class', operator: 'In', values: ['deathstar'] }] }, empire));
  assert.ok(matches({ matchLabels: { 'reserved:host': '' } }, { 'reserved:host': '' }));
  assert.ok(!matches({ matchLabels: { 'reserved:host': '' } }, { host: '' }));
});

test('parseSelector rejects invalid keys and values naming the field', () => {
  const problem = (spec: SelectorSpec) => {
    try {
      parseSelector(spec);
    } catch (err) {
      assert.ok(err instanceof SelectorError);
      return err.message;
    }
    assert.fail('expected a SelectorError');
  };
  assert.match(problem({ matchLabels: { org: 'emp.*' } }), /^matchLabels\.org: label value "emp\.\*" of "org" is invalid/);
  assert.match(problem({ matchLabels: { '-org': 'x' } }), /^matchLabels\.-org: label key "-org" is invalid/);
  assert.match(problem({ matchLabels: { 'bogus:org': 'x' } }), /^matchLabels\.bogus:org: label key "bogus:org" is invalid/);
  assert.match(problem({ matchExpressions: [{ key: 'a b', operator: 'Exists' }] }), /^matchExpressions\[0\]\.key: label key "a b" is invalid/);
  assert.equal(
    problem({ matchExpressions: [{ key: 'org', operator: 'Equals', values: ['x'] }] }),
    'matchExpressions[0].operator: "Equals" is not an operator (In, NotIn, Exists or DoesNotExist)',
  );
  assert.equal(problem({ matchExpressions: [{ key: 'org', operator: 'In', values: [] }] }), 'matchExpressions[0].values: operator In needs at least one value');
  assert.equal(problem({ matchExpressions: [{ key: 'org', operator: 'NotIn' }] }), 'matchExpressions[0].values: operator NotIn needs at least one value');
  assert.equal(
    problem({ matchExpressions: [{ key: 'org', operator: 'Exists', values: ['x'] }] }),
    'matchExpressions[0].values: operator Exists takes no values',
  );
  assert.equal(
    problem({ matchExpressions: [{ key: 'org', operator: 'DoesNotExist', values: ['x'] }] }),
    'matchExpressions[0].values: operator DoesNotExist takes no values',
  );
  assert.match(
    problem({ matchExpressions: [{ key: 'org', operator: 'In', values: ['ok', 'not ok'] }] }),
    /^matchExpressions\[0\]\.values\[1\]: label value "not ok"/,
  );
});

test('selectorKey is the same for the same meaning, whatever the order', () => {
  const a = parseSelector({ matchLabels: { org: 'empire', class: 'deathstar' } });
  const b = parseSelector({
    matchExpressions: [
      { key: 'class', operator: 'In', values: ['deathstar'] },
      { key: 'k8s:org', operator: 'In', values: ['empire', 'empire'] },
    ],
  });
  assert.equal(selectorKey(a), selectorKey(b));
  assert.notEqual(selectorKey(a), selectorKey(parseSelector({ matchLabels: { org: 'empire' } })));
});

test('namespaceLabelsOf gives the name plus the copied namespace labels; no namespace label, no namespace', () => {
  assert.deepEqual(
    namespaceLabelsOf({ org: 'empire', 'io.kubernetes.pod.namespace': 'x', 'io.cilium.k8s.namespace.labels.team': 'red' }),
    { 'kubernetes.io/metadata.name': 'x', team: 'red' },
  );
  assert.equal(namespaceLabelsOf({ org: 'empire' }), undefined);
  // The namespace's own name wins over a copied label of the same key.
  assert.deepEqual(
    namespaceLabelsOf({ 'io.kubernetes.pod.namespace': 'x', 'io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name': 'y' }),
    { 'kubernetes.io/metadata.name': 'x' },
  );
});

test('a namespace selector over endpoint labels agrees with matching the namespace labels', () => {
  const endpoints: Array<Record<string, string>> = [
    { 'io.kubernetes.pod.namespace': 'x', 'io.cilium.k8s.namespace.labels.team': 'red', app: 'a' },
    { 'io.kubernetes.pod.namespace': 'y', 'io.cilium.k8s.namespace.labels.team': 'blue', app: 'a' },
    { 'io.kubernetes.pod.namespace': 'z', app: 'b' },
    { app: 'a', team: 'red' },
  ];
  const specs: SelectorSpec[] = [
    {},
    { matchLabels: { team: 'red' } },
    { matchLabels: { 'kubernetes.io/metadata.name': 'y' } },
    { matchExpressions: [{ key: 'team', operator: 'NotIn', values: ['red'] }] },
    { matchExpressions: [{ key: 'team', operator: 'DoesNotExist' }] },
    { matchExpressions: [{ key: 'kubernetes.io/metadata.name', operator: 'In', values: ['x', 'z'] }] },
  ];
  for (const spec of specs) {
    const selector = parseSelector(spec);
    const rewritten = namespaceSelectorOverEndpoints(selector);
    for (const labels of endpoints) {
      const ns = namespaceLabelsOf(labels);
      const expected = ns !== undefined && selectorMatches(selector, ns);
      assert.equal(selectorMatches(rewritten, labels), expected, `${JSON.stringify(spec)} on ${JSON.stringify(labels)}`);
    }
  }
});

test('namespaceSelector and podSelector together select matching pods in matching namespaces', () => {
  const pods = parseSelector({ matchLabels: { app: 'a' } });
  const namespaces = namespaceSelectorOverEndpoints(parseSelector({ matchLabels: { team: 'red' } }));
  const both = withRequirements(pods, ...namespaces.requirements);
  assert.ok(selectorMatches(both, { app: 'a', 'io.kubernetes.pod.namespace': 'x', 'io.cilium.k8s.namespace.labels.team': 'red' }));
  assert.ok(!selectorMatches(both, { app: 'b', 'io.kubernetes.pod.namespace': 'x', 'io.cilium.k8s.namespace.labels.team': 'red' }));
  assert.ok(!selectorMatches(both, { app: 'a', 'io.kubernetes.pod.namespace': 'y', 'io.cilium.k8s.namespace.labels.team': 'blue' }));
});

test('inNamespace scopes a selector to one namespace; endpoints without one never match', () => {
  const scoped = withRequirements(parseSelector({}), inNamespace('x'));
  assert.ok(selectorMatches(scoped, empire));
  assert.ok(!selectorMatches(scoped, { ...empire, 'io.kubernetes.pod.namespace': 'y' }));
  assert.ok(!selectorMatches(scoped, rebel));
});
