/**
 * tendril: the command line. Talks to the agent's REST API on its Unix socket.
 * Exit codes: 0 done, 1 the request failed (one line says why), 2 usage error.
 */
import { ApiClient, DEFAULT_SOCKET } from '../api/client.js';
import { TendrilError } from '../common/errors.js';
import { UsageError } from './args.js';
import { endpointCommand } from './commands/endpoint.js';
import { identityCommand } from './commands/identity.js';
import { mapCommand } from './commands/map.js';
import { monitorCommand } from './commands/monitor.js';
import { policyCommand } from './commands/policy.js';
import { serviceCommand } from './commands/service.js';
import { statusCommand } from './commands/status.js';

const USAGE = `usage: tendril [--socket PATH] COMMAND [-o json]
commands:
  status                                  agent, datapath, maps, endpoint count
  endpoint add --netns PATH [--labels k=v,...] [--port-map HOSTPORT:PORT[/PROTO]]...
  endpoint list | get ID | delete ID
  policy import FILE... | list | get NAME | delete NAME|--all
  policy trace --src LABELS|ID|CIDR --dst LABELS|ID --dport PORT[/PROTO]
  identity list | get ID
  service add --frontend ADDR:PORT[/PROTO] [--backend ADDR:PORT]... [--type T] [--node-port N]
              [--mode snat|dsr] [--affinity client-ip [--affinity-timeout 3h]]
  service list | get ID | delete ID
  service update ID [--backend B]... | [--add-backend B]... [--remove-backend B]... [--mode M] [--affinity A]
  monitor [--type drop|trace|policy|l7] [--endpoint ID]
  map list | dump NAME
The socket defaults to $TENDRIL_SOCKET or ${DEFAULT_SOCKET}.`;

const COMMANDS: Record<string, (client: ApiClient, argv: string[]) => Promise<void>> = {
  status: statusCommand,
  endpoint: endpointCommand,
  monitor: monitorCommand,
  map: mapCommand,
  policy: policyCommand,
  identity: identityCommand,
  service: serviceCommand,
};

export async function runCli(argv: string[]): Promise<number> {
  let socket = process.env.TENDRIL_SOCKET || DEFAULT_SOCKET;
  const args = [...argv];
  while (args[0]?.startsWith('--socket')) {
    const arg = args.shift()!;
    const value = arg.includes('=') ? arg.slice(arg.indexOf('=') + 1) : args.shift();
    if (!value) return usage('--socket needs a path', USAGE);
    socket = value;
  }
  const [command, ...rest] = args;
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE + '\n');
    return command ? 0 : 2;
  }
  const run = COMMANDS[command];
  if (!run) return usage(`unknown command "${command}"`, USAGE);
  try {
    await run(new ApiClient(socket), rest);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) return usage(err.message, err.usage);
    if (err instanceof TendrilError) {
      process.stderr.write(`tendril: ${err.message}\n`);
      return 1;
    }
    process.stderr.write(`tendril: ${(err as Error).message ?? String(err)}\n`);
    return 1;
  }
}

function usage(message: string, text: string): number {
  process.stderr.write(`tendril: ${message}\n${text}\n`);
  return 2;
}
