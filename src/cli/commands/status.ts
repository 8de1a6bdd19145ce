import type { ApiClient } from '../../api/client.js';
import { parseCommand } from '../args.js';
import { printFields, printJson } from '../output.js';

const USAGE = 'usage: tendril status [-o json]';

export async function statusCommand(client: ApiClient, argv: string[]): Promise<void> {
  const { output } = parseCommand(argv, USAGE, {}, { min: 0, max: 0 });
  const s = await client.status();
  if (output === 'json') return printJson(s);
  printFields([
    ['Agent', `running (node ${s.node}, pid ${s.pid}, version ${s.version}, up ${s.uptimeSec}s)`],
    ['Socket', s.socket],
    ['Pod ranges', `${s.podRanges.ipv4} ${s.podRanges.ipv6}`],
    ['Router', `${s.router.ipv4} ${s.router.ipv6}`],
    ['Datapath', `${s.datapath.programsAttached} programs attached, pinned at ${s.datapath.pinRoot}`],
    ['Maps', s.maps.map((m) => `${m.name} ${m.entries ?? '-'}/${m.maxEntries}`).join(', ')],
    ['Endpoints', s.endpoints],
    ['Prepared endpoints', `${s.preparedEndpoints.ready} of ${s.preparedEndpoints.target} loaded`],
    ['Policy', `${s.policy.policies} policies (revision ${s.policy.revision}), ${s.policy.identities} identities, generation ${s.policy.generation}`],
    ['Monitor', `${s.monitor.eventsReceived} events received, ${s.monitor.subscribers} listening`],
    [
      'Proxy redirection',
      s.proxyRedirect
        ? `${s.proxyRedirect.joined} sockets joined, ${s.proxyRedirect.redirected} messages socket to socket, ${s.proxyRedirect.usualWay} through TCP/IP`
        : 'off',
    ],
  ]);
}
