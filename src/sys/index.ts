/**
 * The few libc calls Node lacks, through koffi. Each function is small, returns
 * plain values, and throws a SysError naming what it was asked for.
 */
import { c, lastErrno } from './libc.js';
import { SysError } from './errors.js';

export { SysError, errnoName, describeErrno } from './errors.js';
export { c as libc } from './libc.js';

/** The current errno, for callers of `libc` functions that returned -1. */
export const errno = lastErrno;

/** Interface index of a device in the current network namespace. */
export function ifNameToIndex(name: string): number {
  const index = c.ifNameToIndex(name) as number;
  if (index === 0) throw new SysError(`No network device "${name}" in this namespace`, lastErrno());
  return index;
}

const BPF_FS_MAGIC = 0xcafe4a11;

/** True when `path` is on a bpf filesystem (where pins can live). False if it does not exist. */
export function isBpffs(path: string): boolean {
  const buf = Buffer.alloc(120); // struct statfs on x86-64; f_type is the first long
  if ((c.statfs(path, buf) as number) !== 0) return false;
  return Number(buf.readBigInt64LE(0)) === BPF_FS_MAGIC;
}

/** Real user id of this process. */
export const getuid = (): number => c.getuid() as number;

const F_DUPFD_CLOEXEC = 1030;

/** A second descriptor of the same open file (close-on-exec), which outlives closing the first. */
export function dupFd(fd: number): number {
  const copy = c.fcntl(fd, F_DUPFD_CLOEXEC, 0) as number;
  if (copy < 0) throw new SysError(`Cannot duplicate fd ${fd}`, lastErrno());
  return copy;
}

/** Close a raw file descriptor; errors are ignored (used in cleanup paths only). */
export function closeFd(fd: number): void {
  if (fd >= 0) c.close(fd);
}

export { EpollWaiter } from './epoll.js';
export { netnsCookie, currentNetnsCookie } from './netns.js';
