/** Errors of system calls, named the way Node names them (code "ENOENT"). */
import { getSystemErrorName } from 'node:util';
import { c } from './libc.js';

/** A failed system call: `code` is the errno name ("ENOENT"), `errno` its number. */
export class SysError extends Error {
  readonly code: string;
  constructor(
    message: string,
    readonly errno: number,
  ) {
    super(`${message}: ${describeErrno(errno)}`);
    this.name = 'SysError';
    this.code = errnoName(errno);
  }
}

/** "ENOENT" for 2; "E<n>" for numbers Node does not know. */
export function errnoName(errno: number): string {
  try {
    return getSystemErrorName(-Math.abs(errno));
  } catch {
    return `E${errno}`;
  }
}

/** "No such file or directory (ENOENT)": libc's text plus the stable name. */
export function describeErrno(errno: number): string {
  const n = Math.abs(errno);
  return `${c.strerror(n) as string} (${errnoName(n)})`;
}

