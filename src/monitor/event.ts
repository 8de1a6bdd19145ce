/**
 * Datapath events as users see them: the raw ring-buffer record (struct
 * tnd_event) decoded into names and addresses, and printed one per line.
 */
import { TndDropReason, TndEvent, TndEventType, TndPolicyDir, TndPolicyVerdict, tndDropReasonNames, tndObsPointNames, tndCtStateNames } from '../bpf/generated/wire.js';
import { formatKeyAddress, ntohs, protocolName } from '../common/wire-values.js';
import { formatL7Event } from './l7-event.js';

export type EventType = 'trace' | 'drop' | 'policy' | 'l7';
export const EVENT_TYPE_NAMES: readonly EventType[] = ['drop', 'trace', 'policy', 'l7'];

export interface MonitorEvent {
  time: string;
  type: EventType;
  observationPoint: string;
  reason?: string;
  reasonCode?: number;
  endpoint: number;
  ifindex: number;
  targetIfindex?: number;
  length: number;
  family?: 'ipv4' | 'ipv6';
  protocol?: string;
  source?: string;
  sourcePort?: number;
  destination?: string;
  destinationPort?: number;
  tcpFlags?: string;
  ctState?: string;
  /** Policy events, and drops by policy: the verdict and what it was about. */
  verdict?: 'allow' | 'deny' | 'redirect';
  direction?: 'ingress' | 'egress';
  ruleId?: number;
  /** The rule's text or name, filled in by the agent from ruleId. */
  rule?: string;
  sourceIdentity?: number;
  destinationIdentity?: number;
  /** L7 events (l7-event.ts): both endpoints (0 = not local) and the request. */
  sourceEndpoint?: number;
  destinationEndpoint?: number;
  http?: { method: string; path: string; host?: string; status: number; latencyMs: number };
}

const EVENT_TYPES: Record<number, EventType> = {
  [TndEventType.TND_EVENT_TRACE]: 'trace',
  [TndEventType.TND_EVENT_DROP]: 'drop',
  [TndEventType.TND_EVENT_POLICY]: 'policy',
};

const VERDICTS: Record<number, 'allow' | 'deny' | 'redirect'> = {
  [TndPolicyVerdict.TND_POLICY_ALLOW]: 'allow',
  [TndPolicyVerdict.TND_POLICY_DENY]: 'deny',
  [TndPolicyVerdict.TND_POLICY_REDIRECT]: 'redirect',
};

/**
 * Drop reasons whose enum name says too little to a user; the others read as
 * their name ("DROP_POLICY_DENIED" -> "policy denied").
 */
const DROP_REASON_TEXT: Record<number, string> = {
  [TndDropReason.DROP_PROXY_UNAVAILABLE]: 'L7 proxy not running',
  [TndDropReason.DROP_PROXY_NO_SOCKET]: 'L7 flow without proxy connection',
  [TndDropReason.DROP_PROXY_UNSUPPORTED]: 'L7 redirect not possible on this path',
  [TndDropReason.DROP_PROXY_WITHDRAWN]: 'L7 redirect withdrawn from a proxied flow',
  [TndDropReason.DROP_NAT_FAILED]: 'load-balancing translation failed',
  [TndDropReason.DROP_NO_SERVICE_BACKEND]: 'service has no backend (refused)',
  [TndDropReason.DROP_NAT_NO_PORT]: 'no free SNAT port',
  [TndDropReason.DROP_DSR_INVALID]: 'malformed DSR option',
};

/** What a drop reason code reads as in events and `tendril monitor`. */
export function dropReasonText(code: number): string {
  return DROP_REASON_TEXT[code] ?? humanize(tndDropReasonNames[code], /^DROP_/, ' ') ?? `reason ${code}`;
}

const TCP_FLAGS = ['FIN', 'SYN', 'RST', 'PSH', 'ACK', 'URG', 'ECE', 'CWR'];

/** "DROP_UNKNOWN_DEST" -> "unknown dest", "TND_OBS_FROM_ENDPOINT" -> "from-endpoint". */
function humanize(name: string | undefined, prefix: RegExp, sep: string): string | undefined {
  return name?.replace(prefix, '').toLowerCase().replace(/_/g, sep);
}

export function tcpFlagNames(flags: number): string {
  return TCP_FLAGS.filter((_, i) => flags & (1 << i)).join('|');
}

