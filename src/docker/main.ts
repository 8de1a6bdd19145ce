/**
 * tendril-docker: Docker's remote network and IPAM driver "tendril". Serves
 * the plugin socket Docker finds (/run/docker/plugins/tendril.sock, or a
 * spec file in /etc/docker/plugins naming another), forwards each call to
 * the node's agent, and applies containers' labels (activator.ts). Runs
 * until SIGTERM/SIGINT; holds no state, so a restart loses nothing.
 */
import { parseArgs } from 'node:util';
import { ApiClient, DEFAULT_SOCKET } from '../api/client.js';
import { Activator } from './activator.js';
import { DockerApi, dockerSocketPath } from './docker-api.js';
import { PluginServer } from './plugin-server.js';

export const DEFAULT_PLUGIN_SOCKET = '/run/docker/plugins/tendril.sock';
const USAGE = `usage: tendril-docker [--socket ${DEFAULT_PLUGIN_SOCKET}] [--agent-socket PATH (default: $TENDRIL_SOCKET or ${DEFAULT_SOCKET})]
                      [--docker-host unix:///var/run/docker.sock] [--verbose]`;

export async function runDockerPlugin(argv: string[]): Promise<number> {
  const fail = (message: string, code: number) => {
    process.stderr.write(`tendril-docker: ${message}\n`);
    return code;
  };
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        socket: { type: 'string', default: DEFAULT_PLUGIN_SOCKET },
        'agent-socket': { type: 'string' },
        'docker-host': { type: 'string', default: 'unix:///var/run/docker.sock' },
        verbose: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    return fail(`${(err as Error).message}\n${USAGE}`, 2);
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  if (!values.socket.startsWith('/')) return fail(`--socket "${values.socket}" must be an absolute path`, 2);
  let dockerSocket: string;
  try {
    dockerSocket = dockerSocketPath(values['docker-host']);
  } catch (err) {
    return fail((err as Error).message, 2);
  }
  const log = (line: string) => process.stdout.write(`tendril-docker: ${line}\n`);
  const agent = new ApiClient(values['agent-socket'] ?? process.env.TENDRIL_SOCKET ?? DEFAULT_SOCKET);
  const activator = new Activator(agent, new DockerApi(dockerSocket), log);
  const server = new PluginServer(agent, (method, answer) => {
    if ('Err' in answer) log(String(answer.Err));
    else if (values.verbose) log(`${method}: ${JSON.stringify(answer)}`);
    // A joined endpoint's container is named by the connect event; a pass now catches it sooner if that is lost.
    if (method === 'NetworkDriver.Join') activator.kick();
  });
  try {
    await server.listen(values.socket);
  } catch (err) {
    return fail(`cannot serve ${values.socket}: ${(err as Error).message}`, 1);
  }
  activator.start();
  log(`serving ${values.socket} (agent ${agent.socketPath}, dockerd ${dockerSocket})`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  activator.stop();
  await server.close();
  return 0;
}
