import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TendrilError } from '../common/errors.js';
import { parsePolicyFiles, type PolicySource } from './parse.js';

/** The one-line message parsePolicyFiles throws for these sources. */
function problem(sources: PolicySource[] | string): string {
  const list = typeof sources === 'string' ? [{ file: 'policy.yaml', text: sources }] : sources;
  try {
    parsePolicyFiles(list);
  } catch (err) {
    assert.ok(err instanceof TendrilError, `a TendrilError, not ${String(err)}`);
    assert.equal(err.code, 'invalid-argument');
    assert.ok(!err.message.includes('\n'), `one line: ${err.message}`);
    return err.message;
  }
  return assert.fail('expected parsePolicyFiles to throw');
}

const CNP_HEAD = 'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: web, namespace: x}\n';
const KNP_HEAD = 'apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: np}\n';
/** A CNP whose specs[0] has these lines (indented under it). */
const cnpRule = (rule: string) => `${CNP_HEAD}specs:\n- endpointSelector: {}\n${rule.replace(/^/gm, '  ')}\n`;
const knpSpec = (spec: string) => `${KNP_HEAD}spec:\n${spec.replace(/^/gm, '  ')}\n`;
const CNP = 'policy.yaml: document 1 (CiliumNetworkPolicy "web")';
const KNP = 'policy.yaml: document 1 (NetworkPolicy "np")';

test('a port out of range names file, document and field path', () => {
  const text = `${CNP_HEAD.replace('web', 'other')}spec: {endpointSelector: {}}\n---\n${cnpRule('ingress:\n- {}\n- toPorts: [{ports: [{port: 70000}]}]')}`;
  assert.equal(
    problem(text),
    'policy.yaml: document 2 (CiliumNetworkPolicy "web"): specs[0].ingress[1].toPorts[0].ports[0].port: 70000 is out of range 1-65535',
  );
});

test('port and endPort problems', () => {
  const port = (p: string) => problem(cnpRule(`ingress: [{toPorts: [{ports: [${p}]}]}]`));
  const at = `${CNP}: specs[0].ingress[0].toPorts[0].ports[0]`;
  assert.equal(port('{port: "-1"}'), `${at}.port: -1 is out of range 1-65535`);
  assert.equal(port('{port: 8.5}'), `${at}.port: 8.5 is not a port number`);
  assert.equal(port('{port: true}'), `${at}.port: expected a port number, got boolean true`);
  assert.equal(port('{port: http}'), `${at}.port: "http" is a named port: named ports are not supported, write the number`);
  assert.equal(port('{port: 80, endPort: 79}'), `${at}.endPort: 79 is below port 80`);
  assert.equal(port('{port: 80, endPort: 65536}'), `${at}.endPort: 65536 is out of range 1-65535`);
  assert.equal(port('{port: 80, endPort: "90"}'), `${at}.endPort: expected a port number, got the string "90"`);
  assert.equal(port('{endPort: 90}'), `${at}.endPort: endPort needs a port (the first port of the range)`);
  assert.equal(port('{port: 80, protocol: tcp}'), `${at}.protocol: "tcp" is not a protocol (TCP, UDP, SCTP, ANY)`);
  assert.equal(port('{port: 80, protocol: ICMP}'), `${at}.protocol: "ICMP" is not a protocol (TCP, UDP, SCTP, ANY)`);
  assert.equal(port('{port: 80, proto: TCP}'), `${at}.proto: unknown field (expected port, endPort, protocol)`);
});

test('NetworkPolicy ports: named ports, ANY and range problems', () => {
  const port = (p: string) => problem(knpSpec(`podSelector: {}\ningress: [{ports: [${p}]}]`));
  const at = `${KNP}: spec.ingress[0].ports[0]`;
  assert.equal(port('{port: http}'), `${at}.port: "http" is a named port: named ports are not supported, write the number`);
  assert.equal(port('{port: 80, protocol: ANY}'), `${at}.protocol: "ANY" is not a protocol (TCP, UDP, SCTP)`);
  assert.equal(port('{port: 0x10000}'), `${at}.port: 65536 is out of range 1-65535`);
  assert.equal(port('{port: 443, endPort: 80}'), `${at}.endPort: 80 is below port 443`);
});

