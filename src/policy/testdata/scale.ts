/**
 * A large, realistic policy set: `rules` Cilium rules in 10 namespaces over
 * `identityCount` endpoint identities (plus the CIDR identities the rules
 * name), and `endpointCount` local endpoints to resolve. Deterministic.
 */
import { ENDPOINT_IDENTITY_MIN } from '../../common/identity.js';
import type { Labels } from '../../common/labels.js';
import { referencedCidrs } from '../cidr.js';
import type { IdentityLabels } from '../identity-index.js';
import type { Policy } from '../model.js';
import { parsePolicyFiles } from '../parse.js';
import { cidrIdentities, reservedIdentities } from './identities.js';

const NAMESPACES = 10;
const RULES_PER_POLICY = 10;

export interface Scenario {
  policies: Policy[];
  identities: IdentityLabels[];
  endpoints: Array<{ labels: Labels }>;
}

function endpointLabels(i: number): Record<string, string> {
  return { app: `app-${i % 200}`, tier: `t${i % 5}`, version: `v${i % 3}`, 'io.kubernetes.pod.namespace': `ns${i % NAMESPACES}` };
}

function rule(k: number): unknown {
  const ingress: unknown[] = [
    {
      fromEndpoints: [{ matchLabels: k % 2 ? { tier: `t${(k + 1) % 5}` } : { app: `app-${k % 200}` } }],
      toPorts: [{ ports: [{ port: String(8000 + (k % 50)), protocol: 'TCP' }] }],
    },
  ];
  if (k % 7 === 0) ingress.push({ fromEntities: ['world'], toPorts: [{ ports: [{ port: '443', protocol: 'TCP' }] }] });
  const spec: Record<string, unknown> = { endpointSelector: { matchLabels: { tier: `t${k % 5}` } }, ingress };
  if (k % 5 === 0) spec.egress = [{ toCIDRSet: [{ cidr: `10.${k % 256}.0.0/16`, except: [`10.${k % 256}.1.0/24`] }] }, { toEntities: ['cluster'] }];
  if (k % 11 === 0) spec.ingressDeny = [{ fromEndpoints: [{ matchExpressions: [{ key: 'version', operator: 'In', values: ['v2'] }] }] }];
  return spec;
}

export function scaleScenario(rules = 1000, identityCount = 10_000, endpointCount = 100): Scenario {
  const documents = [];
  for (let p = 0; p * RULES_PER_POLICY < rules; p++) {
    const specs = [];
    for (let k = p * RULES_PER_POLICY; k < Math.min(rules, (p + 1) * RULES_PER_POLICY); k++) specs.push(rule(k));
    documents.push({ apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: `p${p}`, namespace: `ns${p % NAMESPACES}` }, specs });
  }
  const policies = parsePolicyFiles([{ file: 'scale.json', text: JSON.stringify(documents) }]);
  const endpointIdentities = Array.from({ length: identityCount }, (_, i) => ({ id: ENDPOINT_IDENTITY_MIN + i, labels: endpointLabels(i) }));
  const identities = [...reservedIdentities(), ...endpointIdentities, ...cidrIdentities(referencedCidrs(policies))];
  const step = Math.max(1, Math.floor(identityCount / endpointCount));
  const endpoints = Array.from({ length: endpointCount }, (_, i) => ({ labels: endpointLabels(i * step + (i % 7)) }));
  return { policies, identities, endpoints };
}
