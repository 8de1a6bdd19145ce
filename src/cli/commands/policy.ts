import { readFileSync } from 'node:fs';
import type { ApiClient } from '../../api/client.js';
import type { PolicyTraceResult, TracePeer, TraceStep } from '../../api/types.js';
import { invalid } from '../../common/errors.js';
import { formatLabels } from '../../common/labels.js';
import { UsageError, parseCommand } from '../args.js';
import { printFields, printJson, printTable } from '../output.js';

const USAGE = `usage: tendril policy import FILE... [-o json]
       tendril policy list [-o json]
       tendril policy get NAME [-o json]
       tendril policy delete NAME | --all [-o json]
       tendril policy trace --src LABELS|ENDPOINT_ID|CIDR --dst LABELS|ENDPOINT_ID --dport PORT[/TCP|UDP|SCTP] [-o json]
Policies: CiliumNetworkPolicy (cilium.io/v2) and NetworkPolicy (networking.k8s.io/v1),
YAML or JSON, one or many documents per file. NAME is "name" or "namespace/name".`;

/** Reads every file first: a missing one fails the import before the agent sees any. */
function readPolicyFiles(paths: string[]): Array<{ file: string; text: string }> {
  return paths.map((file) => {
    try {
      return { file, text: readFileSync(file, 'utf8') };
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw invalid(`${file}: cannot read it (${code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'a directory' : (code ?? String(err))})`);
    }
  });
}

function peerText(p: TracePeer): string {
  const labels = formatLabels(p.labels) || '(no labels)';
  return `${p.query} -> identity ${p.identity} ${labels}${p.endpoint !== undefined ? `, endpoint ${p.endpoint}` : ''}`;
}

function stepText(s: TraceStep | undefined, what: string): string {
  if (!s) return `not applicable (${what} is outside the cluster)`;
  return `${s.verdict.toUpperCase()}: ${s.reason}`;
}

function printTrace(t: PolicyTraceResult): void {
  printFields([
    ['Source', peerText(t.source)],
    ['Destination', `${peerText(t.destination)}, port ${t.port}/${t.protocol.toUpperCase()}`],
    ['Egress', stepText(t.egress, 'the source')],
    ['Ingress', stepText(t.ingress, 'the destination')],
    ['Verdict', t.verdict.toUpperCase()],
  ]);
}

export async function policyCommand(client: ApiClient, argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'import': {
      const { positionals, output } = parseCommand(rest, USAGE, {}, { min: 1, max: 1000 });
      const result = await client.importPolicies(readPolicyFiles(positionals));
      if (output === 'json') return printJson(result);
      for (const p of result.imported) process.stdout.write(`imported ${p.kind} ${p.key} (${p.rules} rule${p.rules === 1 ? '' : 's'}; ${p.directions.join(', ') || 'no direction'})\n`);
      process.stdout.write(`revision ${result.revision}: ${result.endpointsUpdated} endpoint policies rebuilt and enforced\n`);
      return;
    }
    case 'list': {
      const { output } = parseCommand(rest, USAGE, {}, { min: 0, max: 0 });
      const list = await client.listPolicies();
      if (output === 'json') return printJson(list);
      if (list.length === 0) return void process.stdout.write('no policies: every endpoint is default-allow\n');
      return printTable(
        ['NAME', 'KIND', 'RULES', 'ENFORCES'],
        list.map((p) => [p.key, p.kind, p.rules, p.directions.join(',') || '-']),
      );
    }
    case 'get': {
      const { positionals, output } = parseCommand(rest, USAGE, {}, { min: 1, max: 1 });
      const p = await client.getPolicy(positionals[0]!);
      if (output === 'json') return printJson(p);
      printFields([
        ['Name', p.key],
        ['Kind', p.kind],
        ['Rules', p.rules],
        ['Enforces', p.directions.join(', ') || '-'],
      ]);
      process.stdout.write(`Document:\n${JSON.stringify(p.document, null, 2)}\n`);
      return;
    }
    case 'delete': {
      const { values, positionals, output } = parseCommand(rest, USAGE, { all: { type: 'boolean' } }, { min: 0, max: 1 });
      if (values.all && positionals.length > 0) throw new UsageError('give a NAME or --all, not both', USAGE);
      if (!values.all && positionals.length === 0) throw new UsageError('policy delete needs a NAME or --all', USAGE);
      const result = values.all ? await client.deleteAllPolicies() : await client.deletePolicy(positionals[0]!);
      if (output === 'json') return printJson(result);
      process.stdout.write(result.deleted.length ? `deleted ${result.deleted.join(', ')}\n` : 'no policies to delete\n');
      return;
    }
    case 'trace': {
      const { values, output } = parseCommand(rest, USAGE, { src: { type: 'string' }, dst: { type: 'string' }, dport: { type: 'string' } }, { min: 0, max: 0 });
      for (const flag of ['src', 'dst', 'dport'] as const) if (!values[flag]) throw new UsageError(`policy trace needs --${flag}`, USAGE);
      const t = await client.tracePolicy({ src: values.src as string, dst: values.dst as string, dport: values.dport as string });
      return output === 'json' ? printJson(t) : printTrace(t);
    }
    default:
      throw new UsageError(sub ? `unknown policy command "${sub}"` : 'missing policy command', USAGE);
  }
}
