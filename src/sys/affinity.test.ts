import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { allowedCpus, pinToCpu } from './affinity.js';

/** Cpus_allowed_list of /proc/<pid>/status expanded ("0-1,3" -> [0, 1, 3]). */
function kernelAllowed(pid: number | 'self'): number[] {
  const line = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]!;
  return line.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number);
    return Array.from({ length: (b ?? a!) - a! + 1 }, (_, i) => a! + i);
  });
}

describe('src/sys affinity', () => {
  it('allowedCpus() agrees with the kernel', () => {
    assert.deepEqual(allowedCpus(), kernelAllowed('self'));
  });

  it('pinToCpu() binds the calling process to that one CPU (in a child, so this process stays unbound)', () => {
    const cpu = allowedCpus().at(-1)!;
    const url = new URL('./affinity.js', import.meta.url).href;
    const out = execFileSync(process.execPath, [
      '--input-type=module',
      '-e',
      `const a = await import(${JSON.stringify(url)}); a.pinToCpu(${cpu}); console.log(JSON.stringify(a.allowedCpus()));`,
    ]).toString();
    assert.deepEqual(JSON.parse(out), [cpu]);
    assert.deepEqual(allowedCpus(), kernelAllowed('self'));
  });

  it('pinToCpu() refuses a CPU that cannot exist', () => {
    assert.throws(() => pinToCpu(-1), /no CPU -1/);
    assert.throws(() => pinToCpu(5000), /no CPU 5000/);
  });
});