test('unknown fields are errors everywhere, listing what is expected', () => {
  assert.equal(
    problem(`${CNP_HEAD}spec: {endpointSelector: {}}\nextra: 1\n`),
    `${CNP}: extra: unknown field (expected apiVersion, kind, metadata, spec, specs, status)`,
  );
  assert.equal(
    problem(cnpRule('ingres: []')),
    `${CNP}: specs[0].ingres: unknown field (expected endpointSelector, ingress, ingressDeny, egress, egressDeny, description)`,
  );
  assert.equal(
    problem(cnpRule('ingress: [{fromEndpoint: [{}]}]')),
    `${CNP}: specs[0].ingress[0].fromEndpoint: unknown field (expected fromEndpoints, fromCIDR, fromCIDRSet, fromEntities, toPorts)`,
  );
  assert.equal(
    problem(cnpRule('egress: [{fromEndpoints: [{}]}]')),
    `${CNP}: specs[0].egress[0].fromEndpoints: unknown field (expected toEndpoints, toCIDR, toCIDRSet, toEntities, toPorts)`,
  );
  assert.equal(
    problem(cnpRule('ingress: [{fromEndpoints: [{matchLabel: {a: b}}]}]')),
    `${CNP}: specs[0].ingress[0].fromEndpoints[0].matchLabel: unknown field (expected matchLabels, matchExpressions)`,
  );
  assert.equal(
    problem(`${CNP_HEAD.replace('{name: web, namespace: x}', '{name: web, nmespace: x}')}spec: {endpointSelector: {}}\n`),
    `${CNP}: metadata.nmespace: unknown field (expected name, namespace, labels, annotations, uid, resourceVersion, generation, creationTimestamp, deletionTimestamp, deletionGracePeriodSeconds, managedFields, finalizers, ownerReferences, generateName, selfLink)`,
  );
  assert.equal(
    problem(knpSpec('podSelector: {}\ningress: [{from: [{podSelector: {}, ipblock: {}}]}]')),
    `${KNP}: spec.ingress[0].from[0].ipblock: unknown field (expected podSelector, namespaceSelector, ipBlock)`,
  );
});

test('Cilium features outside L3/L4 are "not supported", naming the field', () => {
  assert.equal(
    problem(cnpRule('egress: [{toFQDNs: [{matchName: example.com}]}]')),
    `${CNP}: specs[0].egress[0].toFQDNs: not supported: DNS-based rules are not implemented (Tendril implements L3/L4 policy by endpoint labels, CIDR and entity)`,
  );
  assert.equal(
    problem(cnpRule('egress: [{toServices: [{}]}]')),
    `${CNP}: specs[0].egress[0].toServices: not supported: Tendril implements L3/L4 policy by endpoint labels, CIDR and entity`,
  );
  assert.equal(
    problem(cnpRule('ingress: [{toPorts: [{ports: [{port: "53", protocol: UDP}], rules: {dns: [{matchName: x}]}}]}]')),
    `${CNP}: specs[0].ingress[0].toPorts[0].rules.dns: not supported: only HTTP rules are implemented (DNS-based policy is not implemented)`,
  );
  assert.equal(
    problem(cnpRule('ingress: [{icmps: [{fields: [{type: 8}]}]}]')),
    `${CNP}: specs[0].ingress[0].icmps: not supported: ICMP rules are not implemented (Tendril implements L3/L4 policy by endpoint labels, CIDR and entity)`,
  );
  assert.equal(
    problem(cnpRule('ingress: [{authentication: {mode: required}}]')),
    `${CNP}: specs[0].ingress[0].authentication: not supported: mutual authentication is not implemented`,
  );
  assert.equal(
    problem(`${CNP_HEAD}spec: {nodeSelector: {}}\n`),
    `${CNP}: spec.nodeSelector: not supported: host policies are not implemented; select endpoints with endpointSelector`,
  );
});

