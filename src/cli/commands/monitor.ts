import type { ApiClient } from '../../api/client.js';
import { EVENT_TYPE_NAMES, formatEvent } from '../../monitor/event.js';
import { UsageError, parseCommand } from '../args.js';

const USAGE = 'usage: tendril monitor [--type drop|trace|policy|l7] [--endpoint ID] [-o json]';

/** Streams events until interrupted (Ctrl-C) or the agent stops. */
export async function monitorCommand(client: ApiClient, argv: string[]): Promise<void> {
  const { values, output } = parseCommand(argv, USAGE, { type: { type: 'string' }, endpoint: { type: 'string' } }, { min: 0, max: 0 });
  const type = values.type as string | undefined;
  const endpoint = values.endpoint as string | undefined;
  if (type !== undefined && !type.split(',').every((t) => (EVENT_TYPE_NAMES as readonly string[]).includes(t)))
    throw new UsageError(`unknown event type "${type}" (drop, trace, policy or l7; several with commas)`, USAGE);
  if (endpoint !== undefined && !/^\d+$/.test(endpoint)) throw new UsageError(`endpoint ID must be a number, not "${endpoint}"`, USAGE);
  const abort = new AbortController();
  process.once('SIGINT', () => abort.abort());
  process.once('SIGTERM', () => abort.abort());
  await client.monitor({ type, endpoint }, (ev) => {
    process.stdout.write((output === 'json' ? JSON.stringify(ev) : formatEvent(ev)) + '\n');
  }, abort.signal).catch((err: Error) => {
    if (!abort.signal.aborted) throw err;
  });
}
