/** Where the built eBPF objects are, found from this module's own location. */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The repository root: the nearest ancestor of this module with a package.json (dist/src/bpf -> repo). */
export function repoRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`Cannot find the repository root above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
  root = dir;
  return dir;
}

/** Absolute path of build/bpf/<name>, e.g. bpfObjectPath('lxc.o') or bpfObjectPath('tests/passthrough.o'). */
export function bpfObjectPath(name: string): string {
  return resolve(repoRoot(), 'build', 'bpf', name);
}
