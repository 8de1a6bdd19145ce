/**
 * A service as users write it, and the checks that turn it into a valid
 * configuration: frontend "ADDRESS:PORT/PROTOCOL" (IPv6 in brackets,
 * "[fd10:96::a]:80/TCP"; the protocol is TCP or UDP in any case, TCP when
 * left out), backends "ADDRESS:PORT" of the frontend's family and protocol,
 * a type, a mode and client-IP affinity. Every failure is one
 * invalid-argument line naming the value. Pure: no I/O.
 */
import { invalid } from '../common/errors.js';
import { formatHostPort, formatIP, formatPrefix, parseIP, prefixContains, type Family, type Prefix } from '../common/ip.js';
import type { BackendState, Frontend, LbMode, LbProtocol, ServiceType } from '../common/lb.js';

/** What a user asks for (API body, CLI flags): strings, checked by validateService. */
export interface ServiceSpec {
  frontend: string;
  /** "ADDRESS:PORT"; none is valid: the service then refuses connections. */
  backends?: readonly string[];
  /** ClusterIP (default), NodePort or ExternalIP, in any case. */
  type?: string;
  /** snat (default) or dsr (NodePort and ExternalIP only). */
  mode?: string;
  /** none (default) or client-ip. */
  affinity?: string;
  /** "90s", "10m", "3h", "1h30m" or seconds; client-ip only; 3h when left out. */
  affinityTimeout?: string | number;
  /** Required for NodePort, refused otherwise: 1-65535 (Kubernetes uses 30000-32767). */
  nodePort?: number;
}

/** Changes to an existing service: `backends` replaces the set; or add and remove some. */
export interface ServiceChanges {
  backends?: readonly string[];
  addBackends?: readonly string[];
  removeBackends?: readonly string[];
  affinity?: string;
  affinityTimeout?: string | number;
  mode?: string;
}

export type Affinity = 'none' | 'client-ip';

export interface BackendAddress {
  /** Canonical text: "10.200.1.5", "fd10:200::5". */
  address: string;
  port: number;
}

/** A validated service, before the manager gives it ids. */
export interface ServiceConfig {
  frontend: Frontend;
  family: Family;
  type: ServiceType;
  mode: LbMode;
  /** 0: no affinity. */
  affinityTimeoutSec: number;
  nodePort?: number;
  backends: BackendAddress[];
}

/** A validated update: the new backend set (when given) or additions and removals. */
export interface ValidChanges {
  backends?: BackendAddress[];
  addBackends: BackendAddress[];
  removeBackends: BackendAddress[];
  mode: LbMode;
  affinityTimeoutSec: number;
}

export interface ServiceBackendView {
  address: string;
  port: number;
  state: BackendState;
  /** New connections the datapath sent to this backend (from every service using it). */
  connections: number;
}

/** A service as the API and CLI show it. */
export interface ServiceView {
  id: number;
  /** "10.96.0.10:80/TCP" */
  frontend: string;
  type: ServiceType;
  mode: LbMode;
  affinity: Affinity;
  /** 0 without affinity. */
  affinityTimeoutSec: number;
  nodePort?: number;
  /** Type HostPort: named after the endpoint whose port map it is ("endpoint-3"). */
  name?: string;
  /** Type HostPort: the owning endpoint; delete the endpoint to remove it. */
  endpoint?: number;
  /** Backends that get new connections; 0: the service refuses them. */
  activeBackends: number;
  backends: ServiceBackendView[];
}

/** Kubernetes' default for ClientIP affinity (10800 s) and its maximum (one day). */
export const DEFAULT_AFFINITY_TIMEOUT_SEC = 3 * 3600;
export const MAX_AFFINITY_TIMEOUT_SEC = 24 * 3600;

/** Checks everything about `spec` that needs no other service. */
export function validateService(spec: ServiceSpec, podRanges: readonly Prefix[]): ServiceConfig {
  const { frontend, family } = parseFrontend(spec.frontend);
  checkServiceAddress(frontend.address, family, podRanges);
  const type = parseServiceType(spec.type ?? 'ClusterIP');
  const mode = parseMode(spec.mode ?? 'snat');
  checkModeFits(mode, type);
  const affinityTimeoutSec = parseAffinity(spec.affinity, spec.affinityTimeout, 0);
  if (type === 'NodePort') {
    if (spec.nodePort === undefined) throw invalid('type NodePort needs a node port (1-65535; Kubernetes uses 30000-32767)');
    checkPort(spec.nodePort, `node port ${spec.nodePort}`);
  } else if (spec.nodePort !== undefined) {
    throw invalid(`node port ${spec.nodePort} is only for type NodePort, not ${type}`);
  }
  const backends = parseBackendList(spec.backends ?? [], frontend, family);
  return { frontend, family, type, mode, affinityTimeoutSec, ...(type === 'NodePort' ? { nodePort: spec.nodePort! } : {}), backends };
}

