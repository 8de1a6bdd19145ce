/**
 * The CNI protocol (spec 0.4.0, 1.0.0 and 1.1.0) as the agent answers it:
 * what a runtime hands the plugin (CNI_* environment and the network
 * configuration on stdin) parsed and checked, and what goes back on stdout
 * (a result, a version list or an error object). Pure: no I/O here; the
 * agent's /v1/cni route runs the commands, the tendril-cni binary only
 * carries stdin and the environment to it.
 */
import { normalizeLabels, validateLabel, type Labels } from '../common/labels.js';

export const SUPPORTED_VERSIONS = ['0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];
export type CniCommand = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'GC' | 'STATUS';

/** The spec's well-known error codes (1-99 are the spec's; 100+ the plugin's). */
export const CniCode = {
  incompatibleVersion: 1,
  unsupportedField: 2,
  unknownContainer: 3,
  invalidEnvironment: 4,
  ioFailure: 5,
  decodingFailure: 6,
  invalidConfig: 7,
  tryAgainLater: 11,
  /** 1.1.0 STATUS: the plugin cannot take ADDs now. */
  notAvailable: 50,
  /** The agent refused the request (bad labels, no free address, ...). */
  agentRefused: 100,
  /** CHECK found the container's networking changed. */
  checkFailed: 101,
} as const;

export class CniError extends Error {
  constructor(
    readonly code: number,
    message: string,
    readonly details = '',
  ) {
    super(message);
  }
}

/** What CNI_* says about the call. */
export interface CniEnv {
  command: CniCommand;
  containerId: string;
  netns: string;
  ifname: string;
  /** CNI_ARGS as key -> value ("IgnoreUnknown=1;K8S_POD_NAME=x"). */
  args: Map<string, string>;
}

/** One attachment the runtime still knows (GC's cni.dev/valid-attachments). */
export interface Attachment {
  containerId: string;
  ifname: string;
}

/** The network configuration handed on stdin, the parts Tendril reads. */
export interface NetConf {
  cniVersion: CniVersion;
  name: string;
  /** The previous plugin's result in a chain (ADD), or our own (CHECK, DEL). */
  prevResult?: CniResult;
  /** Labels from the configuration: runtimeConfig.labels and args.cni.labels. */
  labels: Labels;
  /** runtimeConfig.portMappings (capability "portMappings"). */
  portMappings: PortMapping[];
  /** GC only: the attachments to keep. */
  validAttachments?: Attachment[];
}

export interface PortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'TCP' | 'UDP';
}

export interface CniInterface {
  name: string;
  mac?: string;
  mtu?: number;
  sandbox?: string;
}

export interface CniIp {
  address: string;
  gateway?: string;
  interface?: number;
}

export interface CniRoute {
  dst: string;
  gw?: string;
}

export interface CniResult {
  interfaces?: CniInterface[];
  ips?: CniIp[];
  routes?: CniRoute[];
  dns?: Record<string, unknown>;
}

const COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'GC', 'STATUS'];
/** Commands that act on one container and need its identifiers. */
const CONTAINER_COMMANDS: readonly CniCommand[] = ['ADD', 'DEL', 'CHECK'];
const IFNAME = /^[^/:\s]{1,15}$/;
const CONTAINER_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;

