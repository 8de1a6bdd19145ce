import type { ApiClient } from '../../api/client.js';
import type { ServiceView } from '../../api/types.js';
import { formatHostPort } from '../../common/ip.js';
import { UsageError, parseCommand } from '../args.js';
import { printFields, printJson, printTable } from '../output.js';

const USAGE = `usage: tendril service add --frontend ADDR:PORT[/TCP|UDP] [--backend ADDR:PORT]... [--type ClusterIP|NodePort|ExternalIP]
                           [--node-port N] [--mode snat|dsr] [--affinity none|client-ip] [--affinity-timeout 3h] [-o json]
       tendril service list [-o json]
       tendril service get ID [-o json]
       tendril service update ID [--backend ADDR:PORT]... | [--add-backend ADDR:PORT]... [--remove-backend ADDR:PORT]...
                              [--affinity none|client-ip] [--affinity-timeout 3h] [--mode snat|dsr] [-o json]
       tendril service delete ID [-o json]
IPv6 addresses go in brackets: [fd10:96::a]:80/TCP. --backend on update replaces the backend set;
a removed backend terminates: no new connections, open ones drain. HostPort services are endpoints'
port maps (endpoint add --port-map): they go with their endpoint.`;

function serviceId(text: string | undefined): string {
  if (!text || !/^\d+$/.test(text)) throw new UsageError(`service ID must be a number, not "${text ?? ''}"`, USAGE);
  return text;
}

function nodePort(text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  if (!/^\d+$/.test(text)) throw new UsageError(`--node-port must be a number, not "${text}"`, USAGE);
  return Number(text);
}

const list = (v: unknown) => v as string[] | undefined;
const str = (v: unknown) => v as string | undefined;

function affinityText(s: ServiceView): string {
  return s.affinity === 'none' ? 'none' : `client-ip ${formatSeconds(s.affinityTimeoutSec)}`;
}

/** 10800 -> "3h", 5400 -> "1h30m", 90 -> "1m30s". */
function formatSeconds(sec: number): string {
  const h = Math.floor(sec / 3600);
  const m = Math.floor((sec % 3600) / 60);
  const s = sec % 60;
  return `${h ? `${h}h` : ''}${m ? `${m}m` : ''}${s || sec === 0 ? `${s}s` : ''}`;
}

function typeText(s: ServiceView): string {
  if (s.type === 'HostPort') return `HostPort (${s.name ?? 'endpoint'})`;
  return s.nodePort !== undefined ? `${s.type}:${s.nodePort}` : s.type;
}


/** One row per backend; the service's own columns on its first row only. */
function printServices(services: ServiceView[]): void {
  const rows: Array<Array<string | number>> = [];
  for (const s of services) {
    const head = [s.id, s.frontend, typeText(s), s.mode, affinityText(s), `${s.activeBackends}/${s.backends.length}`];
    if (s.backends.length === 0) rows.push([...head, '-', '-', '-']);
    s.backends.forEach((b, i) => rows.push([...(i === 0 ? head : head.map(() => '')), formatHostPort(b.address, b.port), b.state, b.connections]));
  }
  printTable(['ID', 'FRONTEND', 'TYPE', 'MODE', 'AFFINITY', 'ACTIVE', 'BACKEND', 'STATE', 'CONNECTIONS'], rows);
}

function printService(s: ServiceView): void {
  printFields([
    ['ID', s.id],
    ['Frontend', s.frontend],
    ['Type', typeText(s)],
    ['Mode', s.mode],
    ['Affinity', affinityText(s)],
    ['Backends', s.backends.length === 0 ? 'none: connections are refused' : `${s.activeBackends} active of ${s.backends.length}`],
  ]);
  for (const b of s.backends) process.stdout.write(`  ${formatHostPort(b.address, b.port).padEnd(24)} ${b.state.padEnd(11)} ${b.connections} connections\n`);
}

export async function serviceCommand(client: ApiClient, argv: string[]): Promise<void> {
  const [sub, ...rest] = argv;
  switch (sub) {
    case 'add': {
      const { values, output } = parseCommand(
        rest,
        USAGE,
        {
          frontend: { type: 'string' },
          backend: { type: 'string', multiple: true },
          type: { type: 'string' },
          'node-port': { type: 'string' },
          mode: { type: 'string' },
          affinity: { type: 'string' },
          'affinity-timeout': { type: 'string' },
        },
        { min: 0, max: 0 },
      );
      if (!values.frontend) throw new UsageError('service add needs --frontend ADDR:PORT[/PROTO]', USAGE);
      const svc = await client.addService({
        frontend: values.frontend as string,
        backends: list(values.backend) ?? [],
        type: str(values.type),
        mode: str(values.mode),
        affinity: str(values.affinity),
        affinityTimeout: str(values['affinity-timeout']),
        nodePort: nodePort(str(values['node-port'])),
      });
      return output === 'json' ? printJson(svc) : printService(svc);
    }
    case 'list': {
      const { output } = parseCommand(rest, USAGE, {}, { min: 0, max: 0 });
      const services = await client.listServices();
      if (output === 'json') return printJson(services);
      if (services.length === 0) return void process.stdout.write('no services\n');
      return printServices(services);
    }
    case 'update': {
      const { values, positionals, output } = parseCommand(
        rest,
        USAGE,
        {
          backend: { type: 'string', multiple: true },
          'add-backend': { type: 'string', multiple: true },
          'remove-backend': { type: 'string', multiple: true },
          mode: { type: 'string' },
          affinity: { type: 'string' },
          'affinity-timeout': { type: 'string' },
        },
        { min: 1, max: 1 },
      );
      const id = serviceId(positionals[0]);
      if (values.backend && (values['add-backend'] || values['remove-backend']))
        throw new UsageError('give --backend (the whole set) or --add-backend/--remove-backend, not both', USAGE);
      const changes = {
        backends: list(values.backend),
        addBackends: list(values['add-backend']),
        removeBackends: list(values['remove-backend']),
        mode: str(values.mode),
        affinity: str(values.affinity),
        affinityTimeout: str(values['affinity-timeout']),
      };
      if (Object.values(changes).every((v) => v === undefined)) throw new UsageError('service update needs at least one change', USAGE);
      const svc = await client.updateService(id, changes);
      return output === 'json' ? printJson(svc) : printService(svc);
    }
    case 'get':
    case 'delete': {
      const { positionals, output } = parseCommand(rest, USAGE, {}, { min: 1, max: 1 });
      const id = serviceId(positionals[0]);
      const svc = sub === 'get' ? await client.getService(id) : await client.deleteService(id);
      if (output === 'json') return printJson(svc);
      if (sub === 'delete') return void process.stdout.write(`service ${svc.id} deleted (${svc.frontend})\n`);
      return printService(svc);
    }
    default:
      throw new UsageError(sub ? `unknown service command "${sub}"` : 'missing service command', USAGE);
  }
}
