/**
 * Read-only views of the node's maps for `tendril map list|dump`: known maps
 * are decoded into named fields and addresses, so a dump reads like the state
 * it holds rather than bytes.
 */
import { notFound, invalid } from '../common/errors.js';
import { formatMac } from '../common/ip.js';
import { formatKeyAddress as addr, ntohs, protocolName } from '../common/wire-values.js';
import type { BpfMap } from '../bpf/index.js';
import { tndCtStateNames } from '../bpf/generated/wire.js';
import { NODE_MAPS, type NodeMaps } from './node-maps.js';
import type { PolicyMapEntry } from '../common/policy-entry.js';

export interface MapSummary {
  name: string;
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  entries: number | null;
  pinned: string;
}

const MAP_TYPES: Record<number, string> = {
  1: 'hash',
  2: 'array',
  5: 'percpu_hash',
  6: 'percpu_array',
  9: 'lru_hash',
  11: 'lpm_trie',
  12: 'array_of_maps',
  13: 'hash_of_maps',
  27: 'ringbuf',
};

const RINGBUF = 27;

function countEntries(map: BpfMap): number | null {
  if (map.type === RINGBUF) return null;
  let n = 0;
  for (const _ of map.keys()) n++;
  return n;
}

/** "80", "80-95", or "any" for a policy entry's port block. */
function portText(e: PolicyMapEntry): string {
  if (e.protocol === 0 || e.portPrefixLen === 0) return 'any';
  const last = e.port + 2 ** (16 - e.portPrefixLen) - 1;
  return last === e.port ? String(e.port) : `${e.port}-${last}`;
}

export function listMaps(maps: NodeMaps): MapSummary[] {
  return NODE_MAPS.map((name) => {
    const map = maps.raw.get(name)!;
    return {
      name,
      type: MAP_TYPES[map.type] ?? `type ${map.type}`,
      keySize: map.keySize,
      valueSize: map.valueSize,
      maxEntries: map.maxEntries,
      entries: countEntries(map),
      pinned: `${maps.paths.maps}/${name}`,
    };
  });
}

export function dumpMap(maps: NodeMaps, name: string): Array<Record<string, unknown>> {
  const map = maps.get(name);
  if (!map) throw notFound(`map "${name}" does not exist; maps: ${NODE_MAPS.join(', ')}`);
  if (map.type === RINGBUF) throw invalid(`map "${name}" is a ring buffer and holds no entries: use "tendril monitor" to read it`);
  const rows: Array<Record<string, unknown>> = [];
  if (name === 'tnd_endpoints') {
    for (const [k, v] of maps.endpoints.entries()) {
      rows.push({ address: addr(k.addr, k.family), endpoint: v.endpointId, ifindex: v.ifindex, identity: v.identity, mac: formatMac(v.mac), routerMac: formatMac(v.routerMac) });
    }
  } else if (name === 'tnd_ct') {
    const now = process.hrtime.bigint();
    for (const [k, v] of maps.conntrack.entries()) {
      rows.push({
        direction: k.dir === 0 ? 'egress' : 'ingress',
        protocol: protocolName(k.proto),
        source: addr(k.saddr, k.family),
        sourcePort: ntohs(k.sport),
        destination: addr(k.daddr, k.family),
        destinationPort: ntohs(k.dport),
        state: tndCtStateNames[v.state]?.replace(/^TND_CT_/, '').toLowerCase() ?? v.state,
        endpoint: v.endpointId,
        packetsFwd: Number(v.packetsFwd),
        bytesFwd: Number(v.bytesFwd),
        packetsRev: Number(v.packetsRev),
        bytesRev: Number(v.bytesRev),
        expiresInSec: Math.max(0, Math.round(Number(v.expiresNs - now) / 1e9)),
      });
    }
  } else if (name === 'tnd_ipcache') {
    for (const e of maps.ipcache.entries()) rows.push({ cidr: e.cidr, identity: e.identity });
  } else if (name === 'tnd_policy') {
    // One row per entry of each endpoint's inner map.
    for (const endpoint of maps.policy.endpoints()) {
      for (const e of maps.policy.entries(endpoint)) {
        rows.push({
          endpoint,
          direction: e.direction,
          identity: e.identity,
          protocol: e.protocol === 0 ? 'any' : protocolName(e.protocol),
          port: portText(e),
          verdict: e.verdict,
          ruleId: e.ruleId,
        });
      }
    }
  } else if (name === 'tnd_policy_gen') {
    rows.push({ generation: maps.policy.generation() });
  } else {
    for (const [k, v] of map.entries()) rows.push({ key: k.toString('hex'), value: v.toString('hex') });
  }
  return rows;
}
