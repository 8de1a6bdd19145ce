/**
 * Datapath events as users see them: the raw ring-buffer record (struct
 * tnd_event) decoded into names and addresses, and printed one per line.
 */
import { TndEvent, tndDropReasonNames, tndObsPointNames, tndCtStateNames } from '../bpf/generated/wire.js';
import { formatKeyAddress, ntohs, protocolName } from '../common/wire-values.js';

export type EventType = 'trace' | 'drop';

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
  const type: EventType = raw.type === 2 ? 'drop' : 'trace';
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
    ev.reason = humanize(tndDropReasonNames[raw.reason], /^DROP_/, ' ') ?? `reason ${raw.reason}`;
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

/** One human line per event, as `tendril monitor` prints it. */
export function formatEvent(ev: MonitorEvent): string {
  const time = ev.time.slice(11, 23);
  const head = ev.type === 'drop' ? `DROP (${ev.reason})` : `TRACE ${ev.observationPoint}`;
  const flow = ev.source
    ? `${endpointText(ev.source, ev.sourcePort)} -> ${endpointText(ev.destination, ev.destinationPort)} ${ev.protocol}${ev.tcpFlags ? ` ${ev.tcpFlags}` : ''}`
    : `${ev.length} bytes, not IP`;
  const where = `ep ${ev.endpoint} if ${ev.ifindex}${ev.targetIfindex ? ` => if ${ev.targetIfindex}` : ''}`;
  return `${time} ${head} ${where}: ${flow}${ev.ctState ? ` [${ev.ctState}]` : ''}`;
}
