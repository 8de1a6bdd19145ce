/** BpfError: a libbpf or bpf() failure that keeps the errno and the verifier log. */
import { describeErrno, errnoName } from '../sys/index.js';

const LOG_TAIL_LINES = 40;

export class BpfError extends Error {
  /** The errno name ("EACCES"), stable for callers to match on. */
  readonly code: string;
  readonly errno: number;
  /** The verifier's full log when the kernel rejected a program. */
  readonly verifierLog?: string;

  constructor(what: string, errno: number, verifierLog?: string) {
    const e = Math.abs(errno);
    let message = `${what}: ${describeErrno(e)}`;
    const log = verifierLog?.trim();
    if (log) {
      const lines = log.split('\n');
      const tail = lines.slice(-LOG_TAIL_LINES).join('\n');
      message += `\nverifier log${lines.length > LOG_TAIL_LINES ? ` (last ${LOG_TAIL_LINES} lines)` : ''}:\n${tail}`;
    }
    super(message);
    this.name = 'BpfError';
    this.code = errnoName(e);
    this.errno = e;
    if (log) this.verifierLog = log;
  }
}

/** Throws a BpfError when `ret` (a libbpf int return) is negative. */
export function check(ret: number, what: () => string): number {
  if (ret < 0) throw new BpfError(what(), -ret);
  return ret;
}

export const EINVAL = 22;
export const ENOENT = 2;