test('wrong types name what was expected and what was found', () => {
  assert.equal(problem(cnpRule('ingress: yes')), `${CNP}: specs[0].ingress: expected a list, got the string "yes"`);
  assert.equal(problem(cnpRule('ingress: [[]]')), `${CNP}: specs[0].ingress[0]: expected an object, got a list`);
  assert.equal(problem(cnpRule('egress: [{toEntities: world}]')), `${CNP}: specs[0].egress[0].toEntities: expected a list, got the string "world"`);
  assert.equal(
    problem(cnpRule('ingress: [{fromEndpoints: [{matchLabels: {org: 5}}]}]')),
    `${CNP}: specs[0].ingress[0].fromEndpoints[0].matchLabels.org: expected a string, got the number 5`,
  );
  assert.equal(
    problem('apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: 5}\nspec: {endpointSelector: {}}\n'),
    'policy.yaml: document 1 (CiliumNetworkPolicy): metadata.name: expected a string, got the number 5',
  );
  assert.equal(problem('- 1\n'), 'policy.yaml: document 1 [0]: expected a policy (an object), got the number 1');
  assert.equal(problem('just text\n'), 'policy.yaml: document 1: expected a policy (an object), got the string "just text"');
});

test('required fields and spec/specs', () => {
  assert.equal(problem(`${CNP_HEAD}`), `${CNP}: spec or specs is required`);
  assert.equal(
    problem(`${CNP_HEAD}spec: {endpointSelector: {}}\nspecs: [{endpointSelector: {}}]\n`),
    `${CNP}: specs: give either spec (one rule) or specs (a list of rules), not both`,
  );
  assert.equal(problem(`${CNP_HEAD}specs: []\n`), `${CNP}: specs: needs at least one rule`);
  assert.equal(problem(`${CNP_HEAD}spec: {ingress: []}\n`), `${CNP}: spec.endpointSelector: is required`);
  assert.equal(
    problem('apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nspec: {endpointSelector: {}}\n'),
    'policy.yaml: document 1 (CiliumNetworkPolicy): metadata: is required',
  );
  assert.equal(
    problem('apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {namespace: x}\nspec: {endpointSelector: {}}\n'),
    'policy.yaml: document 1 (CiliumNetworkPolicy): metadata.name: is required',
  );
  assert.equal(
    problem('apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: Web_1}\nspec: {endpointSelector: {}}\n'),
    'policy.yaml: document 1 (CiliumNetworkPolicy "Web_1"): metadata.name: "Web_1" is not a valid name (lowercase letters, digits, "-" and ".", at most 253)',
  );
  assert.equal(problem(`${KNP_HEAD}spec: {}\n`), `${KNP}: spec.podSelector: is required`);
  assert.equal(problem(`${KNP_HEAD}`), `${KNP}: spec: is required`);
});

test('invalid CIDRs and excepts outside their cidr', () => {
  assert.equal(problem(cnpRule('egress: [{toCIDR: [10.0.0.0/33]}]')), `${CNP}: specs[0].egress[0].toCIDR[0]: "10.0.0.0/33" has an invalid prefix length (0-32)`);
  assert.equal(
    problem(cnpRule('egress: [{toCIDR: [example.com]}]')),
    `${CNP}: specs[0].egress[0].toCIDR[0]: "example.com" is not a CIDR prefix (ADDRESS/LENGTH, e.g. 10.0.0.0/8)`,
  );
  assert.equal(
    problem(cnpRule('egress: [{toCIDRSet: [{cidr: 10.0.0.0/8, except: [11.0.0.0/16]}]}]')),
    `${CNP}: specs[0].egress[0].toCIDRSet[0].except[0]: "11.0.0.0/16" is not inside cidr 10.0.0.0/8`,
  );
  assert.equal(
    problem(cnpRule('egress: [{toCIDRSet: [{cidr: 10.0.0.0/16, except: [10.0.0.0/8]}]}]')),
    `${CNP}: specs[0].egress[0].toCIDRSet[0].except[0]: "10.0.0.0/8" is not inside cidr 10.0.0.0/16`,
  );
  assert.equal(
    problem(cnpRule('egress: [{toCIDRSet: [{except: [10.0.0.0/8]}]}]')),
    `${CNP}: specs[0].egress[0].toCIDRSet[0].cidr: is required`,
  );
  assert.equal(
    problem(cnpRule('egress: [{toCIDRSet: [{cidrGroupRef: corp}]}]')),
    `${CNP}: specs[0].egress[0].toCIDRSet[0].cidrGroupRef: not supported: CIDR groups are not implemented`,
  );
  assert.equal(
    problem(knpSpec('podSelector: {}\negress: [{to: [{ipBlock: {cidr: "fd10::/16", except: [10.0.0.0/8]}}]}]')),
    `${KNP}: spec.egress[0].to[0].ipBlock.except[0]: "10.0.0.0/8" is not inside cidr fd10::/16`,
  );
});

