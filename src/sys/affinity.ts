/**
 * CPU affinity of the calling process (sched_getaffinity/sched_setaffinity):
 * Node has no binding for it. Workers that each own a core stay on it, so the
 * scheduler does not stack two of them on one CPU while another idles.
 */
import { c, lastErrno } from './libc.js';
import { SysError } from './errors.js';

/** Room for 1024 CPUs, glibc's cpu_set_t. */
const MASK_BYTES = 128;

/** The CPUs this process may run on, in ascending order. */
export function allowedCpus(): number[] {
  const mask = Buffer.alloc(MASK_BYTES);
  if ((c.schedGetaffinity(0, MASK_BYTES, mask) as number) !== 0) throw new SysError('sched_getaffinity', lastErrno());
  const cpus: number[] = [];
  for (let i = 0; i < MASK_BYTES * 8; i++) if (mask[i >> 3]! & (1 << (i & 7))) cpus.push(i);
  return cpus;
}

/** Binds the calling process to one CPU. */
export function pinToCpu(cpu: number): void {
  if (!Number.isInteger(cpu) || cpu < 0 || cpu >= MASK_BYTES * 8) throw new Error(`pinToCpu: no CPU ${cpu}`);
  const mask = Buffer.alloc(MASK_BYTES);
  mask[cpu >> 3] = 1 << (cpu & 7);
  if ((c.schedSetaffinity(0, MASK_BYTES, mask) as number) !== 0) throw new SysError(`sched_setaffinity cpu ${cpu}`, lastErrno());
}
