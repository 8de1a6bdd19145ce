/**
 * IpcacheMap: the node's tnd_ipcache, prefix -> security identity, as CIDR
 * strings. The datapath looks an address up by longest prefix and takes
 * IDENTITY world (2) when no prefix holds it.
 */
import { invalid } from '../common/errors.js';
import { formatPrefix, parseIP, parsePrefix, type Prefix } from '../common/ip.js';
import { keyAddress } from '../common/wire-values.js';
import { TypedMap, type BpfMap } from '../bpf/index.js';
import { TndFamily, TndIpcacheKey, TndIpcacheValue } from '../bpf/generated/wire.js';

/** The 32 bits of family and pad that every key matches before its address bits. */
const FAMILY_BITS = 32;

export interface IpcacheEntry {
  cidr: string;
  identity: number;
}

/** "10.1.0.0/16", "fd10::/64", or a plain address meaning /32 or /128. */
export function parseCidr(text: string): Prefix {
  if (text.includes('/')) return parsePrefix(text);
  const { family, bytes } = parseIP(text);
  return { family, bytes, length: family === 4 ? 32 : 128 };
}

export function checkIdentity(identity: number, what: string): void {
  if (!Number.isInteger(identity) || identity < 0 || identity > 0xffffffff)
    throw invalid(`${what}: identity ${identity} is not an integer from 0 to 4294967295`);
}

function keyOf(p: Prefix): TndIpcacheKey {
  return { prefixlen: FAMILY_BITS + p.length, family: p.family === 4 ? TndFamily.TND_AF_INET : TndFamily.TND_AF_INET6, addr: keyAddress(p.bytes) };
}

function prefixOf(k: TndIpcacheKey): Prefix {
  const v4 = k.family === TndFamily.TND_AF_INET;
  return { family: v4 ? 4 : 6, bytes: Uint8Array.from(k.addr.subarray(0, v4 ? 4 : 16)), length: k.prefixlen - FAMILY_BITS };
}

export class IpcacheMap {
  private readonly map: TypedMap<TndIpcacheKey, TndIpcacheValue>;

  constructor(map: BpfMap) {
    this.map = new TypedMap(map, TndIpcacheKey, TndIpcacheValue);
  }

  /** Maps every address of `cidr` not in a longer prefix to `identity`; replaces an entry of the same prefix. */
  set(cidr: string, identity: number): void {
    checkIdentity(identity, `ipcache entry ${cidr}`);
    this.map.update(keyOf(parseCidr(cidr)), { identity });
  }

  /** True when the prefix was there. */
  delete(cidr: string): boolean {
    return this.map.delete(keyOf(parseCidr(cidr)));
  }

  /** The identity the datapath finds for one address (longest prefix), or undefined when none holds it (world). */
  lookup(address: string): number | undefined {
    const { family, bytes } = parseIP(address);
    return this.map.lookup(keyOf({ family, bytes, length: family === 4 ? 32 : 128 }))?.identity;
  }

  entries(): IpcacheEntry[] {
    return [...this.map.entries()].map(([k, v]) => ({ cidr: formatPrefix(prefixOf(k)), identity: v.identity }));
  }
}