test('unknown entities list the known ones', () => {
  assert.equal(
    problem(cnpRule('egress: [{toEntities: [world, internet]}]')),
    `${CNP}: specs[0].egress[0].toEntities[1]: "internet" is not an entity (all, world, cluster, host, remote-node, health, init, unmanaged, kube-apiserver, ingress)`,
  );
});

test('invalid label keys, values and operators name the selector field', () => {
  assert.equal(
    problem(cnpRule('ingress: [{fromEndpoints: [{matchLabels: {org: "emp.*"}}]}]')),
    `${CNP}: specs[0].ingress[0].fromEndpoints[0].matchLabels.org: label value "emp.*" of "org" is invalid (at most 63 letters, digits, "-", "_", ".")`,
  );
  assert.equal(
    problem(`${CNP_HEAD}spec: {endpointSelector: {matchLabels: {"bad key": x}}}\n`),
    `${CNP}: spec.endpointSelector.matchLabels.bad key: label key "bad key" is invalid (letters, digits, "-", "_", "." and an optional "prefix/")`,
  );
  assert.equal(
    problem(cnpRule('ingress: [{fromEndpoints: [{matchExpressions: [{key: org, operator: In}]}]}]')),
    `${CNP}: specs[0].ingress[0].fromEndpoints[0].matchExpressions[0].values: operator In needs at least one value`,
  );
  assert.equal(
    problem(cnpRule('ingress: [{fromEndpoints: [{matchExpressions: [{key: org, operator: Exists, values: [a]}]}]}]')),
    `${CNP}: specs[0].ingress[0].fromEndpoints[0].matchExpressions[0].values: operator Exists takes no values`,
  );
  assert.equal(
    problem(cnpRule('ingress: [{fromEndpoints: [{matchExpressions: [{key: org, operator: Like, values: [a]}]}]}]')),
    `${CNP}: specs[0].ingress[0].fromEndpoints[0].matchExpressions[0].operator: "Like" is not an operator (In, NotIn, Exists or DoesNotExist)`,
  );
  assert.equal(
    problem(knpSpec('podSelector: {}\ningress: [{from: [{namespaceSelector: {matchExpressions: [{operator: Exists}]}}]}]')),
    `${KNP}: spec.ingress[0].from[0].namespaceSelector.matchExpressions[0].key: is required`,
  );
});

test('NetworkPolicy peers and policyTypes', () => {
  assert.equal(
    problem(knpSpec('podSelector: {}\ningress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}, podSelector: {}}]}]')),
    `${KNP}: spec.ingress[0].from[0].ipBlock: cannot be combined with podSelector or namespaceSelector in one peer; write two peers`,
  );
  assert.equal(
    problem(knpSpec('podSelector: {}\ningress: [{from: [{}]}]')),
    `${KNP}: spec.ingress[0].from[0]: a peer needs podSelector, namespaceSelector or ipBlock`,
  );
  assert.equal(
    problem(knpSpec('podSelector: {}\npolicyTypes: [Ingress, egress]')),
    `${KNP}: spec.policyTypes[1]: "egress" is not a policy type (Ingress or Egress)`,
  );
  assert.equal(
    problem(knpSpec('podSelector: {}\ningress: [{from: [{podSelector: {}}], to: []}]')),
    `${KNP}: spec.ingress[0].to: unknown field (expected from, ports)`,
  );
});

