/**
 * Rule ids: the number a policy-map entry carries so the monitor and trace
 * can name the rule that decided ("web/allow-frontend ingress[1]"). A rule is
 * a policy's peer rule at a path; it keeps its id while the policy is
 * replaced, and ids are never reused, so an old event cannot name a new rule.
 */
import type { Direction, Verdict } from '../common/policy-entry.js';
import type { Policy } from './model.js';

export interface RuleRef {
  /** The policy's key, "namespace/name" or "name". */
  policy: string;
  /** Where the rule is in the policy document, e.g. "specs[0].ingress[1]". */
  path: string;
  direction: Direction;
  verdict: Verdict;
}

export interface RuleTableState {
  next: number;
  rules: Array<RuleRef & { id: number }>;
}

/** "x/allow-web ingress[1]": the policy and the rule's path, without a lone spec's "spec." prefix. */
export function formatRuleRef(ref: RuleRef): string {
  return `${ref.policy} ${ref.path.replace(/^spec\./, '')}`;
}

export function ruleRefsOf(policy: Policy): RuleRef[] {
  return policy.specs.flatMap((spec) =>
    spec.rules.map((rule) => ({ policy: policy.key, path: rule.path, direction: rule.direction, verdict: rule.verdict })),
  );
}

const keyOf = (ref: RuleRef) => `${ref.policy} ${ref.path}`;

export class RuleTable {
  private readonly byKey = new Map<string, number>();
  private readonly byId = new Map<number, RuleRef>();
  private next = 1;

  constructor(state?: RuleTableState) {
    if (!state) return;
    this.next = state.next;
    for (const { id, ...ref } of state.rules) {
      this.byKey.set(keyOf(ref), id);
      this.byId.set(id, ref);
    }
  }

  /** The rule's id, given a new one (>= 1) the first time. */
  idOf(ref: RuleRef): number {
    const key = keyOf(ref);
    let id = this.byKey.get(key);
    if (id === undefined) {
      id = this.next++;
      this.byKey.set(key, id);
      this.byId.set(id, { policy: ref.policy, path: ref.path, direction: ref.direction, verdict: ref.verdict });
    }
    return id;
  }

  ref(id: number): RuleRef | undefined {
    return this.byId.get(id);
  }

  /** Forgets every rule but `current` (the rules of the policies in force). */
  retain(current: readonly RuleRef[]): void {
    const keep = new Set(current.map(keyOf));
    for (const [id, ref] of this.byId) {
      if (keep.has(keyOf(ref))) continue;
      this.byId.delete(id);
      this.byKey.delete(keyOf(ref));
    }
  }

  snapshot(): RuleTableState {
    return { next: this.next, rules: [...this.byId].map(([id, ref]) => ({ id, ...ref })) };
  }
}