/** Checks `changes` against the service they change (its frontend, type and current settings). */
export function validateChanges(
  current: { frontend: Frontend; type: ServiceType; mode: LbMode; affinityTimeoutSec: number },
  changes: ServiceChanges,
): ValidChanges {
  const given = Object.entries(changes).filter(([, v]) => v !== undefined).map(([k]) => k);
  if (given.length === 0) throw invalid('an update needs at least one change: backends, addBackends, removeBackends, affinity, affinityTimeout or mode');
  if (changes.backends !== undefined && (changes.addBackends !== undefined || changes.removeBackends !== undefined))
    throw invalid('give the whole backend set (backends) or backends to add and remove, not both');
  const family = parseIP(current.frontend.address).family;
  const list = (texts: readonly string[] | undefined) => parseBackendList(texts ?? [], current.frontend, family);
  const addBackends = list(changes.addBackends);
  const removeBackends = list(changes.removeBackends);
  for (const b of addBackends)
    if (removeBackends.some((r) => r.address === b.address && r.port === b.port))
      throw invalid(`backend ${formatHostPort(b.address, b.port)} is both added and removed`);
  const mode = changes.mode === undefined ? current.mode : parseMode(changes.mode);
  checkModeFits(mode, current.type);
  // A timeout alone keeps client-ip on; "client-ip" alone keeps the current timeout.
  const affinity = changes.affinity ?? (changes.affinityTimeout === undefined ? undefined : current.affinityTimeoutSec > 0 ? 'client-ip' : 'none');
  const affinityTimeoutSec = affinity === undefined ? current.affinityTimeoutSec : parseAffinity(affinity, changes.affinityTimeout, current.affinityTimeoutSec);
  return { ...(changes.backends !== undefined ? { backends: list(changes.backends) } : {}), addBackends, removeBackends, mode, affinityTimeoutSec };
}

/** "10.96.0.10:80/TCP", "[fd10:96::a]:53/udp", "10.96.0.10:80" (TCP). */
export function parseFrontend(text: string): { frontend: Frontend; family: Family } {
  const slash = text.lastIndexOf('/');
  const hostPort = slash < 0 ? text : text.slice(0, slash);
  const protocol = slash < 0 ? 'TCP' : parseProtocol(text.slice(slash + 1), text);
  const { address, port, family } = parseHostPort(hostPort, `frontend "${text}"`);
  return { frontend: { address, port, protocol }, family };
}

export function formatFrontend(f: Frontend): string {
  return `${formatHostPort(f.address, f.port)}/${f.protocol}`;
}

/** The node-wide name of a backend, also its Maglev key: "10.200.1.5:8080/TCP". */
export function backendKey(address: string, port: number, protocol: LbProtocol): string {
  return `${formatHostPort(address, port)}/${protocol}`;
}

/** "90s", "10m", "3h", "1h30m", "45" (seconds) or a number of seconds. */
export function parseDuration(value: string | number, what: string): number {
  let seconds: number;
  if (typeof value === 'number') {
    seconds = value;
  } else {
    const m = /^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/.exec(value.trim());
    if (/^\d+$/.test(value.trim())) seconds = Number(value.trim());
    else if (m && value.trim() !== '') seconds = Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
    else throw invalid(`${what} "${value}" is not a duration such as 90s, 10m or 3h`);
  }
  if (!Number.isInteger(seconds) || seconds < 1) throw invalid(`${what} ${JSON.stringify(value)} must be a whole number of seconds, at least 1s`);
  return seconds;
}

function parseAffinity(affinity: string | undefined, timeout: string | number | undefined, currentSec: number): number {
  const kind = affinity === undefined ? 'none' : parseAffinityKind(affinity);
  if (kind === 'none') {
    if (timeout !== undefined) throw invalid(`affinity timeout ${JSON.stringify(timeout)} needs affinity client-ip`);
    return 0;
  }
  if (timeout === undefined) return currentSec > 0 ? currentSec : DEFAULT_AFFINITY_TIMEOUT_SEC;
  const sec = parseDuration(timeout, 'affinity timeout');
  if (sec > MAX_AFFINITY_TIMEOUT_SEC) throw invalid(`affinity timeout ${JSON.stringify(timeout)} is longer than 24h (${MAX_AFFINITY_TIMEOUT_SEC}s)`);
  return sec;
}

function parseAffinityKind(text: string): Affinity {
  const t = text.toLowerCase();
  if (t === 'none') return 'none';
  if (t === 'client-ip' || t === 'clientip') return 'client-ip';
  throw invalid(`unknown affinity "${text}": use none or client-ip`);
}

function parseServiceType(text: string): ServiceType {
  const types: ServiceType[] = ['ClusterIP', 'NodePort', 'ExternalIP'];
  const t = types.find((x) => x.toLowerCase() === text.toLowerCase());
  if (!t) throw invalid(`unknown service type "${text}": use ClusterIP, NodePort or ExternalIP`);
  return t;
}

