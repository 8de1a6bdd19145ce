/**
 * One endpoint's programs: lxc.o loaded with the endpoint's constants, attached
 * to its host-side veth through TCX links (ingress: from the pod, egress: to
 * the pod), and the links pinned so the programs outlive the agent.
 */
import { mkdirSync, rmSync, existsSync } from 'node:fs';
import { BpfLink, BpfObject, attachTcx, bpfObjectPath } from '../bpf/index.js';
import { TndLxcConfig, TndLxcFlags } from '../bpf/generated/wire.js';
import { parseIP, parseMac } from '../common/ip.js';
import { NODE_MAPS, type NodeMaps } from './node-maps.js';

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

export function endpointConfig(spec: EndpointDatapathSpec): TndLxcConfig {
  let flags = TndLxcFlags.TND_LXC_IPV4 | TndLxcFlags.TND_LXC_IPV6;
  if (spec.traceAll) flags |= TndLxcFlags.TND_LXC_TRACE_ALL;
  return {
    endpointId: spec.id,
    ifindex: spec.ifindex,
    flags,
    identity: spec.identity,
    mac: Buffer.from(parseMac(spec.podMac)),
    routerMac: Buffer.from(parseMac(spec.hostMac)),
    ip4: Buffer.from(parseIP(spec.ipv4).bytes),
    routerIp4: Buffer.from(parseIP(spec.routerIPv4).bytes),
    ip6: Buffer.from(parseIP(spec.ipv6).bytes),
    routerIp6: Buffer.from(parseIP(spec.routerIPv6).bytes),
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

/** Loads lxc.o specialised for one endpoint, sharing the node's maps. */
export function loadEndpointPrograms(maps: NodeMaps, spec: EndpointDatapathSpec): LoadedEndpointPrograms {
  const reuse = Object.fromEntries(NODE_MAPS.map((name) => [name, maps.raw.get(name)!]));
  const obj = BpfObject.open(bpfObjectPath('lxc.o'), {
    constants: { CONFIG: TndLxcConfig.encode(endpointConfig(spec)) },
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
 * Attaches loaded programs to the endpoint's device and pins the links. When
 * the links are pinned already (a restart, or a datapath upgrade) they are
 * updated in place: a bpf_link update swaps the program atomically, so no
 * packet sees none. The caller may close `programs` afterwards: the links
 * hold the programs.
 */
export function attachEndpointPrograms(maps: NodeMaps, id: number, ifindex: number, programs: LoadedEndpointPrograms): void {
  mkdirSync(maps.paths.endpointDir(id), { recursive: true });
  for (const [direction, name] of DIRECTIONS) {
    const pin = maps.paths.endpointLink(id, direction);
    const prog = programs.program(name);
    if (existsSync(pin)) {
      const link = BpfLink.openPinned(pin);
      try {
        link.update(prog);
      } finally {
        link.close();
      }
    } else {
      const link = attachTcx(prog, ifindex, direction);
      try {
        link.pin(pin);
      } finally {
        link.close();
      }
    }
  }
}

/** Load and attach in one step, for restores where nothing can overlap. */
export function loadAndAttachEndpointPrograms(maps: NodeMaps, spec: EndpointDatapathSpec): void {
  using programs = loadEndpointPrograms(maps, spec);
  attachEndpointPrograms(maps, spec.id, spec.ifindex, programs);
}

/** Whether both pinned links exist and are still attached to `ifindex`. */
export function endpointProgramsAttached(maps: NodeMaps, id: number, ifindex: number): boolean {
  for (const [direction] of DIRECTIONS) {
    const pin = maps.paths.endpointLink(id, direction);
    if (!existsSync(pin)) return false;
    const link = BpfLink.openPinned(pin);
    try {
      if (link.info().ifindex !== ifindex) return false;
    } finally {
      link.close();
    }
  }
  return true;
}

/** Detaches the programs and removes the pins; missing pins are fine. */
export function detachEndpointPrograms(maps: NodeMaps, id: number): void {
  for (const [direction] of DIRECTIONS) {
    const pin = maps.paths.endpointLink(id, direction);
    if (!existsSync(pin)) continue;
    const link = BpfLink.openPinned(pin);
    try {
      link.detach();
    } catch {
      // The device may be gone already, which detached the link with it.
    } finally {
      link.close();
    }
    rmSync(pin, { force: true });
  }
  rmSync(maps.paths.endpointDir(id), { recursive: true, force: true });
}
