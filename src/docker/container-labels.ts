/**
 * A Docker container's endpoint labels, under the keys the CNI path uses:
 * the container's name as io.kubernetes.pod.name (podman hands the CNI
 * plugin its name as K8S_POD_NAME), and every `docker run --label k=v` as
 * k=v. A Docker label Tendril cannot carry (a value longer than 63
 * characters, say) is left out and named, never fatal: the container runs.
 */
import { validateLabel, type Labels } from '../common/labels.js';

export const NAME_LABEL = 'io.kubernetes.pod.name';

export interface ContainerLabels {
  labels: Labels;
  /** Why each left-out label was left out. */
  skipped: string[];
}

export function containerLabels(name: string, dockerLabels: Record<string, string> | null | undefined): ContainerLabels {
  const labels: Record<string, string> = {};
  const skipped: string[] = [];
  const add = (key: string, value: string) => {
    try {
      validateLabel(key, value);
      labels[key] = value;
    } catch (err) {
      skipped.push((err as Error).message);
    }
  };
  for (const [key, value] of Object.entries(dockerLabels ?? {})) add(key, value);
  // Docker names start with "/"; the name wins over a label of the same key.
  const bare = name.replace(/^\//, '');
  if (bare) add(NAME_LABEL, bare);
  const sorted: Record<string, string> = {};
  for (const key of Object.keys(labels).sort()) sorted[key] = labels[key]!;
  return { labels: sorted, skipped };
}
