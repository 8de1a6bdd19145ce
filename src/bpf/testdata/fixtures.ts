/**
 * Shared set-up for the privileged tests of src/bpf: a private bpffs, network
 * namespaces with a veth pair, and child processes run inside a namespace.
 * Everything made here has a unique name and a cleanup that also runs on failure.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Mounts a bpffs on a fresh temp dir; the returned cleanup unmounts and removes it. */
export function privateBpffs(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'tnd-bpffs-'));
  execFileSync('mount', ['-t', 'bpf', 'bpf', dir]);
  return {
    dir,
    cleanup: () => {
      spawnSync('umount', [dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const uniqueName = (prefix: string) => `${prefix}-${randomBytes(3).toString('hex')}`;

/** `ip -n ns ...` (ip netns exec would remount /sys; -n only switches the network namespace). */
export function ipIn(ns: string, ...args: string[]): void {
  execFileSync('ip', ['-n', ns, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
}

/**
 * Two namespaces joined by a veth pair: `a` in nsA (10.200.250.1/30), `b` in nsB (10.200.250.2/30).
 * Each device is named "veth0" inside its namespace.
 */
export function vethPair(): { nsA: string; nsB: string; cleanup: () => void } {
  const nsA = uniqueName('tndtest');
  const nsB = uniqueName('tndtest');
  const cleanup = () => {
    spawnSync('ip', ['netns', 'del', nsA]);
    spawnSync('ip', ['netns', 'del', nsB]);
  };
  try {
    execFileSync('ip', ['netns', 'add', nsA]);
    execFileSync('ip', ['netns', 'add', nsB]);
    ipIn(nsA, 'link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'peer0', 'netns', nsB);
    ipIn(nsB, 'link', 'set', 'peer0', 'name', 'veth0');
    ipIn(nsA, 'addr', 'add', '10.200.250.1/30', 'dev', 'veth0');
    ipIn(nsB, 'addr', 'add', '10.200.250.2/30', 'dev', 'veth0');
    for (const ns of [nsA, nsB]) {
      ipIn(ns, 'link', 'set', 'lo', 'up');
      ipIn(ns, 'link', 'set', 'veth0', 'up');
    }
  } catch (err) {
    cleanup();
    throw err;
  }
  return { nsA, nsB, cleanup };
}

/** Runs `node script args...` inside namespace `ns` (nsenter keeps /sys and our bpffs mounts). */
export function nodeIn(ns: string, script: string, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('nsenter', [`--net=/run/netns/${ns}`, process.execPath, script, ...args], {
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}
