/**
 * HTTP requests the L7 proxy judged, as `tendril monitor --type l7` shows
 * them: one event per request, in the same stream and shape as the
 * datapath's events (type "l7", observation point "proxy"), plus the request.
 */
import type { L7Event } from '../common/l7-policy.js';
import type { MonitorEvent } from './event.js';
import { formatHostPort } from '../common/ip.js';

/** "10.0.0.5:80" / "[fd00::5]:80" -> address and port. */
function splitHostPort(text: string): { address: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(text);
  return m ? { address: m[1]!, port: Number(m[2]) } : { address: text, port: 0 };
}

/**
 * The monitor's view of a proxy event. Its endpoint is the one whose policy
 * judged it: the destination for ingress rules, else the source.
 */
export function l7MonitorEvent(ev: L7Event, ruleName: (id: number) => string | undefined): MonitorEvent {
  const src = splitHostPort(ev.source);
  const dst = splitHostPort(ev.destination);
  const rule = ev.ruleId ? ruleName(ev.ruleId) : undefined;
  return {
    time: new Date(ev.time).toISOString(),
    type: 'l7',
    observationPoint: 'proxy',
    endpoint: ev.dstEndpoint || ev.srcEndpoint,
    ifindex: 0,
    length: 0,
    family: src.address.includes(':') ? 'ipv6' : 'ipv4',
    protocol: 'TCP',
    source: src.address,
    sourcePort: src.port,
    destination: dst.address,
    destinationPort: dst.port,
    verdict: ev.verdict,
    ruleId: ev.ruleId,
    ...(rule ? { rule } : {}),
    sourceIdentity: ev.srcIdentity,
    destinationIdentity: ev.dstIdentity,
    sourceEndpoint: ev.srcEndpoint,
    destinationEndpoint: ev.dstEndpoint,
    http: {
      method: ev.method,
      path: ev.path,
      ...(ev.host !== undefined ? { host: ev.host } : {}),
      status: ev.status,
      latencyMs: ev.latencyMs,
    },
  };
}

/** `12:00:01.123 L7 ALLOW ep 5 (identity 300 -> 301, rule 4 "p ingress[0]"): 10.0.0.2:4000 -> 10.0.0.5:80 POST /v1/x => 200 (0.8 ms)` */
export function formatL7Event(ev: MonitorEvent, verdictText: string): string {
  const h = ev.http!;
  const flow = `${hostPort(ev.source, ev.sourcePort)} -> ${hostPort(ev.destination, ev.destinationPort)}`;
  return `${ev.time.slice(11, 23)} L7 ${ev.verdict?.toUpperCase()} ep ${ev.endpoint} (${verdictText}): ${flow} ${h.method} ${h.path}${h.host ? ` host ${h.host}` : ''} => ${h.status} (${h.latencyMs.toFixed(1)} ms)`;
}

function hostPort(addr: string | undefined, port: number | undefined): string {
  if (!addr) return '?';
  return formatHostPort(addr, port ?? 0);
}
