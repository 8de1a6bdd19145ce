import type { ApiClient } from '../../api/client.js';
import type { IdentityView } from '../../api/types.js';
import { UsageError, parseCommand } from '../args.js';
import { printFields, printJson, printTable } from '../output.js';

const USAGE = `usage: tendril identity list [-o json]
       tendril identity get ID [-o json]`;

/** Reserved labels have no value: show "reserved:host", not "reserved:host=". */
function labelText(labels: Record<string, string>): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => (labels[k] === '' ? k : `${k}=${labels[k]}`));
  return parts.join(',') || '-';
}

function printIdentity(i: IdentityView): void {
  printFields([
    ['ID', i.id],
    ['Kind', i.kind],
    ['Labels', labelText(i.labels)],
    ['Endpoints', i.endpoints.join(', ') || '-'],
  ]);
}

export async function identityCommand(client: ApiClient, argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'list') {
    const { output } = parseCommand(rest, USAGE, {}, { min: 0, max: 0 });
    const list = await client.listIdentities();
    if (output === 'json') return printJson(list);
    return printTable(
      ['ID', 'KIND', 'ENDPOINTS', 'LABELS'],
      list.map((i) => [i.id, i.kind, i.endpoints.join(',') || '-', labelText(i.labels)]),
    );
  }
  if (sub === 'get') {
    const { positionals, output } = parseCommand(rest, USAGE, {}, { min: 1, max: 1 });
    if (!/^\d+$/.test(positionals[0]!)) throw new UsageError(`identity ID must be a number, not "${positionals[0]}"`, USAGE);
    const i = await client.getIdentity(positionals[0]!);
    return output === 'json' ? printJson(i) : printIdentity(i);
  }
  throw new UsageError(sub ? `unknown identity command "${sub}"` : 'missing identity command', USAGE);
}
