/**
 * Kubernetes NetworkPolicy (networking.k8s.io/v1) read into the policy model.
 * Semantics kept from Kubernetes: policyTypes defaults to Ingress, plus
 * Egress when spec.egress is present; a rule without peers admits every peer
 * and one without ports every port; an enforced direction without rules
 * denies everything; ipBlock selects addresses outside the cluster's
 * endpoints (CIDR identities), as in Cilium.
 */
import { IDENTITY_ANY } from '../common/identity.js';
import type { Direction } from '../common/policy-entry.js';
import { inNamespace, namespaceSelectorOverEndpoints, withRequirements } from '../common/selector.js';
import { cidrPeer } from './cidr-peer.js';
import type { Field } from './field.js';
import { readMetadata } from './metadata.js';
import { policyKey, type Peer, type PeerRule, type Policy, type PortRange } from './model.js';
import { KUBERNETES_PORTS, readPort } from './ports.js';

const POLICY_TYPES: Readonly<Record<string, Direction>> = { Ingress: 'ingress', Egress: 'egress' };

export function readKubernetesPolicy(doc: Field): Policy {
  const f = doc.object({ known: ['apiVersion', 'kind', 'metadata', 'spec', 'status'] });
  const { name, namespace = 'default' } = readMetadata(f.metadata, 'default');
  const s = f.spec.required().object({ known: ['podSelector', 'policyTypes', 'ingress', 'egress'] });
  const subject = withRequirements(s.podSelector.required().selector(), inNamespace(namespace));

  const enforces = { ingress: false, egress: false };
  const types = s.policyTypes.list();
  // An empty list defaults like an absent one (Kubernetes' defaulting).
  if (types.length > 0) {
    for (const item of types) {
      const type = item.string();
      const direction = POLICY_TYPES[type];
      if (!direction) item.fail(`"${type}" is not a policy type (Ingress or Egress)`);
      enforces[direction] = true;
    }
  } else {
    enforces.ingress = true;
    enforces.egress = s.egress.present;
  }

  const rules: PeerRule[] = [];
  for (const direction of ['ingress', 'egress'] as const) {
    const items = s[direction].list().map((item) => readRule(item, direction, namespace));
    // Rules of a direction policyTypes leaves out are ignored, as Kubernetes does.
    if (enforces[direction]) rules.push(...items);
  }
  return {
    kind: 'NetworkPolicy',
    name,
    namespace,
    key: policyKey(namespace, name),
    document: doc.value,
    specs: [{ path: 'spec', subject, enforces, rules }],
  };
}

function readRule(field: Field, direction: Direction, namespace: string): PeerRule {
  const peersKey = direction === 'ingress' ? 'from' : 'to';
  const f = field.object({ known: [peersKey, 'ports'] });
  const peerFields = f[peersKey]!.list();
  const peers: Peer[] = peerFields.length === 0 ? [{ kind: 'identity', identity: IDENTITY_ANY }] : peerFields.map((p) => readPeer(p, namespace));
  const portFields = f.ports.list();
  const ports: PortRange[] | undefined = portFields.length === 0 ? undefined : portFields.flatMap((p) => readPort(p, KUBERNETES_PORTS));
  return { path: field.path, direction, verdict: 'allow', peers, ports };
}

function readPeer(field: Field, namespace: string): Peer {
  const f = field.object({ known: ['podSelector', 'namespaceSelector', 'ipBlock'] });
  if (f.ipBlock.present) {
    if (f.podSelector.present || f.namespaceSelector.present)
      f.ipBlock.fail('cannot be combined with podSelector or namespaceSelector in one peer; write two peers');
    const b = f.ipBlock.object({ known: ['cidr', 'except'] });
    return cidrPeer(b.cidr.required(), b.except);
  }
  if (!f.podSelector.present && !f.namespaceSelector.present) field.fail('a peer needs podSelector, namespaceSelector or ipBlock');
  if (!f.namespaceSelector.present) return { kind: 'endpoints', selector: withRequirements(f.podSelector.selector(), inNamespace(namespace)) };
  // With a namespaceSelector, the podSelector (if any) picks pods in the matching namespaces.
  const inNamespaces = namespaceSelectorOverEndpoints(f.namespaceSelector.selector());
  return { kind: 'endpoints', selector: withRequirements(f.podSelector.selector(), ...inNamespaces.requirements) };
}
