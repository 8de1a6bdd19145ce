/**
 * An L7PolicyTable compiled for matching. Regular expressions are built once
 * per table (a literal becomes a string comparison), and the rules that apply
 * to a connection are resolved once per (endpoint, direction, port, peer
 * identity) and cached until the next table, so a request costs only its
 * matches. A request is allowed when every direction that redirected the
 * flow has a rule allowing it.
 */
import type { Direction } from '../common/policy-entry.js';
import type { HttpRule, L7PolicyTable, ProxyFlow } from '../common/l7-policy.js';
import { lookupIdentities } from '../policy/entries.js';

/** What a rule can look at: the request as parsed, the path as normalised. */
export interface RequestView {
  method: string;
  path: string;
  host: string | undefined;
  /** Every value of a header (lower-case name), in order. */
  headerAll(lowerName: string): string[];
}

/** A literal pattern compares as a string; anything else is an anchored RegExp. */
type Matcher = string | RegExp;

interface CompiledRule {
  ruleId: number;
  method: Matcher | undefined;
  path: Matcher | undefined;
  host: Matcher | undefined;
  headers: Array<{ name: string; value: string | undefined }>;
}

const LITERAL = /^[A-Za-z0-9/_\-,:=@]*$/;

function matcher(src: string | undefined): Matcher | undefined {
  if (src === undefined) return undefined;
  if (LITERAL.test(src)) return src;
  try {
    return new RegExp(`^(?:${src})$`);
  } catch {
    // A pattern that does not compile matches nothing: fail closed.
    return /(?!)/;
  }
}

function matches(m: Matcher | undefined, value: string | undefined): boolean {
  if (m === undefined) return true;
  if (value === undefined) return false;
  return typeof m === 'string' ? m === value : m.test(value);
}

function compileRule(rule: HttpRule, ruleId: number): CompiledRule {
  return {
    ruleId,
    method: matcher(rule.method),
    path: matcher(rule.path),
    host: matcher(rule.host),
    headers: (rule.headers ?? []).map((h) => {
      const colon = h.indexOf(':');
      if (colon < 0) return { name: h.trim().toLowerCase(), value: undefined };
      return { name: h.slice(0, colon).trim().toLowerCase(), value: h.slice(colon + 1).trim() };
    }),
  };
}

function ruleAllows(r: CompiledRule, req: RequestView): boolean {
  if (!matches(r.method, req.method) || !matches(r.path, req.path) || !matches(r.host, req.host)) return false;
  for (const h of r.headers) {
    const values = req.headerAll(h.name);
    if (values.length === 0) return false;
    if (h.value !== undefined && !values.includes(h.value)) return false;
  }
  return true;
}

/** The rules of one direction for one connection. */
export class DirectionRules {
  constructor(
    /** ruleId of an entry without rules (it allows every request), or -1. */
    readonly allowAll: number,
    readonly rules: readonly CompiledRule[],
  ) {}

  /** The id of the rule that allows the request, or -1. */
  decide(req: RequestView): number {
    if (this.allowAll >= 0) return this.allowAll;
    for (const r of this.rules) if (ruleAllows(r, req)) return r.ruleId;
    return -1;
  }
}

const DENY_ALL = new DirectionRules(-1, []);

/** What decides the requests of one connection: one DirectionRules per redirecting direction. */
export class FlowRules {
  constructor(readonly directions: readonly DirectionRules[]) {}

  /** -1 when denied, else the id of the rule that allowed it (of the last direction checked). */
  decide(req: RequestView): number {
    let id = -1;
    for (const d of this.directions) {
      id = d.decide(req);
      if (id < 0) return -1;
    }
    return id;
  }
}

interface CompiledEntry {
  direction: Direction;
  identity: number;
  firstPort: number;
  lastPort: number;
  ruleId: number;
  rules: CompiledRule[];
}

export class CompiledPolicy {
  readonly revision: number;
  readonly ruleNames: Readonly<Record<number, string>>;
  private readonly byEndpoint = new Map<number, CompiledEntry[]>();
  private readonly cache = new Map<string, DirectionRules>();

  constructor(table: L7PolicyTable) {
    this.revision = table.revision;
    this.ruleNames = table.ruleNames;
    for (const ep of table.endpoints) {
      const list = ep.entries.map((e) => ({
        direction: e.direction,
        identity: e.identity,
        firstPort: e.firstPort,
        lastPort: e.lastPort,
        ruleId: e.ruleId,
        rules: e.rules.map((r) => compileRule(r, e.ruleId)),
      }));
      this.byEndpoint.set(ep.endpointId, [...(this.byEndpoint.get(ep.endpointId) ?? []), ...list]);
    }
  }

  /**
   * The rules for a connection of `flow` to TCP port `port`. A redirecting
   * direction without any entry for the peer denies everything: the
   * datapath redirected because of entries this table no longer has.
   */
  forFlow(flow: ProxyFlow, port: number): FlowRules {
    const dirs: DirectionRules[] = [];
    if (flow.egress) dirs.push(this.direction(flow.srcEndpoint, 'egress', port, flow.dstIdentity));
    if (flow.ingress) dirs.push(this.direction(flow.dstEndpoint, 'ingress', port, flow.srcIdentity));
    if (dirs.length === 0) dirs.push(DENY_ALL);
    return new FlowRules(dirs);
  }

  /** Cached per (endpoint, direction, port, peer identity). */
  direction(endpoint: number, direction: Direction, port: number, peer: number): DirectionRules {
    const key = `${endpoint}/${direction}/${port}/${peer}`;
    let d = this.cache.get(key);
    if (d === undefined) {
      d = this.resolve(endpoint, direction, port, peer);
      this.cache.set(key, d);
    }
    return d;
  }

  private resolve(endpoint: number, direction: Direction, port: number, peer: number): DirectionRules {
    const entries = this.byEndpoint.get(endpoint);
    if (!entries) return DENY_ALL;
    const keys = lookupIdentities(peer);
    let allowAll = -1;
    const rules: CompiledRule[] = [];
    for (const e of entries) {
      if (e.direction !== direction || port < e.firstPort || port > e.lastPort || !keys.includes(e.identity)) continue;
      if (e.rules.length === 0) {
        if (allowAll < 0 || e.ruleId < allowAll) allowAll = e.ruleId;
      } else rules.push(...e.rules);
    }
    return allowAll >= 0 || rules.length > 0 ? new DirectionRules(allowAll, rules) : DENY_ALL;
  }
}