/**
 * Decodes one ring-buffer record. `bootOffsetMs` turns the kernel's monotonic
 * timestamp into wall-clock time (Date.now() minus monotonic now).
 */
export function decodeEvent(data: Buffer, bootOffsetMs: number): MonitorEvent {
  const raw = TndEvent.decode(data);
  const type = EVENT_TYPES[raw.type];
  if (!type) throw new RangeError(`unknown event type ${raw.type}`);
  const ev: MonitorEvent = {
    time: new Date(bootOffsetMs + Number(raw.timestampNs / 1000000n)).toISOString(),
    type,
    observationPoint: humanize(tndObsPointNames[raw.obsPoint], /^TND_OBS_/, '-') ?? `point-${raw.obsPoint}`,
    endpoint: raw.endpointId,
    ifindex: raw.ifindex,
    length: raw.pktLen,
  };
  if (type === 'drop') {
    ev.reasonCode = raw.reason;
    ev.reason = dropReasonText(raw.reason);
  }
  const verdict = VERDICTS[raw.verdict];
  if (verdict) {
    ev.verdict = verdict;
    ev.direction = raw.direction === TndPolicyDir.TND_POLICY_INGRESS ? 'ingress' : 'egress';
    ev.ruleId = raw.ruleId;
    ev.sourceIdentity = raw.srcIdentity;
    ev.destinationIdentity = raw.dstIdentity;
  }
  if (raw.targetIfindex) ev.targetIfindex = raw.targetIfindex;
  if (raw.family === 2 || raw.family === 10) {
    ev.family = raw.family === 2 ? 'ipv4' : 'ipv6';
    ev.protocol = protocolName(raw.proto);
    ev.source = formatKeyAddress(raw.saddr, raw.family);
    ev.destination = formatKeyAddress(raw.daddr, raw.family);
    if (raw.proto === 6 || raw.proto === 17 || raw.proto === 132) {
      ev.sourcePort = ntohs(raw.sport);
      ev.destinationPort = ntohs(raw.dport);
    }
    if (raw.proto === 6) ev.tcpFlags = tcpFlagNames(raw.tcpFlags);
    if (type === 'trace' && (raw.obsPoint === 1 || raw.obsPoint === 2)) ev.ctState = humanize(tndCtStateNames[raw.ctState], /^TND_CT_/, '-');
  }
  return ev;
}

function endpointText(addr: string | undefined, port: number | undefined): string {
  if (!addr) return '?';
  if (port === undefined) return addr;
  return addr.includes(':') ? `[${addr}]:${port}` : `${addr}:${port}`;
}

/** `identity 256 -> 257, rule 5 "allow-web"` of a policy event or a policy drop. */
function verdictText(ev: MonitorEvent): string {
  const rule = ev.ruleId ? `rule ${ev.ruleId}${ev.rule ? ` "${ev.rule}"` : ''}` : ev.rule ? `rule "${ev.rule}"` : 'no rule';
  return `identity ${ev.sourceIdentity} -> ${ev.destinationIdentity}, ${rule}`;
}

/** One human line per event, as `tendril monitor` prints it. */
export function formatEvent(ev: MonitorEvent): string {
  const time = ev.time.slice(11, 23);
  const flow = ev.source
    ? `${endpointText(ev.source, ev.sourcePort)} -> ${endpointText(ev.destination, ev.destinationPort)} ${ev.protocol}${ev.tcpFlags ? ` ${ev.tcpFlags}` : ''}`
    : `${ev.length} bytes, not IP`;
  if (ev.type === 'l7') return formatL7Event(ev, verdictText(ev));
  if (ev.type === 'policy')
    return `${time} POLICY ${ev.direction} ${ev.verdict?.toUpperCase()} ep ${ev.endpoint} (${verdictText(ev)}): ${flow}`;
  const head = ev.type === 'drop' ? `DROP (${ev.reason})` : `TRACE ${ev.observationPoint}`;
  const where = `ep ${ev.endpoint} if ${ev.ifindex}${ev.targetIfindex ? ` => if ${ev.targetIfindex}` : ''}`;
  const policy = ev.type === 'drop' && ev.verdict ? ` (${ev.direction}, ${verdictText(ev)})` : '';
  return `${time} ${head} ${where}${policy}: ${flow}${ev.ctState ? ` [${ev.ctState}]` : ''}`;
}
