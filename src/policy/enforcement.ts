/**
 * Policy enforcement on one node: keeps the datapath's policy maps and
 * ipcache in step with the policies, the identities and the local endpoints.
 * Every change (an import, a delete, an endpoint coming or going, a new
 * identity) ends in the same step: resolve every local endpoint's entries,
 * swap in the maps of those whose entries changed, and bump the datapath's
 * policy generation so established connections are judged again once. A
 * change returns only when the datapath enforces it.
 */
import { invalid, notFound } from '../common/errors.js';
import { isCidrIdentity, isEndpointIdentity } from '../common/identity.js';
import { formatLabels, parseLabels, type Labels } from '../common/labels.js';
import { Mutex } from '../common/mutex.js';
import type { L7EndpointPolicy, L7PolicyTable } from '../common/l7-policy.js';
import type { PolicyMapEntry, Verdict } from '../common/policy-entry.js';
import { PROTO_SCTP, PROTO_TCP, PROTO_UDP } from '../common/policy-entry.js';

import { StateFile } from '../node/state-file.js';
import type { IdentityAllocator } from '../identity/allocator.js';
import { CidrIdentities } from '../identity/cidr.js';
import { labelKey, type Identity } from '../identity/identity.js';
import type { Ipcache } from '../ipcache/ipcache.js';
import { parsePolicyFiles, type PolicySource } from './parse.js';
import { parseCidr, referencedCidrs } from './cidr.js';
import type { PolicyRepository, PolicySummary } from './repository.js';
import type { PolicyResolver } from './resolver.js';
import { formatRuleRef } from './rule-table.js';
import { tracePolicy, type DirectionTrace, type TracePeer } from './trace.js';

/** What enforcement needs of the datapath's policy maps. */
export interface PolicyDatapath {
  /** Replaces the endpoint's whole policy in one step. */
  /** Swaps wait for the kernel (a grace period): one endpoint off the event loop, many in one batch. */
  installAsync(endpointId: number, entries: PolicyMapEntry[]): Promise<void>;
  installMany(policies: Array<[number, PolicyMapEntry[]]>): Promise<void>;
  /** Starts the removal; the kernel finishes it in the background. */
  removeLater(endpointId: number): void;
  /** Waits for the removals started. */
  settled(): Promise<void>;
  /** Makes every established connection be judged again on its next packet. */
  bumpGeneration(): void;
}

/**
 * Where the node's HTTP rules go (the L7 proxy): called with a new table
 * whenever it changes, before the maps that redirect flows to it are swapped
 * in, so a redirected flow always finds its rules.
 */
export type L7PolicySink = (table: L7PolicyTable) => Promise<void>;

/** A local endpoint as enforcement sees it. */
export interface PolicyEndpoint {
  id: number;
  labels: Labels;
  ipv4: string;
  ipv6: string;
}

export interface ImportOutcome {
  imported: PolicySummary[];
  revision: number;
  endpointsUpdated: number;
}

export interface TraceSide {
  query: string;
  identity: number;
  labels: Labels;
  endpoint?: number;
}

export interface TraceOutcome {
  source: TraceSide;
  destination: TraceSide;
  port: number;
  protocol: string;
  egress?: TraceStepOutcome;
  ingress?: TraceStepOutcome;
  verdict: Verdict;
}

export interface TraceStepOutcome {
  direction: 'ingress' | 'egress';
  verdict: Verdict;
  rule?: string;
  reason: string;
}

export interface IdentityDescription {
  id: number;
  kind: 'reserved' | 'endpoint' | 'cidr';
  labels: Labels;
  endpoints: number[];
}

const PROTOCOLS: Record<string, number> = { tcp: PROTO_TCP, udp: PROTO_UDP, sctp: PROTO_SCTP };
const CIDR_STATE_FILE = 'cidr-identities.json';

/**
 * How long an identity outlives its last endpoint on this node. A pod made
 * again with the same labels (a restarted container, a rollout) finds it:
 * no kvstore writes, and no peer's policy changes. After it, the identity is
 * released (freed when no node holds it) and policies are regenerated.
 */
export const IDENTITY_LINGER_MS = 60_000;

interface LocalState {
  ep: PolicyEndpoint;
  identity: number;
  /** The entries last installed, as text: unchanged entries are not swapped again. */
  installed?: string;
}

export class PolicyEnforcement {
  private readonly mutex = new Mutex();
  private readonly local = new Map<number, LocalState>();
  private readonly cidrs: CidrIdentities;
  private readonly cidrFile: StateFile<{ prefixes: Array<{ prefix: string; id: number }> }>;
  private resolverCache: PolicyResolver | undefined;
  private hostAddresses: string[] = [];
  private l7Sink: L7PolicySink | undefined;
  /** The table the sink last accepted, as text; undefined forces the next push. */
  private l7Sent: string | undefined;
  private l7Revision = 0;
  /** Releases of identities whose last endpoint left, waiting out the linger time. */
  private readonly lingering = new Set<NodeJS.Timeout>();

