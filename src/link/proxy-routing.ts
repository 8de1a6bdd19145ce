/**
 * The node's routing of packets the datapath steers into the L7 proxy
 * (bpf/lib/proxy.h): they carry the mark TND_MARK_TO_PROXY and keep their
 * original destination, so a policy rule sends every packet so marked to a
 * table whose only route makes any address local:
 *
 *   ip rule add fwmark 0x7e500000/0xffff0000 lookup <table> pref <priority>
 *   ip route replace local 0.0.0.0/0 dev lo table <table>
 *
 * The stack then delivers them to the proxy's socket (assigned to the SYN by
 * BPF, found by its tuple afterwards). The proxy's own upstream packets carry
 * TND_MARK_FROM_PROXY (0x7e51...), which the rule's mask does not match.
 * Both functions act on the caller's network namespace and are idempotent.
 * IPv4 only: IPv6 flows are never steered (the datapath drops them).
 */
import { TndMark } from '../bpf/generated/wire.js';
import { invalid } from '../common/errors.js';
import { run } from './exec.js';

export interface ProxyRoutingOptions {
  /** Routing table of the local route (default 2004). */
  table?: number;
  /** Priority of the fwmark rule (default 1000: before the main table's 32766). */
  priority?: number;
}

export const PROXY_ROUTE_TABLE = 2004;
export const PROXY_RULE_PRIORITY = 1000;
const MASK = 0xffff0000;

interface IpRuleJson {
  priority?: number;
  fwmark?: string;
  fwmask?: string;
  table?: string;
}

function settings(o: ProxyRoutingOptions): { table: number; priority: number; fwmark: string } {
  const table = o.table ?? PROXY_ROUTE_TABLE;
  const priority = o.priority ?? PROXY_RULE_PRIORITY;
  if (!Number.isInteger(table) || table < 1 || table > 0xfffffffe || table === 253 || table === 254 || table === 255)
    throw invalid(`proxy routing table ${table} is not a free table number (1-4294967294 but 253-255)`);
  if (!Number.isInteger(priority) || priority < 1 || priority > 32765) throw invalid(`proxy rule priority ${priority} is not 1-32765`);
  return { table, priority, fwmark: `0x${TndMark.TND_MARK_TO_PROXY.toString(16)}/0x${MASK.toString(16)}` };
}

/** The rules at `priority` that are ours (same mark, mask and table). */
async function ourRules(table: number, priority: number): Promise<number> {
  const rules = JSON.parse(await run('ip', ['-j', '-4', 'rule', 'show', 'pref', String(priority)])) as IpRuleJson[];
  const mark = TndMark.TND_MARK_TO_PROXY;
  return rules.filter((r) => {
    const [m, k] = (r.fwmark ?? '').split('/');
    const fwmask = k ?? r.fwmask ?? '0xffffffff';
    return Number(m) === mark && Number(fwmask) === MASK && r.table === String(table);
  }).length;
}

/** Installs the rule and the route in the current netns (again: no change). */
export async function ensureProxyRouting(o: ProxyRoutingOptions = {}): Promise<void> {
  const { table, priority, fwmark } = settings(o);
  await run('ip', ['-4', 'route', 'replace', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', String(table)]);
  if ((await ourRules(table, priority)) === 0) await run('ip', ['-4', 'rule', 'add', 'fwmark', fwmark, 'lookup', String(table), 'pref', String(priority)]);
}

/**
 * Gives the node `address` (on lo) when it has no global IPv4 address yet:
 * the proxy's upstream connections to pods need a source the pods can answer
 * (routed back into the node's stack). Agents pass the pod network's router
 * address, which pods already use as their gateway.
 */
export async function ensureNodeSourceAddress(address: string): Promise<void> {
  const links = JSON.parse(await run('ip', ['-j', '-4', 'addr', 'show'])) as Array<{ addr_info?: Array<{ local: string; scope: string }> }>;
  if (links.some((l) => (l.addr_info ?? []).some((a) => a.scope === 'global'))) return;
  await run('ip', ['-4', 'addr', 'replace', `${address}/32`, 'dev', 'lo']);
}

/** Removes what ensureProxyRouting() made in the current netns (nothing there: no change). */
export async function removeProxyRouting(o: ProxyRoutingOptions = {}): Promise<void> {
  const { table, priority, fwmark } = settings(o);
  for (let n = await ourRules(table, priority); n > 0; n--) await run('ip', ['-4', 'rule', 'del', 'fwmark', fwmark, 'lookup', String(table), 'pref', String(priority)]);
  const routes = JSON.parse(await run('ip', ['-j', '-4', 'route', 'show', 'table', String(table), 'type', 'local', '0.0.0.0/0'])) as unknown[];
  if (routes.length > 0) await run('ip', ['-4', 'route', 'del', 'local', '0.0.0.0/0', 'dev', 'lo', 'table', String(table)]);
}