/** Reads CNI_* from the plugin's environment; a missing or bad one is error 4. */
export function parseEnv(env: Readonly<Record<string, string | undefined>>): CniEnv {
  const command = env.CNI_COMMAND ?? '';
  if (!COMMANDS.includes(command as CniCommand))
    throw new CniError(CniCode.invalidEnvironment, `CNI_COMMAND "${command}" is not one of ${COMMANDS.join(', ')}`);
  const cmd = command as CniCommand;
  const containerId = env.CNI_CONTAINERID ?? '';
  const netns = env.CNI_NETNS ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  if (CONTAINER_COMMANDS.includes(cmd)) {
    if (!CONTAINER_ID.test(containerId))
      throw new CniError(CniCode.invalidEnvironment, containerId ? `CNI_CONTAINERID "${containerId}" is not a valid container id` : 'CNI_CONTAINERID is missing');
    if (!IFNAME.test(ifname) || ifname === '.' || ifname === '..')
      throw new CniError(CniCode.invalidEnvironment, ifname ? `CNI_IFNAME "${ifname}" is not a valid interface name` : 'CNI_IFNAME is missing');
    // DEL may come after the namespace is gone; ADD and CHECK need it.
    if (cmd !== 'DEL' && !netns) throw new CniError(CniCode.invalidEnvironment, 'CNI_NETNS is missing');
    if (netns && !netns.startsWith('/')) throw new CniError(CniCode.invalidEnvironment, `CNI_NETNS "${netns}" is not an absolute path`);
  }
  return { command: cmd, containerId, netns, ifname, args: parseArgs(env.CNI_ARGS ?? '') };
}

/** CNI_ARGS: "K=V;K2=V2"; the value may itself hold "=" (TENDRIL_LABELS=org=empire,class=x). */
export function parseArgs(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const item of text.split(';')) {
    if (item === '') continue;
    const eq = item.indexOf('=');
    if (eq <= 0) throw new CniError(CniCode.invalidEnvironment, `CNI_ARGS item "${item}" is not KEY=VALUE`);
    out.set(item.slice(0, eq), item.slice(eq + 1));
  }
  return out;
}

/**
 * The labels an ADD gives the endpoint: the configuration's, then CNI_ARGS'
 * (K8S_POD_NAMESPACE, K8S_POD_NAME, TENDRIL_LABELS=k=v,k=v), later ones
 * winning. A bad label is error 7 when it came from the configuration and
 * error 4 when it came from CNI_ARGS.
 */
export function endpointLabels(env: CniEnv, conf: NetConf): Labels {
  const labels: Record<string, string> = { ...conf.labels };
  const fromArgs = (key: string, value: string) => {
    try {
      validateLabel(key, value);
    } catch (err) {
      throw new CniError(CniCode.invalidEnvironment, `CNI_ARGS: ${(err as Error).message}`);
    }
    labels[key] = value;
  };
  const ns = env.args.get('K8S_POD_NAMESPACE');
  const pod = env.args.get('K8S_POD_NAME');
  if (ns) fromArgs('io.kubernetes.pod.namespace', ns);
  if (pod) fromArgs('io.kubernetes.pod.name', pod);
  const extra = env.args.get('TENDRIL_LABELS');
  if (extra) {
    for (const item of extra.split(',')) {
      const eq = item.indexOf('=');
      if (eq <= 0) throw new CniError(CniCode.invalidEnvironment, `CNI_ARGS: TENDRIL_LABELS item "${item}" is not key=value`);
      fromArgs(item.slice(0, eq), item.slice(eq + 1));
    }
  }
  return normalizeLabels(labels);
}

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * The version a configuration asks for, read before anything else so that
 * even an error about the rest speaks that version. Unparsable input: null.
 */
export function requestedVersion(stdin: string): string | null {
  try {
    const v = (JSON.parse(stdin) as Json).cniVersion;
    return typeof v === 'string' ? v : null;
  } catch {
    return null;
  }
}

