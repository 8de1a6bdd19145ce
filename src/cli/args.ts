/** Argument parsing for CLI commands: strict, and every mistake is a usage error (exit 2). */
import { parseArgs, type ParseArgsConfig } from 'node:util';

export class UsageError extends Error {
  constructor(
    message: string,
    readonly usage: string,
  ) {
    super(message);
  }
}

export type OutputFormat = 'table' | 'json';

export interface GlobalOptions {
  socket: string;
  output: OutputFormat;
}

type Options = NonNullable<ParseArgsConfig['options']>;

/** Parses a command's own flags plus -o/--output; positionals are checked by count. */
export function parseCommand<O extends Options>(
  argv: string[],
  usage: string,
  options: O,
  positionals: { min: number; max: number },
) {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: { ...options, output: { type: 'string', short: 'o' } } as O & { output: { type: 'string'; short: 'o' } },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional.*$/s, ''), usage);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  const output = values.output as string | undefined;
  if (output !== undefined && output !== 'json' && output !== 'table')
    throw new UsageError(`unknown output format "${output}" (use -o json or -o table)`, usage);
  if (parsed.positionals.length < positionals.min) throw new UsageError('missing argument', usage);
  if (parsed.positionals.length > positionals.max) throw new UsageError(`unexpected argument "${parsed.positionals[positionals.max]}"`, usage);
  return { values, positionals: parsed.positionals, output: (output ?? 'table') as OutputFormat };
}
