/**
 * Policy trace: would a connection from a source to a destination port be
 * allowed, and by which rule? The source's egress and the destination's
 * ingress are looked up in the resolved entries with the datapath's own
 * lookup (lookup.ts), so trace and datapath cannot disagree. Only endpoint
 * identities have policy: a CIDR, world or reserved side is not checked.
 */
import { invalid, notFound } from '../common/errors.js';
import { ReservedIdentity, isEndpointIdentity } from '../common/identity.js';
import { formatLabels, type Labels } from '../common/labels.js';
import type { Direction, Verdict } from '../common/policy-entry.js';
import { identityForAddress } from './cidr.js';
import { lookupEntries } from './lookup.js';
import type { PolicyResolver } from './resolver.js';
import { formatRuleRef, type RuleRef } from './rule-table.js';

/** A side of the connection: an identity (labels looked up when not given), or an address/prefix mapped to its CIDR identity. */
export type TracePeer = { identity: number; labels?: Labels } | { address: string };

export interface TraceRequest {
  source: TracePeer;
  destination: TracePeer;
  /** IP protocol number (6 TCP, 17 UDP, 132 SCTP, 1 ICMP ...). */
  protocol: number;
  /** Destination port; 0 for protocols without ports. */
  port: number;
}

export interface DirectionTrace {
  direction: Direction;
  /** The identity whose policy was looked up. */
  identity: number;
  verdict: Verdict;
  /** The deciding entry's rule id; 0 for a default. */
  ruleId: number;
  rule: RuleRef | undefined;
  reason: string;
}

export interface TraceResult {
  source: number;
  destination: number;
  /** The source's egress verdict; undefined when the source is not an endpoint (no egress policy). */
  egress: DirectionTrace | undefined;
  /** The destination's ingress verdict; undefined when the destination is not an endpoint. */
  ingress: DirectionTrace | undefined;
  verdict: Verdict;
  /** Human-readable, one step per line. */
  lines: string[];
}

interface Side {
  identity: number;
  labels: Labels | undefined;
}

export function tracePolicy(resolver: PolicyResolver, request: TraceRequest): TraceResult {
  if (!Number.isInteger(request.protocol) || request.protocol < 0 || request.protocol > 255)
    throw invalid(`protocol ${request.protocol} is not an IP protocol number (0-255)`);
  if (!Number.isInteger(request.port) || request.port < 0 || request.port > 65535)
    throw invalid(`port ${request.port} is out of range 0-65535`);
  const source = sideOf(resolver, request.source, 'source');
  const destination = sideOf(resolver, request.destination, 'destination');
  const egress = decide(resolver, 'egress', source, destination.identity, request);
  const ingress = decide(resolver, 'ingress', destination, source.identity, request);
  const verdicts = [egress?.verdict, ingress?.verdict];
  const verdict: Verdict = verdicts.includes('deny') ? 'deny' : verdicts.includes('redirect') ? 'redirect' : 'allow';
  const lines = [
    `source: ${describeSide(source)}`,
    `destination: ${describeSide(destination)}, protocol ${request.protocol} port ${request.port}`,
    egress ? `egress of the source: ${egress.verdict} (${egress.reason})` : 'egress of the source: not checked (not an endpoint: no egress policy)',
    ingress
      ? `ingress of the destination: ${ingress.verdict} (${ingress.reason})`
      : 'ingress of the destination: not checked (not an endpoint: no ingress policy)',
    `verdict: ${verdict}`,
  ];
  return { source: source.identity, destination: destination.identity, egress, ingress, verdict, lines };
}

function sideOf(resolver: PolicyResolver, peer: TracePeer, what: string): Side {
  const identity = 'address' in peer ? identityForAddress(resolver.identities, peer.address) : peer.identity;
  const labels = ('labels' in peer ? peer.labels : undefined) ?? resolver.labelsOf(identity);
  if (labels === undefined && isEndpointIdentity(identity))
    throw notFound(`${what} identity ${identity} is not known: give its labels or an identity that exists`);
  return { identity, labels };
}

function decide(resolver: PolicyResolver, direction: Direction, local: Side, peer: number, request: TraceRequest): DirectionTrace | undefined {
  if (!isEndpointIdentity(local.identity) || local.labels === undefined) return undefined;
  const whose = direction === 'egress' ? 'source' : 'destination';
  const resolution = resolver.resolve({ labels: local.labels });
  const { verdict, entry } = lookupEntries(resolution.entries, direction, peer, request.protocol, request.port);
  const enforcedBy = resolution.enforcedBy[direction];
  const rule = entry && entry.ruleId !== 0 ? resolver.rules.ref(entry.ruleId) : undefined;
  let reason: string;
  if (enforcedBy.length === 0) reason = `no rule selects the ${whose}: default allow`;
  else if (!entry) reason = `selected by ${enforcedBy.join(', ')} for ${direction}, no rule allows this: default deny`;
  else {
    const how = { allow: 'allowed', deny: 'denied', redirect: 'allowed through the L7 proxy (HTTP rules)' }[verdict];
    reason = `${how} by ${rule ? formatRuleRef(rule) : `rule ${entry.ruleId}`}`;
  }
  return { direction, identity: local.identity, verdict, ruleId: entry?.ruleId ?? 0, rule, reason };
}

function describeSide(side: Side): string {
  const reserved = Object.entries(ReservedIdentity).find(([, id]) => id === side.identity)?.[0];
  const what = reserved ?? (side.labels ? formatLabels(side.labels) : 'no labels');
  return `identity ${side.identity} (${what})`;
}
