/**
 * The node-wide maps every endpoint program shares: created and pinned by the
 * first load, reused from their pins afterwards (also by a restarted agent).
 *
 * The load balancer's maps (bpf/lib/lb.h) are the node's too, shared with
 * sock.o (LbMaps) and xdp.o under the same pins. lxc.o opens them only when
 * a program first needs them, so that LbMaps, which the agent opens right
 * after NodeMaps, is what creates the Maglev map with the M it was asked
 * for; whichever comes second reuses the pins. Should the endpoint programs
 * come first, they create it with the M given to NodeMaps.open() (default
 * 16381, LbMaps' default too), never with a size LbMaps would not agree to.
 */
import { mkdirSync } from 'node:fs';
import { BpfMap, BpfObject, TypedMap, bpfObjectPath } from '../bpf/index.js';
import {
  TndCtEntry,
  TndCtKey,
  TndEndpointInfo,
  TndEndpointKey,
  TndLxcConfig,
} from '../bpf/generated/wire.js';
import { PinPaths } from './paths.js';
import { IpcacheMap } from './ipcache-map.js';
import { PolicyMaps } from './policy-maps.js';
import { PROXY_FLOWS_MAP, ProxyConfigMap, ProxyFlowMap } from './proxy-maps.js';
import { LB_CORE_MAPS, MAGLEV_SIZE_DEFAULT, adoptMaglevPin, checkMaglevSize, recordMaglevSize } from './lb-maps.js';

/** Maps shared by all endpoints of a node, by their names in lxc.o. */
export const NODE_MAPS = [
  'tnd_endpoints',
  'tnd_ct',
  'tnd_events',
  'tnd_metrics',
  'tnd_ipcache',
  'tnd_policy',
  'tnd_policy_gen',
  'tnd_proxy_config',
  'tnd_proxy_flows',
] as const;
export type NodeMapName = (typeof NODE_MAPS)[number];

/** The load balancer's maps lxc.o uses (every map of lb.h), by name. */
export const LXC_LB_MAPS = LB_CORE_MAPS;
export type LxcLbMapName = (typeof LXC_LB_MAPS)[number];

export interface NodeMapsOptions {
  /** M of the Maglev map if the endpoint programs must create it (no LbMaps yet); default 16381. */
  maglevSize?: number;
}

/** The LB maps as lxc.o shares them, and the M its CONFIG must carry. */
export interface EndpointLbMaps {
  readonly maglevSize: number;
  readonly raw: ReadonlyMap<LxcLbMapName, BpfMap>;
}

export class NodeMaps implements Disposable {
  readonly endpoints: TypedMap<TndEndpointKey, TndEndpointInfo>;
  readonly conntrack: TypedMap<TndCtKey, TndCtEntry>;
  readonly ipcache: IpcacheMap;
  readonly policy: PolicyMaps;
  /** The L7 proxy's port (tnd_proxy_config). */
  readonly proxyConfig: ProxyConfigMap;
  /** The flows steered into the L7 proxy (tnd_proxy_flows); proxy workers open proxyFlowsPath themselves. */
  readonly proxyFlows: ProxyFlowMap;

  private lbMaps?: EndpointLbMaps;

  private constructor(
    readonly paths: PinPaths,
    readonly raw: ReadonlyMap<NodeMapName, BpfMap>,
    private readonly maglevSize: number,
  ) {
    this.endpoints = new TypedMap(raw.get('tnd_endpoints')!, TndEndpointKey, TndEndpointInfo);
    this.conntrack = new TypedMap(raw.get('tnd_ct')!, TndCtKey, TndCtEntry);
    this.ipcache = new IpcacheMap(raw.get('tnd_ipcache')!);
    this.policy = new PolicyMaps(raw.get('tnd_policy')!, raw.get('tnd_policy_gen')!);
    this.proxyConfig = new ProxyConfigMap(raw.get('tnd_proxy_config')!);
    this.proxyFlows = new ProxyFlowMap(raw.get(PROXY_FLOWS_MAP)!);
  }

  /** The pin of tnd_proxy_flows, for ProxyFlowMap.openPinned() in a proxy worker. */
  get proxyFlowsPath(): string {
    return `${this.paths.maps}/${PROXY_FLOWS_MAP}`;
  }

  /** Opens the pinned maps, creating and pinning any that are missing. */
  static open(paths: PinPaths, options: NodeMapsOptions = {}): NodeMaps {
    const m = checkMaglevSize(options.maglevSize ?? MAGLEV_SIZE_DEFAULT);
    mkdirSync(paths.maps, { recursive: true });
    // A throw-away load of lxc.o creates whatever is not pinned yet; maps that
    // are pinned already are reused untouched, so this is safe on restart.
    const obj = BpfObject.open(bpfObjectPath('lxc.o'), {
      constants: { CONFIG: TndLxcConfig.encode(defaultConfig()) },
      pinMaps: { dir: paths.maps, names: [...NODE_MAPS] },
    });
    try {
      obj.load();
    } finally {
      obj.close();
    }
    const raw = new Map<NodeMapName, BpfMap>();
    for (const name of NODE_MAPS) raw.set(name, BpfMap.openPinned(`${paths.maps}/${name}`));
    return new NodeMaps(paths, raw, m);
  }

  /**
   * The node's LB maps for lxc.o, opened from their pins on first use; the
   * ones not pinned yet are created and pinned (tnd_lb_maglev with the M
   * of an existing pin, else the M this NodeMaps was opened with).
   */
  lb(): EndpointLbMaps {
    if (this.lbMaps) return this.lbMaps;
    const m = adoptMaglevPin(this.paths) ?? this.maglevSize;
    const obj = BpfObject.open(bpfObjectPath('lxc.o'), {
      constants: { CONFIG: TndLxcConfig.encode({ ...defaultConfig(), maglevSize: m }) },
      innerValueSizes: { tnd_lb_maglev: m * 4 },
      pinMaps: { dir: this.paths.maps, names: [...LXC_LB_MAPS] },
      autoload: { from_container: false, to_container: false },
    });
    try {
      obj.load();
    } finally {
      obj.close();
    }
    const raw = new Map<LxcLbMapName, BpfMap>();
    try {
      for (const name of LXC_LB_MAPS) raw.set(name, BpfMap.openPinned(`${this.paths.maps}/${name}`));
      this.lbMaps = { maglevSize: recordMaglevSize(raw.get('tnd_lb_maglev')!, m), raw };
    } catch (err) {
      for (const map of raw.values()) map.close();
      throw err;
    }
    return this.lbMaps;
  }

  get(name: string): BpfMap | undefined {
    return this.raw.get(name as NodeMapName);
  }

  close(): void {
    for (const map of this.raw.values()) map.close();
    for (const map of this.lbMaps?.raw.values() ?? []) map.close();
    delete this.lbMaps;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

export function defaultConfig(): TndLxcConfig {
  return {
    endpointId: 0,
    flags: 0,
    identity: 0,
    mac: Buffer.alloc(6),
    routerMac: Buffer.alloc(6),
    ip4: Buffer.alloc(4),
    routerIp4: Buffer.alloc(4),
    ip6: Buffer.alloc(16),
    routerIp6: Buffer.alloc(16),
    maglevSize: 0,
  };
}