  constructor(
    private readonly repo: PolicyRepository,
    private readonly allocator: IdentityAllocator,
    private readonly ipcache: Ipcache,
    private readonly datapath: PolicyDatapath,
    stateDir: string,
    private readonly options: { identityLingerMs?: number } = {},
  ) {
    this.cidrFile = new StateFile(stateDir, CIDR_STATE_FILE);
    this.cidrs = new CidrIdentities(this.cidrFile.read()?.prefixes ?? []);
  }

  /**
   * Brings the kernel's ipcache to the model and installs every known
   * endpoint's policy; call once the endpoints are attached after a restart.
   */
  start(): Promise<void> {
    return this.mutex.run(async () => {
      this.refreshCidrs();
      this.ipcache.sync();
      await this.allocator.finishRestore();
      await this.regenerate();
    });
  }

  /** An endpoint arrives: its identity, its addresses in the ipcache, its policy (and its peers', when its identity is new). */
  attach(ep: PolicyEndpoint): Promise<number> {
    return this.mutex.run(async () => {
      const known = new Set(this.resolver().identities.map((i) => i.id));
      const identity = await this.allocator.allocate({ ...ep.labels });
      this.local.set(ep.id, { ep, identity: identity.id });
      this.ipcache.replaceOwner('endpoint', String(ep.id), [
        { cidr: ep.ipv4, identity: identity.id },
        { cidr: ep.ipv6, identity: identity.id },
      ]);
      if (known.has(identity.id)) await this.installFor(ep.id, this.resolver());
      else await this.regenerate();
      return identity.id;
    });
  }

  /**
   * An endpoint's labels changed: it moves to the identity of its new label
   * set, and every policy (its own and its peers') is regenerated at once.
   */
  relabel(ep: PolicyEndpoint): Promise<number> {
    return this.mutex.run(async () => {
      const old = this.local.get(ep.id);
      const identity = await this.allocator.allocate({ ...ep.labels });
      this.local.set(ep.id, { ep, identity: identity.id });
      this.ipcache.replaceOwner('endpoint', String(ep.id), [
        { cidr: ep.ipv4, identity: identity.id },
        { cidr: ep.ipv6, identity: identity.id },
      ]);
      if (old && old.identity !== identity.id) await this.allocator.release(old.identity);
      await this.regenerate();
      return identity.id;
    });
  }

  detach(endpointId: number): Promise<void> {
    return this.mutex.run(async () => {
      const state = this.local.get(endpointId);
      if (!state) return;
      this.local.delete(endpointId);
      this.ipcache.removeOwner('endpoint', String(endpointId));
      this.datapath.removeLater(endpointId);
      this.datapath.bumpGeneration();
      this.releaseLater(state.identity);
    });
  }

  /** Gives up this endpoint's hold on `identity` after the linger time (an attach meanwhile holds it again). */
  private releaseLater(identity: number): void {
    const timer = setTimeout(() => {
      this.lingering.delete(timer);
      this.mutex
        .run(async () => {
          // Peers' maps still name a freed identity: harmless, but keep them exact.
          if (await this.allocator.release(identity)) await this.regenerate();
        })
        .catch((err: Error) => process.emitWarning(`releasing identity ${identity} failed: ${err.message}`));
    }, this.options.identityLingerMs ?? IDENTITY_LINGER_MS);
    timer.unref();
    this.lingering.add(timer);
  }

  /**
   * Drops pending identity releases (the node's holds stay in the kvstore;
   * the next agent's restore releases what no endpoint claims) and waits for
   * policy removals under way, so the maps can be closed.
   */
  async close(): Promise<void> {
    for (const timer of this.lingering) clearTimeout(timer);
    this.lingering.clear();
    await this.datapath.settled();
  }

  /**
   * Hands every HTTP rule to `sink` from now on (the current table at once).
   * Until a sink is set, redirected flows find no proxy and are dropped.
   */
  setL7Sink(sink: L7PolicySink): Promise<void> {
    return this.mutex.run(async () => {
      this.l7Sink = sink;
      this.l7Sent = undefined;
      await this.pushL7(this.resolver());
    });
  }

  /** The HTTP rules of every local endpoint (what the proxy enforces). */
  l7Table(): L7PolicyTable {
    return this.buildL7Table(this.resolver());
  }

  /** The node's own addresses are the host identity. */
  setHostAddresses(addresses: string[]): Promise<void> {
    return this.mutex.run(() => {
      const sorted = [...addresses].sort();
      if (sorted.join() === this.hostAddresses.join()) return;
      this.hostAddresses = sorted;
      this.ipcache.replaceOwner('host', 'node', sorted.map((cidr) => ({ cidr, identity: 1 })));
      this.datapath.bumpGeneration();
    });
  }

