/**
 * The cookie of a network namespace: the kernel's 64-bit id of it, the value
 * bpf_get_netns_cookie() returns for a socket there (SO_NETNS_COOKIE, Linux
 * >= 5.14). Node cannot ask for it: the calling thread joins the namespace
 * with setns(2), makes a socket, reads the cookie and goes back, all in one
 * synchronous call (no JavaScript runs while the thread is away; other
 * threads never move; inNetns). setns(CLONE_NEWNET) needs CAP_SYS_ADMIN.
 */
import { closeSync, openSync } from 'node:fs';
import { c, lastErrno } from './libc.js';
import { SysError } from './errors.js';

const CLONE_NEWNET = 0x40000000;
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SOL_SOCKET = 1;
const SO_NETNS_COOKIE = 71;

function openNs(path: string, what: string): number {
  try {
    return openSync(path, 'r');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new SysError(`Cannot open ${what} "${path}"`, Math.abs(e.errno ?? 2));
  }
}

/** The cookie of the calling thread's own network namespace. */
function cookieHere(): bigint {
  const fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) throw new SysError('socket(AF_UNIX)', lastErrno());
  try {
    const value = Buffer.alloc(8);
    const len = [8];
    if ((c.getsockopt(fd, SOL_SOCKET, SO_NETNS_COOKIE, value, len) as number) !== 0)
      throw new SysError('getsockopt(SO_NETNS_COOKIE)', lastErrno());
    return value.readBigUInt64LE(0);
  } finally {
    c.close(fd);
  }
}

/**
 * Runs `fn` (synchronous) on the calling thread inside the network namespace
 * at `netnsPath` (/run/netns/NAME, /proc/PID/ns/net). The thread is back in
 * its own namespace when this returns or throws.
 */
export function inNetns<T>(netnsPath: string, fn: () => T): T {
  const home = openNs('/proc/thread-self/ns/net', 'the current network namespace');
  try {
    const target = openNs(netnsPath, 'network namespace');
    try {
      if ((c.setns(target, CLONE_NEWNET) as number) !== 0) throw new SysError(`Cannot enter network namespace "${netnsPath}"`, lastErrno());
    } finally {
      closeSync(target);
    }
    try {
      return fn();
    } finally {
      if ((c.setns(home, CLONE_NEWNET) as number) !== 0) {
        // Staying in the pod's namespace would misroute everything this process does next.
        throw new SysError(`Cannot return from network namespace "${netnsPath}" to the original one`, lastErrno());
      }
    }
  } finally {
    closeSync(home);
  }
}

/** The cookie of the network namespace at `netnsPath`. */
export function netnsCookie(netnsPath: string): bigint {
  return inNetns(netnsPath, cookieHere);
}

/** The cookie of the calling thread's network namespace. */
export function currentNetnsCookie(): bigint {
  return cookieHere();
}
