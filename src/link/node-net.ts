/**
 * The node's own network namespace as the datapath needs it: forwarding on
 * (pods reach destinations outside the node through its stack), and the
 * node's addresses (they are the "host" identity in policy).
 */
import { writeFileSync } from 'node:fs';
import { run } from './exec.js';

/** Turns on IPv4 and IPv6 forwarding in the caller's network namespace. */
export function enableForwarding(): void {
  writeFileSync('/proc/sys/net/ipv4/ip_forward', '1');
  writeFileSync('/proc/sys/net/ipv6/conf/all/forwarding', '1');
}

interface IpAddrJson {
  ifname: string;
  addr_info?: Array<{ family: string; local: string; scope: string }>;
}

/**
 * Global-scope addresses of the caller's namespace (loopback and link-local
 * ones say nothing about where a packet came from).
 */
export async function hostAddresses(): Promise<string[]> {
  const stdout = await run('ip', ['-j', 'addr', 'show']);
  const links = JSON.parse(stdout) as IpAddrJson[];
  const out: string[] = [];
  for (const link of links) {
    for (const a of link.addr_info ?? []) {
      if (a.scope === 'global' && (a.family === 'inet' || a.family === 'inet6')) out.push(a.local);
    }
  }
  return out.sort();
}
