/**
 * A policy document's metadata: its name and namespace. The other object
 * metadata fields kubectl prints (labels, uid, managedFields, ...) are
 * accepted and ignored, so `kubectl get -o yaml` output imports as is.
 */
import type { Field } from './field.js';

const DNS_SUBDOMAIN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

const IGNORED = [
  'labels',
  'annotations',
  'uid',
  'resourceVersion',
  'generation',
  'creationTimestamp',
  'deletionTimestamp',
  'deletionGracePeriodSeconds',
  'managedFields',
  'finalizers',
  'ownerReferences',
  'generateName',
  'selfLink',
] as const;

export interface Metadata {
  name: string;
  namespace: string | undefined;
}

export function readMetadata(field: Field, defaultNamespace: string | undefined): Metadata {
  const f = field.required().object({ known: ['name', 'namespace', ...IGNORED] });
  const name = f.name.required().string();
  if (name.length > 253 || !DNS_SUBDOMAIN.test(name))
    f.name.fail(`"${name}" is not a valid name (lowercase letters, digits, "-" and ".", at most 253)`);
  if (!f.namespace.present) return { name, namespace: defaultNamespace };
  const namespace = f.namespace.string();
  if (namespace.length > 63 || !DNS_LABEL.test(namespace))
    f.namespace.fail(`"${namespace}" is not a valid namespace (lowercase letters, digits and "-", at most 63)`);
  return { name, namespace };
}
