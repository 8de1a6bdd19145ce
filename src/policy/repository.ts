/**
 * The policies in force on this node, by key ("namespace/name", or "name"
 * when cluster-wide), persisted in the state directory. Every change is
 * all-or-nothing: it is written to disk first and only then becomes visible
 * and bumps the revision that listeners hear about. The documents are stored
 * as imported and parsed again on start, so a restart sees what was imported.
 */
import { conflict, notFound } from '../common/errors.js';
import type { Direction } from '../common/policy-entry.js';
import { StateFile } from '../node/state-file.js';
import type { IdentityLabels } from './identity-index.js';
import type { Policy, PolicyKind } from './model.js';
import { parsePolicyDocument } from './parse.js';
import { PolicyResolver } from './resolver.js';
import { RuleTable, ruleRefsOf, type RuleTableState } from './rule-table.js';

export interface PolicySummary {
  key: string;
  kind: PolicyKind;
  namespace: string | undefined;
  name: string;
  /** Cilium rules (spec/specs entries); 1 for a NetworkPolicy. */
  specs: number;
  /** Peer rules (ingress, egress, ingressDeny, egressDeny items). */
  rules: number;
  /** Directions the policy makes default-deny for the endpoints it selects. */
  directions: Direction[];
}

interface StoredState {
  revision: number;
  rules: RuleTableState;
  policies: Array<{ key: string; document: unknown }>;
}

export const POLICY_STATE_FILE = 'policies.json';

export function summarize(policy: Policy): PolicySummary {
  const directions = (['ingress', 'egress'] as const).filter((d) => policy.specs.some((s) => s.enforces[d]));
  return {
    key: policy.key,
    kind: policy.kind,
    namespace: policy.namespace,
    name: policy.name,
    specs: policy.specs.length,
    rules: policy.specs.reduce((n, s) => n + s.rules.length, 0),
    directions,
  };
}

export class PolicyRepository {
  private readonly file: StateFile<StoredState>;
  private policies = new Map<string, Policy>();
  private ruleTable: RuleTable;
  private revisionNumber = 0;
  private readonly listeners = new Set<(revision: number) => void>();

  constructor(stateDir: string) {
    this.file = new StateFile<StoredState>(stateDir, POLICY_STATE_FILE);
    const stored = this.file.read();
    this.ruleTable = new RuleTable(stored?.rules);
    if (!stored) return;
    this.revisionNumber = stored.revision;
    for (const { key, document } of stored.policies)
      this.policies.set(key, parsePolicyDocument(document, `${this.file.path}: policy "${key}"`));
  }

  get revision(): number {
    return this.revisionNumber;
  }

  /** Rule ids of the policies in force; give it to a resolver so ids stay stable. */
  get rules(): RuleTable {
    return this.ruleTable;
  }

  /** Adds the policies, replacing those with the same key; nothing changes if any step fails. */
  import(policies: readonly Policy[]): { revision: number; keys: string[] } {
    const seen = new Set<string>();
    for (const p of policies) {
      if (seen.has(p.key)) throw conflict(`policy "${p.key}" is given twice in one import`);
      seen.add(p.key);
    }
    const next = new Map(this.policies);
    for (const p of policies) next.set(p.key, p);
    this.commit(next);
    return { revision: this.revisionNumber, keys: policies.map((p) => p.key) };
  }

  /** Deletes by key, or by name when exactly one policy has it. */
  delete(nameOrKey: string): PolicySummary {
    const policy = this.find(nameOrKey);
    const next = new Map(this.policies);
    next.delete(policy.key);
    this.commit(next);
    return summarize(policy);
  }

  /** Deletes every policy; returns how many there were. */
  deleteAll(): number {
    const count = this.policies.size;
    if (count > 0) this.commit(new Map());
    return count;
  }

  list(): PolicySummary[] {
    return this.all().map(summarize);
  }

  get(nameOrKey: string): { document: unknown; summary: PolicySummary } {
    const policy = this.find(nameOrKey);
    return { document: policy.document, summary: summarize(policy) };
  }

  /** The policies in force, sorted by key. */
  all(): Policy[] {
    return [...this.policies.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  resolver(identities: readonly IdentityLabels[]): PolicyResolver {
    return new PolicyResolver(this.all(), identities, this.ruleTable);
  }

  /** Calls `listener(revision)` after every change; returns the function that stops it. */
  onChange(listener: (revision: number) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private find(nameOrKey: string): Policy {
    const exact = this.policies.get(nameOrKey);
    if (exact) return exact;
    const named = [...this.policies.values()].filter((p) => p.name === nameOrKey);
    if (named.length === 1) return named[0]!;
    if (named.length > 1)
      throw conflict(`policy name "${nameOrKey}" is ambiguous: give one of ${named.map((p) => `"${p.key}"`).join(', ')}`);
    throw notFound(`no policy "${nameOrKey}" (see \`tendril policy list\`)`);
  }

  private commit(next: Map<string, Policy>): void {
    const rules = new RuleTable(this.ruleTable.snapshot());
    const current = [...next.values()].flatMap(ruleRefsOf);
    for (const ref of current) rules.idOf(ref);
    rules.retain(current);
    const revision = this.revisionNumber + 1;
    const policies = [...next.values()].map((p) => ({ key: p.key, document: p.document }));
    this.file.write({ revision, rules: rules.snapshot(), policies });
    this.policies = next;
    this.ruleTable = rules;
    this.revisionNumber = revision;
    for (const listener of [...this.listeners]) listener(revision);
  }
}