test('unknown apiVersion or kind', () => {
  assert.equal(
    problem('apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n'),
    'policy.yaml: document 1 (Pod "p"): kind: "Pod" is not a policy kind (CiliumNetworkPolicy, NetworkPolicy, or a List of them)',
  );
  assert.equal(
    problem('apiVersion: cilium.io/v1\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspec: {endpointSelector: {}}\n'),
    'policy.yaml: document 1 (CiliumNetworkPolicy "p"): apiVersion: "cilium.io/v1" is not supported for CiliumNetworkPolicy (use cilium.io/v2)',
  );
  assert.equal(
    problem('kind: NetworkPolicy\nmetadata: {name: p}\nspec: {podSelector: {}}\n'),
    'policy.yaml: document 1 (NetworkPolicy "p"): apiVersion: is required (networking.k8s.io/v1 for NetworkPolicy)',
  );
  assert.equal(
    problem('apiVersion: cilium.io/v2\nmetadata: {name: p}\n'),
    'policy.yaml: document 1 ("p"): kind: is required (CiliumNetworkPolicy, NetworkPolicy, or a List of them)',
  );
  assert.equal(
    problem('apiVersion: cilium.io/v2\nkind: NetworkPolicyList\nitems: []\n'),
    'policy.yaml: document 1 (NetworkPolicyList): apiVersion: "cilium.io/v2" is not the apiVersion of NetworkPolicyList (networking.k8s.io/v1)',
  );
  assert.equal(
    problem('apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: List, items: []}\n'),
    'policy.yaml: document 1 items[0] (List): kind: a List inside a List is not supported',
  );
  assert.equal(
    problem('apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicyList\nitems:\n- {apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, metadata: {name: n}, spec: {podSelector: {}}}\n'),
    'policy.yaml: document 1 items[0] (NetworkPolicy "n"): kind: a CiliumNetworkPolicyList holds CiliumNetworkPolicy items, not NetworkPolicy',
  );
  assert.equal(
    problem('apiVersion: v1\nkind: List\nitems:\n- {apiVersion: cilium.io/v2, kind: CiliumNetworkPolicy, metadata: {name: n}, spec: {endpointSelector: {}, egress: [{toPorts: [{ports: [{port: 0.5}]}]}]}}\n'),
    'policy.yaml: document 1 items[0] (CiliumNetworkPolicy "n"): spec.egress[0].toPorts[0].ports[0].port: 0.5 is not a port number',
  );
});

test('empty files have no documents', () => {
  assert.equal(problem(''), 'policy.yaml: no policy documents in the file');
  assert.equal(problem('# nothing here\n---\n'), 'policy.yaml: no policy documents in the file');
  assert.equal(problem([{ file: 'empty.json', text: '   \n' }]), 'empty.json: no policy documents in the file');
});

test('YAML and JSON syntax errors give the line', () => {
  assert.equal(
    problem(`${CNP_HEAD}spec:\n  endpointSelector: {}\n  ingress: [{fromEntities: [world]}\n`),
    'policy.yaml: document 1: line 7, column 1: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]',
  );
  assert.equal(
    problem(`${CNP_HEAD}spec:\n  endpointSelector: {}\n  endpointSelector: {}\n`),
    'policy.yaml: document 1: line 6, column 3: YAML syntax error: Map keys must be unique',
  );
  assert.match(problem([{ file: 'p.json', text: '{\n  "kind": "NetworkPolicy",\n  "spec": {\n}\n' }]), /^p\.json: document 1: line \d+, column \d+: YAML syntax error: /);
});

test('a policy defined twice in one import is an error, across files too', () => {
  const policy = `${CNP_HEAD}spec: {endpointSelector: {}}\n`;
  assert.equal(
    problem(`${policy}---\n${policy}`),
    'policy.yaml: document 2 (CiliumNetworkPolicy "web"): policy "x/web" is defined twice in one import (first in policy.yaml: document 1 (CiliumNetworkPolicy "web"))',
  );
  assert.equal(
    problem([
      { file: 'a.yaml', text: policy },
      { file: 'b.yaml', text: policy },
    ]),
    'b.yaml: document 1 (CiliumNetworkPolicy "web"): policy "x/web" is defined twice in one import (first in a.yaml: document 1 (CiliumNetworkPolicy "web"))',
  );
  // The same name in another namespace, or cluster-wide, is another policy.
  const other = policy.replace('namespace: x', 'namespace: y');
  const clusterWide = policy.replace(', namespace: x', '');
  assert.equal(parsePolicyFiles([{ file: 'p.yaml', text: `${policy}---\n${other}---\n${clusterWide}` }]).length, 3);
});

test('one bad document rejects the whole import', () => {
  const good = `${CNP_HEAD.replace('web', 'good')}spec: {endpointSelector: {}}\n`;
  assert.throws(() => parsePolicyFiles([{ file: 'a.yaml', text: good }, { file: 'b.yaml', text: cnpRule('ingress: [{fromEntities: [moon]}]') }]), /b\.yaml: document 1/);
});
