/**
 * Entry of an L7 proxy worker process (dist/src/proxy/main.js), forked by the
 * agent's ProxySupervisor with an IPC channel. See worker.ts for the arguments.
 */
import { parseWorkerArgs, runWorker } from './worker.js';

try {
  await runWorker(parseWorkerArgs(process.argv.slice(2)));
} catch (err) {
  process.stderr.write(`tendril proxy worker: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
