/**
 * Runs iproute2 and friends, for what is not on an endpoint's hot path
 * (links, addresses and routes of endpoints go over netlink: rtnl.ts).
 */
import { execFile } from 'node:child_process';
import { TendrilError } from '../common/errors.js';

export interface RunOptions {
  /** Run inside this network namespace (a path such as /run/netns/NAME). */
  netns?: string;
  input?: string;
}

export function run(cmd: string, args: string[], options: RunOptions = {}): Promise<string> {
  const argv = options.netns ? ['nsenter', `--net=${options.netns}`, cmd, ...args] : [cmd, ...args];
  return new Promise((resolve, reject) => {
    const child = execFile(argv[0]!, argv.slice(1), { maxBuffer: 64 << 20 }, (err, stdout, stderr) => {
      if (err) {
        const detail = (stderr || err.message).trim().split('\n').slice(-3).join('; ');
        reject(new TendrilError('internal', `${argv.join(' ')} failed: ${detail}`));
      } else resolve(stdout);
    });
    // A command that fails early may close stdin first: its exit status tells why, not EPIPE.
    child.stdin!.on('error', () => undefined);
    if (options.input !== undefined) child.stdin!.end(options.input);
  });
}