function parseMode(text: string): LbMode {
  const t = text.toLowerCase();
  if (t === 'snat' || t === 'dsr') return t;
  throw invalid(`unknown mode "${text}": use snat or dsr`);
}

function checkModeFits(mode: LbMode, type: ServiceType): void {
  // DSR lets a backend answer a remote client directly; a ClusterIP is reached
  // from this node only, where replies pass the node anyway.
  if (mode === 'dsr' && type === 'ClusterIP') throw invalid('mode dsr is for NodePort and ExternalIP services; a ClusterIP service uses snat');
}

function parseProtocol(text: string, whole: string): LbProtocol {
  const t = text.toUpperCase();
  if (t === 'TCP' || t === 'UDP') return t;
  throw invalid(`protocol "${text}" in "${whole}" is not TCP or UDP`);
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid(`${what} is not a port (1-65535)`);
}

/** "10.200.1.5:8080" or "[fd10:200::5]:8080": canonical address, port, family. */
function parseHostPort(text: string, what: string): { address: string; port: number; family: Family } {
  let host: string;
  let portText: string;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close < 0 || text[close + 1] !== ':') throw invalid(`${what} is not [IPv6]:PORT`);
    host = text.slice(1, close);
    portText = text.slice(close + 2);
  } else {
    const colon = text.lastIndexOf(':');
    if (colon < 0) throw invalid(`${what} has no port: write ADDRESS:PORT`);
    host = text.slice(0, colon);
    portText = text.slice(colon + 1);
    if (host.includes(':')) throw invalid(`${what}: write an IPv6 address in brackets, as [ADDRESS]:PORT`);
  }
  let parsed;
  try {
    parsed = parseIP(host);
  } catch {
    throw invalid(`${what}: "${host}" is not an IPv4 or IPv6 address`);
  }
  if (!/^\d{1,5}$/.test(portText)) throw invalid(`${what}: port "${portText}" is not a number 1-65535`);
  checkPort(Number(portText), `${what}: port ${portText}`);
  return { address: formatIP(parsed.bytes), port: Number(portText), family: parsed.family };
}

/** Addresses no traffic is sent to: they can be neither a frontend nor a backend. */
function unusableKind(bytes: Uint8Array, family: Family): string | undefined {
  if (family === 4) {
    if (bytes[0] === 0) return 'unspecified (0.0.0.0/8)';
    if (bytes[0] === 127) return 'loopback';
    if (bytes[0]! >= 224 && bytes[0]! <= 239) return 'multicast';
    if (bytes.every((b) => b === 255)) return 'broadcast';
    return undefined;
  }
  if (bytes.every((b) => b === 0)) return 'unspecified';
  if (bytes.slice(0, 15).every((b) => b === 0) && bytes[15] === 1) return 'loopback';
  if (bytes[0] === 0xff) return 'multicast';
  if (bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff) return 'an IPv4-mapped address (write the IPv4 address)';
  return undefined;
}

function checkServiceAddress(address: string, family: Family, podRanges: readonly Prefix[]): void {
  const bytes = parseIP(address).bytes;
  const kind = unusableKind(bytes, family);
  if (kind) throw invalid(`frontend address ${address} is ${kind}: a service needs a unicast address`);
  for (const range of podRanges) {
    if (prefixContains(range, bytes))
      throw invalid(`frontend address ${address} is inside the node's pod range ${formatPrefix(range)}: use a service range such as 10.96.0.0/16`);
  }
}

function parseBackendList(texts: readonly string[], frontend: Frontend, family: Family): BackendAddress[] {
  const out: BackendAddress[] = [];
  const seen = new Set<string>();
  for (const text of texts) {
    const b = parseBackend(text, frontend, family);
    const key = formatHostPort(b.address, b.port);
    if (seen.has(key)) throw invalid(`backend ${key} is listed twice`);
    seen.add(key);
    out.push(b);
  }
  return out;
}

/** "ADDRESS:PORT", or "ADDRESS:PORT/PROTO" when PROTO is the frontend's. */
function parseBackend(text: string, frontend: Frontend, family: Family): BackendAddress {
  const slash = text.lastIndexOf('/');
  if (slash >= 0) {
    const protocol = parseProtocol(text.slice(slash + 1), text);
    if (protocol !== frontend.protocol) throw invalid(`backend "${text}" is ${protocol} but the frontend is ${frontend.protocol}`);
    text = text.slice(0, slash);
  }
  const { address, port, family: backendFamily } = parseHostPort(text, `backend "${text}"`);
  if (backendFamily !== family)
    throw invalid(`backend ${formatHostPort(address, port)} is IPv${backendFamily} but the frontend ${frontend.address} is IPv${family}`);
  const kind = unusableKind(parseIP(address).bytes, family);
  if (kind) throw invalid(`backend address ${address} is ${kind}: a backend needs a unicast address`);
  return { address, port };
}
