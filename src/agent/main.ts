/**
 * tendril-agent: one per node. Checks its preconditions, then runs the Agent
 * until SIGTERM/SIGINT. Exit 1 with one line for anything the user can fix.
 */
import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { hostname } from 'node:os';
import { TendrilError } from '../common/errors.js';
import { DEFAULT_SOCKET } from '../api/client.js';

const USAGE = `usage: tendril-agent [--node NAME] [--state-dir DIR] [--socket PATH] [--bpffs DIR]
                     [--pod-cidr 10.200.0.0/24] [--pod-cidr6 fd10:200::/64] [--trace-all]
                     [--proxy-port 15080] [--proxy-workers N (default: one per two cores)]
                     [--maglev-size 16381 (a prime)] [--lb-cgroup DIR (default: the cgroup2 root)]
                     [--lb-interface DEV ... (XDP load balancing of NodePort/ExternalIP on DEV; repeatable)]
                     [--no-socket-lb (pods reach services per packet, not at connect())]
                     [--no-proxy-redirect (the L7 proxy's connections go through TCP/IP, not socket to socket)]
                     [--identity-linger 60 (seconds an identity outlives its last endpoint)]`;

function fail(message: string, code = 1): never {
  process.stderr.write(`tendril-agent: ${message}\n`);
  process.exit(code);
}

async function main(): Promise<void> {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        node: { type: 'string' },
        'state-dir': { type: 'string' },
        socket: { type: 'string' },
        bpffs: { type: 'string', default: '/sys/fs/bpf' },
        'pod-cidr': { type: 'string', default: '10.200.0.0/24' },
        'pod-cidr6': { type: 'string', default: 'fd10:200::/64' },
        'trace-all': { type: 'boolean', default: false },
        'proxy-port': { type: 'string', default: '15080' },
        'proxy-workers': { type: 'string' },
        'maglev-size': { type: 'string' },
        'lb-cgroup': { type: 'string' },
        'lb-interface': { type: 'string', multiple: true },
        'no-socket-lb': { type: 'boolean', default: false },
        'no-proxy-redirect': { type: 'boolean', default: false },
        'identity-linger': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`, 2);
  }
  if (values.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const node = values.node ?? hostname();
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(node)) fail(`node name "${node}" is invalid (letters, digits, "_", "-", ".")`, 2);
  const proxyPort = Number(values['proxy-port']);
  if (!/^\d+$/.test(values['proxy-port']) || proxyPort < 1 || proxyPort > 65535) fail(`--proxy-port "${values['proxy-port']}" is not a port (1-65535)`, 2);
  const proxyWorkers = values['proxy-workers'] === undefined ? undefined : Number(values['proxy-workers']);
  if (proxyWorkers !== undefined && !(/^\d+$/.test(values['proxy-workers']!) && proxyWorkers >= 1 && proxyWorkers <= 64))
    fail(`--proxy-workers "${values['proxy-workers']}" is not a number of workers (1-64)`, 2);
  const maglevSize = values['maglev-size'] === undefined ? undefined : Number(values['maglev-size']);
  if (maglevSize !== undefined && !/^\d+$/.test(values['maglev-size']!)) fail(`--maglev-size "${values['maglev-size']}" is not a number`, 2);
  const linger = values['identity-linger'];
  if (linger !== undefined && !(/^\d+$/.test(linger) && Number(linger) <= 86_400)) fail(`--identity-linger "${linger}" is not a number of seconds (0-86400)`, 2);
  const lbInterfaces = values['lb-interface'] ?? [];
  for (const dev of lbInterfaces) if (!/^[A-Za-z0-9_.:-]{1,15}$/.test(dev)) fail(`--lb-interface "${dev}" is not a network device name`, 2);
  if (new Set(lbInterfaces).size !== lbInterfaces.length) fail(`--lb-interface names a device twice: ${lbInterfaces.join(', ')}`, 2);
  if (process.getuid?.() !== 0) fail('must run as root: it loads BPF programs and creates network links');

  // Preconditions checked before the FFI layer is loaded, so each has its own clear line.
  if (!['/usr/lib/x86_64-linux-gnu/libbpf.so.1', '/usr/lib/aarch64-linux-gnu/libbpf.so.1', '/usr/lib/libbpf.so.1'].some(existsSync))
    fail('libbpf is missing: install Debian\'s libbpf1 (scripts/setup.sh does)');
  const { isBpffs } = await import('../sys/index.js');
  if (!isBpffs(values.bpffs)) fail(`${values.bpffs} is not a BPF filesystem: mount one with "mount -t bpf bpf ${values.bpffs}" or pass --bpffs DIR`);
  const { bpfObjectPath } = await import('../bpf/index.js');
  if (!existsSync(bpfObjectPath('lxc.o'))) fail(`datapath object ${bpfObjectPath('lxc.o')} is missing: run "npm run build" (needs clang-19)`);

  const { Agent } = await import('./agent.js');
  const log = (line: string) => process.stdout.write(`tendril-agent[${node}]: ${line}\n`);
  const agent = await Agent.start(
    {
      node,
      stateDir: values['state-dir'] ?? `/var/lib/tendril/${node}`,
      socket: values.socket ?? DEFAULT_SOCKET,
      bpffs: values.bpffs,
      podCidr4: values['pod-cidr'],
      podCidr6: values['pod-cidr6'],
      traceAll: values['trace-all'],
      proxyPort,
      ...(proxyWorkers !== undefined ? { proxyWorkers } : {}),
      ...(maglevSize !== undefined ? { maglevSize } : {}),
      ...(values['lb-cgroup'] !== undefined ? { lbCgroup: values['lb-cgroup'] } : {}),
      lbInterfaces,
      ...(values['no-socket-lb'] ? { noSocketLb: true } : {}),
      ...(values['no-proxy-redirect'] ? { noProxyRedirect: true } : {}),
      ...(linger !== undefined ? { identityLingerSec: Number(linger) } : {}),
    },
    log,
  );
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log(`${signal}: stopping (the datapath keeps running)`);
    void agent.stop().then(() => process.exit(0));
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err: unknown) => {
  if (err instanceof TendrilError) fail(err.message);
  const e = err as Error & { verifierLog?: string };
  fail(`${e.message ?? String(err)}`);
});
