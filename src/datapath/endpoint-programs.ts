/**
 * One endpoint's programs: lxc.o loaded with the endpoint's constants and
 * attached to its host-side veth as tc clsact filters (ingress: from the pod,
 * egress: to the pod). The filters belong to the device, so the programs
 * outlive the agent and go away with the device.
 */
import { BpfObject, attachTc, bpfObjectPath, queryTc } from '../bpf/index.js';
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

/** An endpoint's programs, loaded and verified but not attached yet. */
export class LoadedEndpointPrograms implements Disposable {
  constructor(private readonly obj: BpfObject) {}

  program(name: 'from_container' | 'to_container') {
    return this.obj.program(name);
  }

  close(): void {
    this.obj.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

/** Loads lxc.o specialised for one endpoint, sharing the node's maps (the LB maps included). */
export function loadEndpointPrograms(maps: NodeMaps, spec: EndpointDatapathSpec): LoadedEndpointPrograms {
  const lb = maps.lb();
  const reuse = {
    ...Object.fromEntries(NODE_MAPS.map((name) => [name, maps.raw.get(name)!])),
    ...Object.fromEntries(LXC_LB_MAPS.map((name) => [name, lb.raw.get(name)!])),
  };
  const obj = BpfObject.open(bpfObjectPath('lxc.o'), {
    constants: { CONFIG: TndLxcConfig.encode(endpointConfig(spec, lb.maglevSize)) },
    valueSizes: { tnd_lb_maglev: lb.maglevSize * 4 },
    reuseMaps: reuse,
  });
  try {
    obj.load();
  } catch (err) {
    obj.close();
    throw err;
  }
  return new LoadedEndpointPrograms(obj);
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
