/**
 * Links of node-wide programs, pinned under <node>/links/<group>/<program>
 * so the programs stay attached while no agent runs. An agent that starts
 * again swaps each pinned link's program in one bpf_link_update: nothing
 * ever runs without a program.
 */
import { existsSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { BpfLink, type BpfProgram, type LinkInfo } from '../bpf/index.js';

/**
 * Makes sure `prog` is attached through the link pinned at `pin`: a pinned
 * link that `fits` (the same target) gets the program in place; otherwise a
 * new one (`create`) is attached and pinned first, then an old one goes.
 */
export function attachPinned(pin: string, prog: BpfProgram, fits: (info: LinkInfo) => boolean, create: () => BpfLink): LinkInfo {
  const old = existsSync(pin) ? BpfLink.openPinned(pin) : undefined;
  try {
    if (old && fits(old.info())) {
      old.update(prog);
      return old.info();
    }
    using link = create();
    if (old) {
      rmSync(pin);
      old.detach();
    }
    link.pin(pin);
    return link.info();
  } finally {
    old?.close();
  }
}

/** The links pinned in `dir`, by file name. */
export function pinnedLinks(dir: string): Map<string, LinkInfo> {
  const out = new Map<string, LinkInfo>();
  if (!existsSync(dir)) return out;
  for (const name of readdirSync(dir)) {
    using link = BpfLink.openPinned(join(dir, name));
    out.set(name, link.info());
  }
  return out;
}

/** Detaches and unpins every link pinned in `dir`, then removes it; how many there were. */
export function detachPinned(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const name of readdirSync(dir)) {
    const pin = join(dir, name);
    using link = BpfLink.openPinned(pin);
    link.detach();
    rmSync(pin);
    n++;
  }
  rmSync(dir, { recursive: true, force: true });
  return n;
}
