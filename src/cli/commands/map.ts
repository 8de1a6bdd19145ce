import type { ApiClient } from '../../api/client.js';
import { UsageError, parseCommand } from '../args.js';
import { printJson, printTable } from '../output.js';

const USAGE = `usage: tendril map list [-o json]
       tendril map dump NAME [-o json]`;

export async function mapCommand(client: ApiClient, argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  if (sub === 'list') {
    const { output } = parseCommand(rest, USAGE, {}, { min: 0, max: 0 });
    const maps = await client.listMaps();
    if (output === 'json') return printJson(maps);
    return printTable(
      ['NAME', 'TYPE', 'ENTRIES', 'MAX', 'KEY', 'VALUE', 'PINNED'],
      maps.map((m) => [m.name, m.type, m.entries, m.maxEntries, m.keySize, m.valueSize, m.pinned]),
    );
  }
  if (sub === 'dump') {
    const { positionals, output } = parseCommand(rest, USAGE, {}, { min: 1, max: 1 });
    const rows = await client.dumpMap(positionals[0]!);
    if (output === 'json') return printJson(rows);
    if (rows.length === 0) return void process.stdout.write('(empty)\n');
    const headers = Object.keys(rows[0]!);
    return printTable(
      headers.map((h) => h.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()),
      rows.map((r) => headers.map((h) => r[h] as string)),
    );
  }
  throw new UsageError(sub ? `unknown map command "${sub}"` : 'missing map command', USAGE);
}
