/**
 * Endpoint labels: `key=value` pairs, Kubernetes-style syntax. A label set is
 * kept sorted so equal sets have equal string forms.
 */
import { invalid } from './errors.js';

export type Labels = Readonly<Record<string, string>>;

const KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/;
const VALUE = /^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$/;

export function validateLabel(key: string, value: string): void {
  if (key.length === 0 || key.length > 253 || !KEY.test(key))
    throw invalid(`label key "${key}" is invalid (letters, digits, "-", "_", "." and an optional "prefix/")`);
  if (value.length > 63 || !VALUE.test(value))
    throw invalid(`label value "${value}" of "${key}" is invalid (at most 63 letters, digits, "-", "_", ".")`);
}

/** Parses `k=v,k2=v2` (the CLI form). */
export function parseLabels(text: string): Labels {
  const out: Record<string, string> = {};
  if (text.trim() === '') return out;
  for (const item of text.split(',')) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw invalid(`label "${item}" must be written key=value`);
    const key = item.slice(0, eq).trim();
    const value = item.slice(eq + 1).trim();
    validateLabel(key, value);
    if (key in out) throw invalid(`label "${key}" is given twice`);
    out[key] = value;
  }
  return out;
}

export function normalizeLabels(labels: Record<string, string>): Labels {
  const out: Record<string, string> = {};
  for (const key of Object.keys(labels).sort()) {
    validateLabel(key, labels[key]!);
    out[key] = labels[key]!;
  }
  return out;
}

export function formatLabels(labels: Labels): string {
  return Object.keys(labels)
    .sort()
    .map((k) => `${k}=${labels[k]}`)
    .join(',');
}