/** Parses and checks the configuration on stdin (errors 1, 6 and 7). */
export function parseNetConf(stdin: string, command: CniCommand): NetConf {
  let raw: unknown;
  try {
    raw = JSON.parse(stdin);
  } catch (err) {
    throw new CniError(CniCode.decodingFailure, `the network configuration on stdin is not JSON: ${(err as Error).message}`);
  }
  if (!isObject(raw)) throw new CniError(CniCode.decodingFailure, 'the network configuration on stdin must be a JSON object');
  const version = raw.cniVersion;
  if (typeof version !== 'string') throw new CniError(CniCode.invalidConfig, 'cniVersion is missing');
  if (!SUPPORTED_VERSIONS.includes(version as CniVersion))
    throw new CniError(CniCode.incompatibleVersion, `cniVersion ${version} is not supported`, `supported: ${SUPPORTED_VERSIONS.join(', ')}`);
  const cniVersion = version as CniVersion;
  if ((command === 'GC' || command === 'STATUS') && cniVersion !== '1.1.0')
    throw new CniError(CniCode.incompatibleVersion, `${command} needs cniVersion 1.1.0, not ${cniVersion}`);
  if (typeof raw.name !== 'string' || raw.name === '') throw new CniError(CniCode.invalidConfig, 'name must be a non-empty string');
  if (raw.type !== undefined && raw.type !== 'tendril') throw new CniError(CniCode.invalidConfig, `type is "${String(raw.type)}", this plugin is "tendril"`);

  const conf: NetConf = { cniVersion, name: raw.name, labels: {}, portMappings: [] };
  const labels: Record<string, string> = {};
  if (raw.args !== undefined) {
    if (!isObject(raw.args)) throw new CniError(CniCode.invalidConfig, 'args must be an object');
    const cni = raw.args.cni;
    if (cni !== undefined) {
      if (!isObject(cni)) throw new CniError(CniCode.invalidConfig, 'args.cni must be an object');
      if (cni.labels !== undefined) Object.assign(labels, labelList(cni.labels, 'args.cni.labels'));
    }
  }
  if (raw.runtimeConfig !== undefined) {
    if (!isObject(raw.runtimeConfig)) throw new CniError(CniCode.invalidConfig, 'runtimeConfig must be an object');
    const rc = raw.runtimeConfig;
    if (rc.labels !== undefined) Object.assign(labels, labelList(rc.labels, 'runtimeConfig.labels'));
    if (rc.portMappings !== undefined) conf.portMappings = portMappings(rc.portMappings);
  }
  try {
    conf.labels = normalizeLabels(labels);
  } catch (err) {
    throw new CniError(CniCode.invalidConfig, (err as Error).message);
  }
  if (raw.prevResult !== undefined) {
    if (!isObject(raw.prevResult)) throw new CniError(CniCode.invalidConfig, 'prevResult must be an object');
    conf.prevResult = raw.prevResult as CniResult;
  }
  if (command === 'CHECK' && !conf.prevResult) throw new CniError(CniCode.invalidConfig, 'CHECK needs prevResult, the result of the ADD');
  if (command === 'GC') conf.validAttachments = attachments(raw['cni.dev/valid-attachments']);
  return conf;
}

/** Labels as an object {k: v} or as the conventions' list [{key, value}]. */
function labelList(v: unknown, where: string): Record<string, string> {
  const out: Record<string, string> = {};
  const add = (key: unknown, value: unknown) => {
    if (typeof key !== 'string' || typeof value !== 'string') throw new CniError(CniCode.invalidConfig, `${where}: keys and values must be strings`);
    out[key] = value;
  };
  if (Array.isArray(v)) {
    for (const item of v) {
      if (!isObject(item)) throw new CniError(CniCode.invalidConfig, `${where}: each item must be {"key": ..., "value": ...}`);
      add(item.key, item.value);
    }
  } else if (isObject(v)) {
    for (const [k, value] of Object.entries(v)) add(k, value);
  } else {
    throw new CniError(CniCode.invalidConfig, `${where} must be an object or a list of {"key", "value"}`);
  }
  return out;
}

function portMappings(v: unknown): PortMapping[] {
  if (!Array.isArray(v)) throw new CniError(CniCode.invalidConfig, 'runtimeConfig.portMappings must be a list');
  return v.map((m, i) => {
    const where = `runtimeConfig.portMappings[${i}]`;
    if (!isObject(m)) throw new CniError(CniCode.invalidConfig, `${where} must be an object`);
    const port = (x: unknown, name: string) => {
      if (typeof x !== 'number' || !Number.isInteger(x) || x < 1 || x > 65535) throw new CniError(CniCode.invalidConfig, `${where}.${name} must be 1-65535, not ${JSON.stringify(x)}`);
      return x;
    };
    const proto = String(m.protocol ?? 'tcp').toUpperCase();
    if (proto !== 'TCP' && proto !== 'UDP') throw new CniError(CniCode.invalidConfig, `${where}.protocol must be tcp or udp, not ${JSON.stringify(m.protocol)}`);
    return { hostPort: port(m.hostPort, 'hostPort'), containerPort: port(m.containerPort, 'containerPort'), protocol: proto };
  });
}

