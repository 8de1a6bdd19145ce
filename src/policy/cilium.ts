/**
 * CiliumNetworkPolicy (cilium.io/v2) read into the policy model: L3/L4, and
 * HTTP rules on TCP ports (http-rules.ts).
 * Semantics kept from Cilium: within one rule the peer kinds are ORed and
 * toPorts is ANDed with them; a rule with only toPorts applies to every peer,
 * one with only peers to every port; an empty rule {} allows nothing; a
 * direction is enforced as soon as a rule has its key (ingress or
 * ingressDeny), even as an empty list.
 */
import { IDENTITY_ANY } from '../common/identity.js';
import type { Direction, Verdict } from '../common/policy-entry.js';
import {
  NAMESPACE_LABEL,
  NAMESPACE_LABELS_PREFIX,
  RESERVED_PREFIX,
  inNamespace,
  withRequirements,
  type LabelSelector,
} from '../common/selector.js';
import { cidrPeer } from './cidr-peer.js';
import { ENTITY_NAMES, entityIdentities } from './entities.js';
import type { Field } from './field.js';
import { readMetadata } from './metadata.js';
import { policyKey, type Peer, type PeerRule, type Policy, type PolicySpec, type PortRange } from './model.js';
import { CILIUM_PORTS, readPort } from './ports.js';
import { readHttpRules } from './http-rules.js';
import { PROTO_TCP } from '../common/policy-entry.js';

const NOT_L3L4 = 'Tendril implements L3/L4 policy by endpoint labels, CIDR and entity';

const RULE_UNSUPPORTED: Record<string, string> = {
  nodeSelector: 'host policies are not implemented; select endpoints with endpointSelector',
  labels: 'rule labels are not implemented; the rule is named by its policy and path',
  enableDefaultDeny: 'every rule with ingress or egress makes that direction default-deny',
};

function peerUnsupported(prefix: 'from' | 'to'): Record<string, string> {
  const out: Record<string, string> = {
    [`${prefix}Requires`]: `${NOT_L3L4}; ${prefix}Requires is deprecated in Cilium too`,
    [`${prefix}Groups`]: NOT_L3L4,
    [`${prefix}Nodes`]: NOT_L3L4,
    icmps: `ICMP rules are not implemented (${NOT_L3L4})`,
    authentication: 'mutual authentication is not implemented',
  };
  if (prefix === 'to') {
    out.toServices = NOT_L3L4;
    out.toFQDNs = `DNS-based rules are not implemented (${NOT_L3L4})`;
  }
  return out;
}

const PORT_RULE_UNSUPPORTED: Record<string, string> = {
  terminatingTLS: 'TLS interception is not implemented',
  originatingTLS: 'TLS interception is not implemented',
  serverNames: 'TLS SNI matching is not implemented',
  listener: 'Envoy listeners are not implemented',
};

const LISTS: ReadonlyArray<{ key: 'ingress' | 'ingressDeny' | 'egress' | 'egressDeny'; direction: Direction; verdict: Verdict }> = [
  { key: 'ingress', direction: 'ingress', verdict: 'allow' },
  { key: 'ingressDeny', direction: 'ingress', verdict: 'deny' },
  { key: 'egress', direction: 'egress', verdict: 'allow' },
  { key: 'egressDeny', direction: 'egress', verdict: 'deny' },
];

export function readCiliumPolicy(doc: Field): Policy {
  const f = doc.object({ known: ['apiVersion', 'kind', 'metadata', 'spec', 'specs', 'status'] });
  const { name, namespace } = readMetadata(f.metadata, undefined);
  let specFields: Field[];
  if (f.spec.present && f.specs.present) f.specs.fail('give either spec (one rule) or specs (a list of rules), not both');
  if (f.spec.present) specFields = [f.spec];
  else if (f.specs.present) {
    specFields = f.specs.list();
    if (specFields.length === 0) f.specs.fail('needs at least one rule');
  } else doc.fail('spec or specs is required');
  return {
    kind: 'CiliumNetworkPolicy',
    name,
    namespace,
    key: policyKey(namespace, name),
    document: doc.value,
    specs: specFields.map((field) => readRule(field, namespace)),
  };
}

