/**
 * The datapath's side of the L7 proxy (bpf/lib/proxy.h):
 * - ProxyConfigMap over tnd_proxy_config: the port the proxy listens on at
 *   127.0.0.1 in the node's netns. 0 (clear()) means no proxy: flows the
 *   policy redirects are dropped ("L7 proxy not running"), never delivered
 *   directly.
 * - ProxyFlowMap over tnd_proxy_flows: what the datapath recorded about a
 *   flow it steered into the proxy (identities, endpoints, whose policy
 *   redirected), keyed by the client's tuple. A proxy worker process opens
 *   the pin itself (ProxyFlowMap.openPinned) and looks each accepted
 *   connection up by its remote (the client) and local (the original
 *   destination) address and port.
 */
import { isIPv4 } from 'node:net';
import { invalid } from '../common/errors.js';
import { parseIPv4, parseIPv6 } from '../common/ip.js';
import type { ProxyFlow } from '../common/l7-policy.js';
import { BpfMap, u32 } from '../bpf/index.js';
import { TndCtDir, TndCtKey, TndFamily, TndProxyConfig, TndProxyFlow, TndProxyFlags } from '../bpf/generated/wire.js';

/** The name of the flow map's pin in the node's map directory (`${paths.maps}/tnd_proxy_flows`). */
export const PROXY_FLOWS_MAP = 'tnd_proxy_flows';

const IPPROTO_TCP = 6;

export class ProxyConfigMap {
  private readonly zero = u32.encode(0);

  /** `map` is tnd_proxy_config; it stays its owner's to close. */
  constructor(private readonly map: BpfMap) {}

  /** Redirected flows go to 127.0.0.1:`port` from now on (their SYNs; open flows keep their socket). */
  setPort(port: number): void {
    if (!Number.isInteger(port) || port < 1 || port > 0xffff) throw invalid(`proxy port ${port} is not an integer from 1 to 65535`);
    this.map.update(this.zero, TndProxyConfig.encode({ port }));
  }

  /** No proxy: new redirected flows are dropped. */
  clear(): void {
    this.map.update(this.zero, TndProxyConfig.encode({ port: 0 }));
  }

  /** The configured port, 0 when none. */
  port(): number {
    const v = this.map.lookup(this.zero);
    return v ? TndProxyConfig.decode(v).port : 0;
  }
}

/** A TCP connection as the proxy sees it: the client's address and port, and the original destination's. */
export interface ProxyFlowTuple {
  family: 4 | 6;
  srcAddr: string;
  srcPort: number;
  dstAddr: string;
  dstPort: number;
}

// struct tnd_ct_key and struct tnd_proxy_flow, written and read in place
// (a lookup per accepted connection: no codec objects, no allocation).
const KEY_SADDR = 0;
const KEY_DADDR = 16;
const KEY_SPORT = 32;
const KEY_DPORT = 34;
const KEY_PROTO = 36;
const KEY_FAMILY = 37;
const KEY_DIR = 38;
if (TndCtKey.size !== 40 || TndProxyFlow.size !== 16) throw new Error(`tnd_ct_key/tnd_proxy_flow layout changed (${TndCtKey.size}/${TndProxyFlow.size} bytes): update proxy-maps.ts`);

/** "10.0.0.1" and Node's "::ffff:10.0.0.1" of a dual-stack socket alike. */
function addressBytes(family: 4 | 6, addr: string, out: Buffer, offset: number): void {
  out.fill(0, offset, offset + 16);
  const v4 = family === 4 ? parseIPv4(addr.startsWith('::ffff:') && isIPv4(addr.slice(7)) ? addr.slice(7) : addr) : undefined;
  const bytes = family === 4 ? v4 : parseIPv6(addr);
  if (!bytes) throw invalid(`"${addr}" is not an IPv${family} address`);
  out.set(bytes, offset);
}

export class ProxyFlowMap implements Disposable {
  private readonly key = Buffer.alloc(40);
  private readonly value = Buffer.alloc(16);

  /** `owned`: close() closes the map (openPinned); else it stays its owner's. */
  constructor(
    readonly map: BpfMap,
    private readonly owned = false,
  ) {
    if (map.keySize !== 40 || map.valueSize !== 16) throw invalid(`map "${map.name}" is not a proxy flow map (key ${map.keySize}, value ${map.valueSize} bytes)`);
  }

  /** The node's flow map by its pin: `${nodeMaps.paths.maps}/tnd_proxy_flows` (NodeMaps.proxyFlowsPath). */
  static openPinned(path: string): ProxyFlowMap {
    return new ProxyFlowMap(BpfMap.openPinned(path), true);
  }

  private fill(t: ProxyFlowTuple): Buffer {
    if (t.family !== 4 && t.family !== 6) throw invalid(`family ${String(t.family)} is neither 4 nor 6`);
    const k = this.key;
    addressBytes(t.family, t.srcAddr, k, KEY_SADDR);
    addressBytes(t.family, t.dstAddr, k, KEY_DADDR);
    k.writeUInt16BE(t.srcPort, KEY_SPORT);
    k.writeUInt16BE(t.dstPort, KEY_DPORT);
    k[KEY_PROTO] = IPPROTO_TCP;
    k[KEY_FAMILY] = t.family === 4 ? TndFamily.TND_AF_INET : TndFamily.TND_AF_INET6;
    k[KEY_DIR] = TndCtDir.TND_CT_EGRESS;
    k[39] = 0;
    return k;
  }

  /** What the datapath recorded when it steered this connection's SYN, or undefined (not steered, or evicted). */
  lookup(t: ProxyFlowTuple): ProxyFlow | undefined {
    const v = this.value;
    if (!this.map.lookupInto(this.fill(t), v)) return undefined;
    const flags = v[12]!;
    return {
      srcIdentity: v.readUInt32LE(0),
      dstIdentity: v.readUInt32LE(4),
      srcEndpoint: v.readUInt16LE(8),
      dstEndpoint: v.readUInt16LE(10),
      egress: (flags & TndProxyFlags.TND_PROXY_F_EGRESS) !== 0,
      ingress: (flags & TndProxyFlags.TND_PROXY_F_INGRESS) !== 0,
    };
  }

  /** Forgets a flow (the proxy is done with it); true when it was there. */
  delete(t: ProxyFlowTuple): boolean {
    return this.map.delete(this.fill(t));
  }

  close(): void {
    if (this.owned) this.map.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
