/**
 * One endpoint's programs: lxc.o loaded with the endpoint's constants and
 * attached to its host-side veth as tc clsact filters (ingress: from the pod,
 * egress: to the pod). The filters belong to the device, so the programs
 * outlive the agent and go away with the device.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { BpfObject, attachTc, bpfObjectPath, queryTc, type BpfProgram } from '../bpf/index.js';
import { TndLxcConfig, TndLxcFlags } from '../bpf/generated/wire.js';
import { parseIP, parseMac } from '../common/ip.js';
import { LXC_LB_MAPS, NODE_MAPS, type NodeMaps } from './node-maps.js';

export interface EndpointDatapathSpec {
  id: number;
  ifindex: number;
  identity: number;
  podMac: string;
  hostMac: string;
  ipv4: string;
  ipv6: string;
  routerIPv4: string;
  routerIPv6: string;
  traceAll?: boolean;
}

const DIRECTIONS = [
  ['ingress', 'from_container'],
  ['egress', 'to_container'],
] as const;

let datapathVersion: string | undefined;

/**
 * The endpoint datapath's version: a hash of lxc.o. A restore keeps an
 * endpoint's attached programs only when they were built from the same
 * object; after an upgrade they are replaced in place, so new datapath code
 * (and a new layout of the node's maps) reaches every endpoint.
 */
export function endpointDatapathVersion(): string {
  datapathVersion ??= createHash('sha256').update(readFileSync(bpfObjectPath('lxc.o'))).digest('hex').slice(0, 16);
  return datapathVersion;
}

/** maglevSize: M of the node's Maglev map (NodeMaps.lb()). */
export function endpointConfig(spec: EndpointDatapathSpec, maglevSize = 0): TndLxcConfig {
  let flags = TndLxcFlags.TND_LXC_IPV4 | TndLxcFlags.TND_LXC_IPV6;
  if (spec.traceAll) flags |= TndLxcFlags.TND_LXC_TRACE_ALL;
  return {
    endpointId: spec.id,
    flags,
    identity: spec.identity,
    mac: Buffer.from(parseMac(spec.podMac)),
    routerMac: Buffer.from(parseMac(spec.hostMac)),
    ip4: Buffer.from(parseIP(spec.ipv4).bytes),
    routerIp4: Buffer.from(parseIP(spec.routerIPv4).bytes),
    ip6: Buffer.from(parseIP(spec.ipv6).bytes),
    routerIp6: Buffer.from(parseIP(spec.routerIPv6).bytes),
    maglevSize,
  };
}

/** The programs of lxc.o an endpoint runs. */
export const ENDPOINT_PROGRAMS = DIRECTIONS.map(([, name]) => name);
type EndpointProgramName = (typeof ENDPOINT_PROGRAMS)[number];

/** An endpoint's programs, loaded and verified but not attached yet. */
export class LoadedEndpointPrograms implements Disposable {
  /** `owner`: the object the programs belong to, closed with them. */
  constructor(
    private readonly programs: Record<string, BpfProgram>,
    private readonly owner?: BpfObject,
  ) {}

  program(name: EndpointProgramName): BpfProgram {
    const p = this.programs[name];
    if (!p) throw new Error(`no program ${name} among the endpoint's programs`);
    return p;
  }

  close(): void {
    for (const p of Object.values(this.programs)) p.close();
    this.owner?.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** What loading lxc.o for one endpoint takes: its constants, and the node's maps it shares (the LB maps included). */
export function endpointLoadRequest(maps: NodeMaps, spec: EndpointDatapathSpec) {
  const lb = maps.lb();
  return {
    objectPath: bpfObjectPath('lxc.o'),
    config: TndLxcConfig.encode(endpointConfig(spec, lb.maglevSize)),
    innerValueSizes: { tnd_lb_maglev: lb.maglevSize * 4 },
    reuseMaps: {
      ...Object.fromEntries(NODE_MAPS.map((name) => [name, maps.raw.get(name)!])),
      ...Object.fromEntries(LXC_LB_MAPS.map((name) => [name, lb.raw.get(name)!])),
    },
  };
}

/** Loads lxc.o specialised for one endpoint on this thread (EndpointProgramLoader does it off the event loop). */
export function loadEndpointPrograms(maps: NodeMaps, spec: EndpointDatapathSpec): LoadedEndpointPrograms {
  const r = endpointLoadRequest(maps, spec);
  const obj = BpfObject.open(r.objectPath, { constants: { CONFIG: r.config }, innerValueSizes: r.innerValueSizes, reuseMaps: r.reuseMaps });
  try {
    obj.load();
  } catch (err) {
    obj.close();
    throw err;
  }
  return new LoadedEndpointPrograms(Object.fromEntries(ENDPOINT_PROGRAMS.map((name) => [name, obj.program(name)])), obj);
}

/**
 * Attaches loaded programs to the endpoint's device as tc clsact filters. An
 * existing filter gets its program replaced in one netlink request (a restart
 * or a datapath upgrade): atomic, no packet sees no program. The filters keep
 * the programs alive, so the caller may close `programs` afterwards, and they
 * stay while no agent runs.
 */
export function attachEndpointPrograms(ifindex: number, programs: LoadedEndpointPrograms): void {
  for (const [direction, name] of DIRECTIONS) attachTc(programs.program(name), ifindex, direction);
}

/** Load and attach in one step, for restores where nothing can overlap. */
export function loadAndAttachEndpointPrograms(maps: NodeMaps, spec: EndpointDatapathSpec): void {
  using programs = loadEndpointPrograms(maps, spec);
  attachEndpointPrograms(spec.ifindex, programs);
}

/** How many of the endpoint's two programs are attached to `ifindex` (asked of the kernel). */
export function countAttachedPrograms(ifindex: number): number {
  return DIRECTIONS.filter(([direction]) => queryTc(ifindex, direction) !== undefined).length;
}

/** Whether both of the endpoint's filters are in place on `ifindex`. */
export function endpointProgramsAttached(ifindex: number): boolean {
  return countAttachedPrograms(ifindex) === DIRECTIONS.length;
}
