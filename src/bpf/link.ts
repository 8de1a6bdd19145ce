/**
 * BpfLink: a bpf_link by fd. A link keeps its program attached while any fd or
 * pin of it exists; update() swaps the program atomically, with no moment in
 * which packets see none.
 */
import { closeFd } from '../sys/index.js';
import { bpf } from './libbpf.js';
import { BpfError, check } from './errors.js';
import { linkInfo, type LinkInfo } from './info.js';
import type { BpfProgram } from './program.js';

export class BpfLink {
  readonly id: number;
  private _fd: number;

  /** Takes ownership of `fd`; `what` names the attachment in messages. */
  constructor(fd: number, readonly what = `link fd ${fd}`) {
    this._fd = fd;
    this.id = linkInfo(fd).id;
  }

  get fd(): number {
    if (this._fd < 0) throw new BpfError(`${this.what} is closed`, 9 /* EBADF */);
    return this._fd;
  }

  static openPinned(path: string): BpfLink {
    const fd = bpf.objGet(path) as number;
    if (fd < 0) throw new BpfError(`Cannot open pinned link "${path}"`, -fd);
    try {
      return new BpfLink(fd, `link "${path}"`);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  /** Replaces the attached program in one step (bpf_link_update). */
  update(prog: BpfProgram): void {
    check(bpf.linkUpdate(this.fd, prog.fd, null) as number, () => `Cannot replace the program of ${this.what} with "${prog.name}"`);
  }

  pin(path: string): void {
    check(bpf.objPin(this.fd, path) as number, () => `Cannot pin ${this.what} at "${path}"`);
  }

  info(): LinkInfo {
    return linkInfo(this.fd);
  }

  /** Detaches the program now, even if pins or other fds of the link remain. */
  detach(): void {
    check(bpf.linkDetach(this.fd) as number, () => `Cannot detach ${this.what}`);
  }

  /** Closes our fd; the program stays attached if the link is pinned. */
  close(): void {
    if (this._fd >= 0) closeFd(this._fd);
    this._fd = -1;
  }

  [Symbol.dispose](): void {
    this.close();
  }
}
