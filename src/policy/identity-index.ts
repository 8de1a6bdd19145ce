/**
 * Identities indexed by label, so a selector is answered from the few
 * identities that carry one of its required labels instead of a scan of all
 * of them; each distinct selector is evaluated once.
 */
import { isEndpointIdentity } from '../common/identity.js';
import type { Labels } from '../common/labels.js';
import { selectorKey, selectorMatches, type LabelSelector } from '../common/selector.js';

export interface IdentityLabels {
  id: number;
  labels: Labels;
}

/** Which identities a selector may select: endpoint identities only, or every identity (reserved and CIDR too). */
export type Universe = 'endpoints' | 'all';

export class IdentityIndex {
  private readonly labelsById = new Map<number, Labels>();
  private readonly idsWithKey = new Map<string, number[]>();
  private readonly idsWithLabel = new Map<string, Map<string, number[]>>();
  private readonly allIds: number[];
  private readonly cache = new Map<string, readonly number[]>();

  constructor(readonly identities: readonly IdentityLabels[]) {
    for (const { id, labels } of identities) {
      this.labelsById.set(id, labels);
      for (const [key, value] of Object.entries(labels)) {
        push(this.idsWithKey, key, id);
        let byValue = this.idsWithLabel.get(key);
        if (!byValue) this.idsWithLabel.set(key, (byValue = new Map()));
        push(byValue, value, id);
      }
    }
    this.allIds = [...this.labelsById.keys()];
  }

  labelsOf(id: number): Labels | undefined {
    return this.labelsById.get(id);
  }

  /** The ids the selector matches within the universe, ascending. */
  select(selector: LabelSelector, universe: Universe): readonly number[] {
    const cacheKey = `${universe} ${selectorKey(selector)}`;
    let ids = this.cache.get(cacheKey);
    if (!ids) {
      ids = this.candidates(selector)
        .filter((id) => (universe === 'all' || isEndpointIdentity(id)) && selectorMatches(selector, this.labelsById.get(id)!))
        .sort((a, b) => a - b);
      this.cache.set(cacheKey, ids);
    }
    return ids;
  }

  /** The smallest list that must contain every match: from the rarest required label, else everything. */
  private candidates(selector: LabelSelector): number[] {
    let best: number[] = this.allIds;
    for (const r of selector.requirements) {
      let ids: number[] | undefined;
      if (r.operator === 'Exists') ids = this.idsWithKey.get(r.key) ?? [];
      else if (r.operator === 'In') {
        const byValue = this.idsWithLabel.get(r.key);
        ids = r.values.flatMap((v) => byValue?.get(v) ?? []);
      }
      if (ids && ids.length < best.length) best = ids;
    }
    return best; // an identity has one value per key, so the lists hold no duplicates
  }
}

function push<K>(map: Map<K, number[]>, key: K, id: number): void {
  const list = map.get(key);
  if (list) list.push(id);
  else map.set(key, [id]);
}
