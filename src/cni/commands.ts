/**
 * The CNI commands as the agent runs them (POST /v1/cni): ADD, DEL, CHECK,
 * VERSION, GC and STATUS, given the plugin's environment and stdin, answered
 * with the plugin's exit code and what it prints. The agent's endpoints are
 * the only state: an attachment is an endpoint created for (network name,
 * container id, interface name), so a DEL or GC after any failure finds
 * whatever an ADD made.
 */
import {
  CniCode,
  CniError,
  buildResult,
  endpointLabels,
  formatError,
  formatResult,
  formatVersionInfo,
  fromAgentError,
  parseEnv,
  parseNetConf,
  requestedVersion,
  type Attachment,
  type CniResult,
  type EndpointNetworking,
  type PortMapping,
} from './protocol.js';
import type { Labels } from '../common/labels.js';

/** An attachment's key, the spec's "(network name, CNI_CONTAINERID, CNI_IFNAME)". */
export interface AttachmentKey {
  network: string;
  containerId: string;
  ifname: string;
}

/** What the commands need from the agent. */
export interface CniBackend {
  /** Creates the endpoint of an attachment (all or nothing). */
  add(key: AttachmentKey, request: { netns: string; labels: Labels; portMappings: PortMapping[] }): Promise<EndpointNetworking>;
  find(key: AttachmentKey): Promise<EndpointNetworking | undefined>;
  /** Removes the attachment's endpoint and releases its addresses; false when there was none. */
  remove(key: AttachmentKey): Promise<boolean>;
  /** The attachments of one network. */
  attachments(network: string): Promise<Attachment[]>;
  /** What is wrong with the container's side of an endpoint (interface, addresses, routes), or null. */
  verify(ep: EndpointNetworking): Promise<string | null>;
  /** Null when the agent takes ADDs, else why not. */
  unavailable(): string | null;
}

export interface CniAnswer {
  exitCode: number;
  /** The JSON the plugin prints, or null for nothing. */
  output: unknown;
}

export async function runCni(backend: CniBackend, env: Record<string, string | undefined>, stdin: string): Promise<CniAnswer> {
  const version = requestedVersion(stdin);
  try {
    const e = parseEnv(env);
    if (e.command === 'VERSION') return { exitCode: 0, output: formatVersionInfo(version) };
    const conf = parseNetConf(stdin, e.command);
    const key = { network: conf.name, containerId: e.containerId, ifname: e.ifname };
    switch (e.command) {
      case 'ADD': {
        if (await backend.find(key)) throw new CniError(CniCode.invalidConfig, `container ${e.containerId} already has ${e.ifname} on network ${conf.name}: DEL it first`);
        const ep = await backend.add(key, { netns: e.netns, labels: endpointLabels(e, conf), portMappings: conf.portMappings }).catch((err) => {
          throw fromAgentError(err);
        });
        return { exitCode: 0, output: formatResult(conf.cniVersion, buildResult(conf.prevResult, ep)) };
      }
      case 'DEL':
        // Idempotent: an unknown container, or a second DEL, is a success.
        await backend.remove(key).catch((err) => {
          throw fromAgentError(err);
        });
        return { exitCode: 0, output: null };
      case 'CHECK':
        await check(backend, key, e.netns, conf.prevResult!);
        return { exitCode: 0, output: null };
      case 'GC':
        await collect(backend, conf.name, conf.validAttachments ?? []);
        return { exitCode: 0, output: null };
      case 'STATUS': {
        const why = backend.unavailable();
        if (why) throw new CniError(CniCode.notAvailable, why);
        return { exitCode: 0, output: null };
      }
    }
  } catch (err) {
    const cniErr = err instanceof CniError ? err : new CniError(CniCode.ioFailure, (err as Error).message ?? String(err));
    return { exitCode: 1, output: formatError(version, cniErr) };
  }
}

async function check(backend: CniBackend, key: AttachmentKey, netns: string, prev: CniResult): Promise<void> {
  const ep = await backend.find(key);
  if (!ep) throw new CniError(CniCode.unknownContainer, `container ${key.containerId} has no ${key.ifname} on network ${key.network}`);
  if (ep.netns !== netns) throw new CniError(CniCode.checkFailed, `${key.ifname} of container ${key.containerId} is in ${ep.netns}, not ${netns}`);
  // What the ADD reported for this interface must still be true.
  const index = (prev.interfaces ?? []).findIndex((i) => i.name === ep.ifname && i.sandbox === ep.netns);
  if (index < 0) throw new CniError(CniCode.checkFailed, `prevResult does not list ${ep.ifname} in ${ep.netns}`);
  if (prev.interfaces![index]!.mac && prev.interfaces![index]!.mac !== ep.mac)
    throw new CniError(CniCode.checkFailed, `${ep.ifname} has MAC ${ep.mac}, prevResult says ${prev.interfaces![index]!.mac}`);
  const ours = new Set([ep.ipv4 && `${ep.ipv4}/32`, ep.ipv6 && `${ep.ipv6}/128`].filter(Boolean));
  for (const ip of prev.ips ?? []) {
    if (ip.interface === index && !ours.has(ip.address)) throw new CniError(CniCode.checkFailed, `${ep.ifname} no longer has ${ip.address}`);
  }
  const problem = await backend.verify(ep);
  if (problem) throw new CniError(CniCode.checkFailed, problem);
}

/** GC: every attachment of the network the runtime no longer lists goes. */
async function collect(backend: CniBackend, network: string, valid: Attachment[]): Promise<void> {
  const keep = new Set(valid.map((a) => `${a.containerId}\0${a.ifname}`));
  for (const a of await backend.attachments(network)) {
    if (!keep.has(`${a.containerId}\0${a.ifname}`)) await backend.remove({ network, ...a });
  }
}
