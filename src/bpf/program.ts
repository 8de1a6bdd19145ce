/**
 * BpfProgram: one loaded program by fd. Programs of a BpfObject belong to it
 * (close() is a no-op on them); programs opened from a pin own their fd.
 */
import { closeFd } from '../sys/index.js';
import { bpf } from './libbpf.js';
import { BpfError, check } from './errors.js';
import { progInfo } from './info.js';
import { testRun, type TestRunOptions, type TestRunResult } from './testrun.js';

export class BpfProgram {
  readonly name: string;
  readonly id: number;
  /** enum bpf_prog_type (3 sched_cls, 6 xdp, ...). */
  readonly type: number;
  private _fd: number;

  /** Use BpfObject.program() or BpfProgram.openPinned(). */
  constructor(fd: number, private readonly owned: boolean, name?: string) {
    this._fd = fd;
    const info = progInfo(fd);
    this.name = name ?? info.name;
    this.id = info.id;
    this.type = info.type;
  }

  get fd(): number {
    if (this._fd < 0) throw new BpfError(`Program "${this.name}" is closed`, 9 /* EBADF */);
    return this._fd;
  }

  static openPinned(path: string): BpfProgram {
    const fd = bpf.objGet(path) as number;
    if (fd < 0) throw new BpfError(`Cannot open pinned program "${path}"`, -fd);
    try {
      return new BpfProgram(fd, true);
    } catch (err) {
      closeFd(fd);
      throw err;
    }
  }

  /** Instructions the verifier processed to load it (bpf_prog_info.verified_insns): what loading costs. */
  verifiedInsns(): number {
    return progInfo(this.fd).verifiedInsns;
  }

  /** Runs the program once (or `repeat` times) on `data` through BPF_PROG_TEST_RUN. */
  testRun(o: TestRunOptions): TestRunResult {
    return testRun(this.fd, this.name, o);
  }

  pin(path: string): void {
    check(bpf.objPin(this.fd, path) as number, () => `Cannot pin program "${this.name}" at "${path}"`);
  }

  close(): void {
    if (this.owned && this._fd >= 0) {
      closeFd(this._fd);
      this._fd = -1;
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Called by the owning BpfObject when it closes. */
  invalidate(): void {
    this._fd = -1;
  }
}