  /** Parses and validates every file, then applies all of them, or nothing. */
  importFiles(files: PolicySource[]): Promise<ImportOutcome> {
    return this.mutex.run(async () => {
      const policies = parsePolicyFiles(files);
      const before = this.repo.all();
      const { revision, keys } = this.repo.import(policies);
      let updated: number;
      try {
        updated = await this.afterPolicyChange();
      } catch (err) {
        // The datapath refused: put the previous policies back so the agent says what it enforces.
        this.repo.deleteAll();
        if (before.length) this.repo.import(before);
        await this.afterPolicyChange();
        throw err;
      }
      const summaries = this.repo.list();
      return { imported: keys.map((k) => summaries.find((s) => s.key === k)!), revision, endpointsUpdated: updated };
    });
  }

  deletePolicy(nameOrKey: string): Promise<{ deleted: string[]; revision: number }> {
    return this.mutex.run(async () => {
      const gone = this.repo.delete(nameOrKey);
      await this.afterPolicyChange();
      return { deleted: [gone.key], revision: this.repo.revision };
    });
  }

  deleteAllPolicies(): Promise<{ deleted: string[]; revision: number }> {
    return this.mutex.run(async () => {
      const keys = this.repo.list().map((p) => p.key);
      this.repo.deleteAll();
      await this.afterPolicyChange();
      return { deleted: keys, revision: this.repo.revision };
    });
  }

  stats(): { policies: number; revision: number; identities: number } {
    return { policies: this.repo.list().length, revision: this.repo.revision, identities: this.resolver().identities.length };
  }

  listPolicies(): PolicySummary[] {
    return this.repo.list();
  }

  getPolicy(nameOrKey: string): PolicySummary & { document: unknown } {
    const { document, summary } = this.repo.get(nameOrKey);
    return { ...summary, document };
  }

  /** "<policy> <direction>[i]" of a rule id the datapath reported, if it still exists. */
  describeRule(ruleId: number): string | undefined {
    const ref = this.repo.rules.ref(ruleId);
    return ref ? formatRuleRef(ref) : undefined;
  }

  identities(): IdentityDescription[] {
    return this.resolver()
      .identities.map((i) => this.describeIdentity(i.id, i.labels))
      .sort((a, b) => a.id - b.id);
  }

  identity(id: number): IdentityDescription {
    const labels = this.resolver().labelsOf(id);
    if (!labels) throw notFound(`identity ${id} does not exist (see "tendril identity list")`);
    return this.describeIdentity(id, labels);
  }

  /** Would src reach dst on port/protocol, and which rule decides? */
  trace(query: { src: string; dst: string; port: number; protocol: string }): TraceOutcome {
    const resolver = this.resolver();
    const source = this.traceSide(query.src, 'src');
    const destination = this.traceSide(query.dst, 'dst');
    const protocol = PROTOCOLS[query.protocol];
    if (protocol === undefined) throw invalid(`protocol "${query.protocol}" is not TCP, UDP or SCTP`);
    const result = tracePolicy(resolver, { source: source.peer, destination: destination.peer, protocol, port: query.port });
    // An address resolves to its CIDR identity only now: report that identity and its labels.
    const sideOut = (s: { side: TraceSide }, identity: number): TraceSide => ({ ...s.side, identity, labels: resolver.labelsOf(identity) ?? s.side.labels });
    return {
      source: sideOut(source, result.source),
      destination: sideOut(destination, result.destination),
      port: query.port,
      protocol: query.protocol,
      egress: stepOf(result.egress),
      ingress: stepOf(result.ingress),
      verdict: result.verdict,
    };
  }

  private traceSide(text: string, flag: 'src' | 'dst'): { side: TraceSide; peer: TracePeer } {
    if (/^\d+$/.test(text)) {
      const state = this.local.get(Number(text));
      if (!state) throw notFound(`--${flag} ${text}: endpoint ${text} does not exist (see "tendril endpoint list")`);
      return { side: { query: text, identity: state.identity, labels: state.ep.labels, endpoint: state.ep.id }, peer: { identity: state.identity } };
    }
    if (text.includes('=')) {
      let labels: Labels;
      try {
        labels = parseLabels(text);
      } catch (err) {
        throw invalid(`--${flag} ${text}: ${(err as Error).message}`);
      }
      const key = labelKey(labels);
      const match = this.resolver().identities.find((i) => isEndpointIdentity(i.id) && labelKey(i.labels) === key);
      if (!match) throw notFound(`--${flag} ${text}: no identity has exactly the labels ${formatLabels(labels)} (see "tendril identity list")`);
      return { side: { query: text, identity: match.id, labels: match.labels }, peer: { identity: match.id } };
    }
    try {
      parseCidr(text);
    } catch {
      throw invalid(`--${flag} "${text}" is neither labels (k=v,...), an endpoint id, nor an address or CIDR`);
    }
    return { side: { query: text, identity: 0, labels: {} }, peer: { address: text } };
  }

