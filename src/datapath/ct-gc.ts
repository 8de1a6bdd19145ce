/**
 * Connection-tracking garbage collection. The datapath already treats expired
 * entries as absent; this sweep returns their slots so the LRU map never has
 * to evict live connections to make room for dead ones.
 */
import type { NodeMaps } from './node-maps.js';

export function sweepConntrack(maps: NodeMaps, nowNs: bigint = process.hrtime.bigint()): number {
  const expired = [];
  for (const [key, entry] of maps.conntrack.entries()) if (entry.expiresNs < nowNs) expired.push(key);
  for (const key of expired) maps.conntrack.delete(key);
  return expired.length;
}