function attachments(v: unknown): Attachment[] {
  if (v === undefined) return [];
  if (!Array.isArray(v)) throw new CniError(CniCode.invalidConfig, 'cni.dev/valid-attachments must be a list');
  return v.map((a, i) => {
    if (!isObject(a) || typeof a.containerID !== 'string' || typeof a.ifname !== 'string')
      throw new CniError(CniCode.invalidConfig, `cni.dev/valid-attachments[${i}] must be {"containerID": ..., "ifname": ...}`);
    return { containerId: a.containerID, ifname: a.ifname };
  });
}

/** What an endpoint contributes to a result. */
export interface EndpointNetworking {
  ifname: string;
  mac: string;
  netns: string;
  hostIfname: string;
  hostMac: string;
  ipv4?: string;
  ipv6?: string;
  routerIPv4?: string;
  routerIPv6?: string;
}

/**
 * ADD's result: the previous plugin's (in a chain) with this plugin's
 * interfaces, addresses and routes appended, interface indexes pointing at
 * the container's interface. Routes are the default routes via the router.
 */
export function buildResult(prev: CniResult | undefined, ep: EndpointNetworking): CniResult {
  const interfaces = [...(prev?.interfaces ?? [])];
  interfaces.push({ name: ep.hostIfname, mac: ep.hostMac });
  const index = interfaces.push({ name: ep.ifname, mac: ep.mac, sandbox: ep.netns }) - 1;
  const ips = [...(prev?.ips ?? [])];
  const routes = [...(prev?.routes ?? [])];
  if (ep.ipv4) {
    ips.push({ address: `${ep.ipv4}/32`, ...(ep.routerIPv4 ? { gateway: ep.routerIPv4 } : {}), interface: index });
    if (ep.routerIPv4) routes.push({ dst: '0.0.0.0/0', gw: ep.routerIPv4 });
  }
  if (ep.ipv6) {
    ips.push({ address: `${ep.ipv6}/128`, ...(ep.routerIPv6 ? { gateway: ep.routerIPv6 } : {}), interface: index });
    if (ep.routerIPv6) routes.push({ dst: '::/0', gw: ep.routerIPv6 });
  }
  return { interfaces, ips, routes, dns: prev?.dns ?? {} };
}

/** A result as a given version writes it: 0.4.0 names each address's IP version. */
export function formatResult(version: CniVersion, result: CniResult): Json {
  const ips = (result.ips ?? []).map((ip) => (version === '0.4.0' ? { version: ip.address.includes(':') ? '6' : '4', ...ip } : ip));
  return { cniVersion: version, interfaces: result.interfaces ?? [], ips, routes: result.routes ?? [], dns: result.dns ?? {} };
}

export function formatVersionInfo(version: string | null): Json {
  const v = version && SUPPORTED_VERSIONS.includes(version as CniVersion) ? version : SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1];
  return { cniVersion: v, supportedVersions: [...SUPPORTED_VERSIONS] };
}

/** The error object of the spec; cniVersion is the caller's when it could be read. */
export function formatError(version: string | null, err: CniError): Json {
  return { cniVersion: version ?? SUPPORTED_VERSIONS[SUPPORTED_VERSIONS.length - 1], code: err.code, msg: err.message, ...(err.details ? { details: err.details } : {}) };
}

/** A TendrilError from the agent (bad labels, no address left, ...) as a CNI error. */
export function fromAgentError(err: unknown): CniError {
  if (err instanceof CniError) return err;
  return new CniError(CniCode.agentRefused, (err as Error).message ?? String(err));
}