  private describeIdentity(id: number, labels: Labels): IdentityDescription {
    const kind = isEndpointIdentity(id) ? 'endpoint' : isCidrIdentity(id) ? 'cidr' : 'reserved';
    const endpoints = [...this.local.values()].filter((s) => s.identity === id).map((s) => s.ep.id);
    return { id, kind, labels, endpoints: endpoints.sort((a, b) => a - b) };
  }

  /** After the policy set changed: CIDR identities, then every endpoint. Returns the maps swapped. */
  private afterPolicyChange(): Promise<number> {
    this.refreshCidrs();
    return this.regenerate();
  }

  /** The CIDR identities follow the prefixes the policies name; their prefixes go into the ipcache. */
  private refreshCidrs(): void {
    const update = this.cidrs.update(referencedCidrs(this.repo.all()));
    if (update.added.length || update.removed.length || update.changed.length) {
      this.cidrFile.write({ prefixes: this.cidrs.prefixes() });
    }
    this.ipcache.replaceOwner(
      'cidr',
      'policies',
      this.cidrs.prefixes().map(({ prefix, id }) => ({ cidr: prefix, identity: id })),
    );
    this.resolverCache = undefined;
  }

  private resolver(): PolicyResolver {
    if (!this.resolverCache) {
      const byId = new Map<number, Identity>();
      for (const i of this.allocator.list()) byId.set(i.id, i);
      for (const i of this.cidrs.list()) byId.set(i.id, i);
      this.resolverCache = this.repo.resolver([...byId.values()]);
    }
    return this.resolverCache;
  }

  /**
   * Every endpoint's entries resolved afresh; changed ones swapped in in one
   * batch (one kernel grace period for all); then the generation bumped,
   * after every swap, so a re-check sees the new policy.
   */
  private async regenerate(): Promise<number> {
    this.resolverCache = undefined;
    const resolver = this.resolver();
    const changed: Array<[number, PolicyMapEntry[], string]> = [];
    for (const [id, state] of this.local) {
      const entries = resolver.entriesFor({ labels: state.ep.labels });
      const text = JSON.stringify(entries);
      if (text !== state.installed) changed.push([id, entries, text]);
    }
    await this.pushL7(resolver);
    for (const [id] of changed) this.local.get(id)!.installed = undefined; // unknown until the swap is done
    await this.datapath.installMany(changed.map(([id, entries]) => [id, entries]));
    for (const [id, , text] of changed) this.local.get(id)!.installed = text;
    this.datapath.bumpGeneration();
    return changed.length;
  }

  private buildL7Table(resolver: PolicyResolver): L7PolicyTable {
    const endpoints: L7EndpointPolicy[] = [];
    const ruleNames: Record<number, string> = {};
    for (const [id, state] of [...this.local].sort(([a], [b]) => a - b)) {
      const entries = resolver.resolve({ labels: state.ep.labels }).l7;
      if (entries.length === 0) continue;
      endpoints.push({ endpointId: id, entries });
      for (const e of entries) ruleNames[e.ruleId] ??= this.describeRule(e.ruleId) ?? `rule ${e.ruleId}`;
    }
    return { revision: this.l7Revision, endpoints, ruleNames };
  }

  /** Sends the L7 table to the sink when it changed (a new revision each time). */
  private async pushL7(resolver: PolicyResolver): Promise<void> {
    if (!this.l7Sink) return;
    const table = this.buildL7Table(resolver);
    const text = JSON.stringify({ endpoints: table.endpoints, ruleNames: table.ruleNames });
    if (text === this.l7Sent) return;
    this.l7Revision += 1;
    await this.l7Sink({ ...table, revision: this.l7Revision });
    this.l7Sent = text;
  }

  private async installFor(endpointId: number, resolver: PolicyResolver): Promise<boolean> {
    const state = this.local.get(endpointId)!;
    const entries = resolver.entriesFor({ labels: state.ep.labels });
    const text = JSON.stringify(entries);
    if (text === state.installed) return false;
    await this.pushL7(resolver);
    state.installed = undefined; // unknown until the swap is done
    await this.datapath.installAsync(endpointId, entries);
    state.installed = text;
    return true;
  }
}

function stepOf(t: DirectionTrace | undefined): TraceStepOutcome | undefined {
  if (!t) return undefined;
  return { direction: t.direction, verdict: t.verdict, ...(t.rule ? { rule: formatRuleRef(t.rule) } : {}), reason: t.reason };
}