function readRule(field: Field, namespace: string | undefined): PolicySpec {
  const f = field.object({
    known: ['endpointSelector', 'ingress', 'ingressDeny', 'egress', 'egressDeny', 'description'],
    unsupported: RULE_UNSUPPORTED,
  });
  if (f.description.present) f.description.string();
  const selected = f.endpointSelector.required().selector();
  // A namespaced policy applies to its own namespace only, whatever the selector says.
  const subject = namespace === undefined ? selected : withRequirements(selected, inNamespace(namespace));
  const rules: PeerRule[] = [];
  for (const list of LISTS) {
    for (const item of f[list.key].list()) rules.push(readPeerRule(item, list.direction, list.verdict, namespace));
  }
  return {
    path: field.path,
    subject,
    enforces: {
      ingress: f.ingress.present || f.ingressDeny.present,
      egress: f.egress.present || f.egressDeny.present,
    },
    rules,
  };
}

function readPeerRule(field: Field, direction: Direction, verdict: Verdict, namespace: string | undefined): PeerRule {
  const p = direction === 'ingress' ? 'from' : 'to';
  const f = field.object({
    known: [`${p}Endpoints`, `${p}CIDR`, `${p}CIDRSet`, `${p}Entities`, 'toPorts'],
    unsupported: peerUnsupported(p),
  });
  const endpoints = f[`${p}Endpoints`]!;
  const cidrs = f[`${p}CIDR`]!;
  const cidrSets = f[`${p}CIDRSet`]!;
  const entities = f[`${p}Entities`]!;

  const peers: Peer[] = [];
  for (const item of endpoints.list()) peers.push({ kind: 'endpoints', selector: scopePeer(item.selector(), namespace) });
  for (const item of cidrs.list()) peers.push(cidrPeer(item, undefined));
  for (const item of cidrSets.list()) {
    const s = item.object({
      known: ['cidr', 'except'],
      unsupported: { cidrGroupRef: 'CIDR groups are not implemented', cidrGroupSelector: 'CIDR groups are not implemented' },
    });
    peers.push(cidrPeer(s.cidr.required(), s.except));
  }
  for (const item of entities.list()) {
    const name = item.string();
    const ids = entityIdentities(name) ?? item.fail(`"${name}" is not an entity (${ENTITY_NAMES.join(', ')})`);
    for (const identity of ids) peers.push({ kind: 'identity', identity });
  }

  const portRules = f.toPorts.list();
  let ports: PortRange[] | undefined = [];
  for (const portRule of portRules) {
    const r = portRule.object({ known: ['ports', 'rules'], unsupported: PORT_RULE_UNSUPPORTED });
    const items = r.ports.list();
    const perItem = items.map((item) => readPort(item, CILIUM_PORTS));
    const ranges = perItem.flat();
    if (r.rules.present) {
      const http = readHttpRules(r.rules);
      if (verdict === 'deny') r.rules.fail('HTTP rules cannot be part of a deny rule (a deny applies to whole connections)');
      if (items.length === 0) r.rules.fail('HTTP rules need ports (with protocol: TCP)');
      items.forEach((item, i) => {
        if (perItem[i]!.some((range) => range.protocol !== PROTO_TCP))
          item.fail(`HTTP rules need protocol: TCP (this port is ${describeProtocols(perItem[i]!)})`);
      });
      for (const range of ranges) range.http = http;
    }
    // A port rule without ports stands for every port; that absorbs the rest.
    if (items.length === 0) ports = undefined;
    else ports?.push(...ranges);
  }
  if (portRules.length === 0) ports = undefined;

  const namesPeers = [endpoints, cidrs, cidrSets, entities].some((x) => x.present);
  // Only toPorts: every peer on those ports. Neither peers nor ports ({}): nothing.
  if (!namesPeers && portRules.length > 0) peers.push({ kind: 'identity', identity: IDENTITY_ANY });
  return { path: field.path, direction, verdict, peers, ports };
}

function describeProtocols(ranges: readonly PortRange[]): string {
  const names: Record<number, string> = { 6: 'TCP', 17: 'UDP', 132: 'SCTP' };
  return [...new Set(ranges.map((r) => names[r.protocol] ?? String(r.protocol)))].join(', ');
}

/**
 * A peer selector of a namespaced policy selects in the policy's namespace,
 * unless it names the namespace key, a namespace label (Cilium's
 * io.cilium.k8s.namespace.labels.*) or a reserved identity, none of which a
 * namespace restriction would leave meaningful.
 */
function scopePeer(selector: LabelSelector, namespace: string | undefined): LabelSelector {
  if (namespace === undefined) return selector;
  const crossesNamespaces = selector.requirements.some(
    (r) => r.key === NAMESPACE_LABEL || r.key.startsWith(NAMESPACE_LABELS_PREFIX) || r.key.startsWith(RESERVED_PREFIX),
  );
  return crossesNamespaces ? selector : withRequirements(selector, inNamespace(namespace));
}
