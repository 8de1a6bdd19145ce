import type { ApiClient } from '../../api/client.js';
import { formatLabels, parseLabels } from '../../common/labels.js';
import type { Endpoint } from '../../endpoint/endpoint.js';
import { formatPortMap } from '../../endpoint/port-map.js';
import { UsageError, parseCommand } from '../args.js';
import { printFields, printJson, printTable } from '../output.js';

const USAGE = `usage: tendril endpoint add --netns PATH [--labels k=v,...] [--port-map HOSTPORT:PORT[/TCP|UDP]]... [-o json]
       tendril endpoint list [-o json]
       tendril endpoint get ID [-o json]
       tendril endpoint delete ID [-o json]
       tendril endpoint label ID [k=v ...] [--remove KEY]... [-o json]
--port-map 8080:80/TCP: any node address at 8080 reaches the pod's port 80 from outside the node.`;

function endpointId(text: string | undefined): string {
  if (!text || !/^\d+$/.test(text)) throw new UsageError(`endpoint ID must be a number, not "${text ?? ''}"`, USAGE);
  return text;
}

function printEndpoint(ep: Endpoint): void {
  printFields([
    ['ID', ep.id],
    ['Netns', ep.netns],
    ['Interface', `${ep.ifname} (${ep.podMac}), host side ${ep.hostIfname} ifindex ${ep.ifindex} (${ep.hostMac})`],
    ['IPv4', ep.ipv4],
    ['IPv6', ep.ipv6],
    ['Labels', formatLabels(ep.labels) || '-'],
    ['Identity', ep.identity],
    ['Port maps', portMapsText(ep)],
    ['Created', ep.createdAt],
  ]);
}

function portMapsText(ep: Endpoint): string {
  return ep.portMaps?.length ? ep.portMaps.map(formatPortMap).join(', ') : '-';
}

export async function endpointCommand(client: ApiClient, argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'add': {
      const { values, output } = parseCommand(rest, USAGE, { netns: { type: 'string' }, labels: { type: 'string' }, 'port-map': { type: 'string', multiple: true } }, { min: 0, max: 0 });
      if (!values.netns) throw new UsageError('endpoint add needs --netns PATH', USAGE);
      let labels;
      try {
        labels = parseLabels((values.labels as string | undefined) ?? '');
      } catch (err) {
        throw new UsageError((err as Error).message, USAGE);
      }
      // Port maps are checked by the agent: a bad one is a failed request (one line, exit 1), like a port in use.
      const portMaps = values['port-map'] as unknown as string[] | undefined;
      const ep = await client.addEndpoint({ netns: values.netns as string, labels, ...(portMaps ? { portMaps } : {}) });
      return output === 'json' ? printJson(ep) : printEndpoint(ep);
    }
    case 'list': {
      const { output } = parseCommand(rest, USAGE, {}, { min: 0, max: 0 });
      const eps = await client.listEndpoints();
      if (output === 'json') return printJson(eps);
      return printTable(
        ['ID', 'IPV4', 'IPV6', 'INTERFACE', 'LABELS', 'PORT MAPS', 'NETNS'],
        eps.map((e) => [e.id, e.ipv4, e.ipv6, e.hostIfname, formatLabels(e.labels) || '-', portMapsText(e), e.netns]),
      );
    }
    case 'label': {
      const { values, positionals, output } = parseCommand(rest, USAGE, { remove: { type: 'string', multiple: true } }, { min: 1, max: Infinity });
      const id = endpointId(positionals[0]);
      let set;
      try {
        set = parseLabels(positionals.slice(1).join(','));
      } catch (err) {
        throw new UsageError((err as Error).message, USAGE);
      }
      const remove = (values.remove as unknown as string[] | undefined) ?? [];
      if (Object.keys(set).length === 0 && remove.length === 0) throw new UsageError('endpoint label needs labels to set (k=v) or --remove KEY', USAGE);
      const ep = await client.relabelEndpoint(id, { set, remove });
      if (output === 'json') return printJson(ep);
      return void process.stdout.write(`endpoint ${ep.id}: labels ${formatLabels(ep.labels) || '-'}, identity ${ep.identity}\n`);
    }
    case 'get':
    case 'delete': {
      const { positionals, output } = parseCommand(rest, USAGE, {}, { min: 1, max: 1 });
      const id = endpointId(positionals[0]);
      const ep = sub === 'get' ? await client.getEndpoint(id) : await client.deleteEndpoint(id);
      if (output === 'json') return printJson(ep);
      if (sub === 'delete') return void process.stdout.write(`endpoint ${ep.id} deleted (${ep.ipv4}, ${ep.ipv6} released)\n`);
      return printEndpoint(ep);
    }
    default:
      throw new UsageError(sub ? `unknown endpoint command "${sub}"` : 'missing endpoint command', USAGE);
  }
}
