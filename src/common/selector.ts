/**
 * Label selectors as Kubernetes and Cilium users write them (matchLabels +
 * matchExpressions), reduced to one list of requirements that must all hold.
 * Keys may carry a Cilium source prefix: "k8s:", "any:" and "container:" are
 * dropped (endpoint labels carry none), "reserved:" is kept because reserved
 * identities' labels are written that way.
 */
import { TendrilError } from './errors.js';
import { validateLabel, type Labels } from './labels.js';

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface Requirement {
  readonly key: string;
  readonly operator: SelectorOperator;
  /** Sorted, without duplicates; empty for Exists and DoesNotExist. */
  readonly values: readonly string[];
}

/** Every requirement must hold; no requirement selects every label set. */
export interface LabelSelector {
  readonly requirements: readonly Requirement[];
}

/** The label key that carries an endpoint's namespace. */
export const NAMESPACE_LABEL = 'io.kubernetes.pod.namespace';
/** Endpoint labels "io.cilium.k8s.namespace.labels.<k>" copy the labels of the endpoint's namespace. */
export const NAMESPACE_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.';
/** The label every Kubernetes namespace carries with its own name. */
export const NAMESPACE_NAME_LABEL = 'kubernetes.io/metadata.name';
export const RESERVED_PREFIX = 'reserved:';

const DROPPED_SOURCES = ['k8s:', 'any:', 'container:'];
const OPERATORS: readonly SelectorOperator[] = ['In', 'NotIn', 'Exists', 'DoesNotExist'];

/** A selector problem with the field it concerns, relative to the selector ("matchExpressions[0].values"). */
export class SelectorError extends TendrilError {
  constructor(
    readonly field: string,
    readonly problem: string,
  ) {
    super('invalid-argument', field ? `${field}: ${problem}` : problem);
  }
}

/** A key as written (maybe "k8s:app") to the key endpoint labels use ("app"); throws when it is no valid label key. */
export function normalizeSelectorKey(written: string): string {
  const dropped = DROPPED_SOURCES.find((p) => written.startsWith(p));
  const key = dropped ? written.slice(dropped.length) : written;
  const name = key.startsWith(RESERVED_PREFIX) ? key.slice(RESERVED_PREFIX.length) : key;
  validateLabel(name, '');
  return key;
}

/** A selector as written, already checked for shape (objects, lists, strings) by whoever read it. */
export interface SelectorSpec {
  matchLabels?: Readonly<Record<string, string>>;
  matchExpressions?: ReadonlyArray<{ key: string; operator: string; values?: readonly string[] }>;
}

function checkKey(written: string, field: string): string {
  try {
    return normalizeSelectorKey(written);
  } catch (err) {
    throw new SelectorError(field, (err as Error).message);
  }
}

function checkValue(key: string, value: string, field: string): string {
  const name = key.startsWith(RESERVED_PREFIX) ? key.slice(RESERVED_PREFIX.length) : key;
  try {
    validateLabel(name, value);
  } catch (err) {
    throw new SelectorError(field, (err as Error).message);
  }
  return value;
}

/**
 * Checks a selector's keys, values and operators (Kubernetes syntax) and
 * reduces it to requirements. Throws SelectorError naming the field.
 */
export function parseSelector(spec: SelectorSpec): LabelSelector {
  const requirements: Requirement[] = [];
  for (const [written, value] of Object.entries(spec.matchLabels ?? {})) {
    const field = `matchLabels.${written}`;
    const key = checkKey(written, field);
    requirements.push({ key, operator: 'In', values: [checkValue(key, value, field)] });
  }
  (spec.matchExpressions ?? []).forEach((expr, i) => {
    const field = `matchExpressions[${i}]`;
    const key = checkKey(expr.key, `${field}.key`);
    if (!OPERATORS.includes(expr.operator as SelectorOperator))
      throw new SelectorError(`${field}.operator`, `"${expr.operator}" is not an operator (In, NotIn, Exists or DoesNotExist)`);
    const operator = expr.operator as SelectorOperator;
    const values = (expr.values ?? []).map((v, j) => checkValue(key, v, `${field}.values[${j}]`));
    if ((operator === 'In' || operator === 'NotIn') && values.length === 0)
      throw new SelectorError(`${field}.values`, `operator ${operator} needs at least one value`);
    if ((operator === 'Exists' || operator === 'DoesNotExist') && values.length > 0)
      throw new SelectorError(`${field}.values`, `operator ${operator} takes no values`);
    requirements.push({ key, operator, values: [...new Set(values)].sort() });
  });
  return { requirements };
}

function requirementHolds(req: Requirement, labels: Labels): boolean {
  const has = Object.prototype.hasOwnProperty.call(labels, req.key);
  switch (req.operator) {
    case 'In':
      return has && req.values.includes(labels[req.key]!);
    case 'NotIn':
      // Kubernetes semantics: a missing key is "not in" any set.
      return !has || !req.values.includes(labels[req.key]!);
    case 'Exists':
      return has;
    case 'DoesNotExist':
      return !has;
  }
}

export function selectorMatches(selector: LabelSelector, labels: Labels): boolean {
  return selector.requirements.every((r) => requirementHolds(r, labels));
}

export function withRequirements(selector: LabelSelector, ...extra: Requirement[]): LabelSelector {
  return { requirements: [...selector.requirements, ...extra] };
}

/** One string per distinct meaning (requirement order does not matter), for caches. */
export function selectorKey(selector: LabelSelector): string {
  const parts = selector.requirements.map((r) => JSON.stringify([r.key, r.operator, r.values]));
  return [...new Set(parts)].sort().join(',');
}

/**
 * The labels a namespaceSelector sees for an endpoint, or undefined when the
 * endpoint is in no namespace: the namespace's name plus the namespace labels
 * copied onto the endpoint.
 */
export function namespaceLabelsOf(labels: Labels): Labels | undefined {
  const namespace = labels[NAMESPACE_LABEL];
  if (namespace === undefined) return undefined;
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(labels)) {
    if (key.startsWith(NAMESPACE_LABELS_PREFIX)) out[key.slice(NAMESPACE_LABELS_PREFIX.length)] = value;
  }
  out[NAMESPACE_NAME_LABEL] = namespace; // set by Kubernetes itself, so it wins over a copied label
  return out;
}

/**
 * A namespaceSelector rewritten over endpoint labels, so one index of
 * identity labels answers both kinds: it holds for exactly the endpoints
 * whose namespaceLabelsOf() the original selector matches.
 */
export function namespaceSelectorOverEndpoints(namespaceSelector: LabelSelector): LabelSelector {
  const requirements: Requirement[] = namespaceSelector.requirements.map((r) => ({
    ...r,
    key: r.key === NAMESPACE_NAME_LABEL ? NAMESPACE_LABEL : NAMESPACE_LABELS_PREFIX + r.key,
  }));
  requirements.push({ key: NAMESPACE_LABEL, operator: 'Exists', values: [] });
  return { requirements };
}

/** Requires the endpoint to be in `namespace`. */
export function inNamespace(namespace: string): Requirement {
  return { key: NAMESPACE_LABEL, operator: 'In', values: [namespace] };
}
