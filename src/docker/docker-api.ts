/**
 * The few Docker Engine API calls tendril-docker makes, over the daemon's
 * Unix socket: the event stream, the containers of a network, and one
 * container's inspect (its name, labels and endpoint ids).
 */
import { request, type IncomingMessage } from 'node:http';
import { TendrilError, invalid } from '../common/errors.js';

export interface ContainerInspect {
  Id: string;
  Name: string;
  Config?: { Labels?: Record<string, string> | null };
  NetworkSettings?: { Networks?: Record<string, { NetworkID?: string; EndpointID?: string }> | null };
}

export interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

/** The socket path of a --docker-host value (unix:///path, or a plain path). */
export function dockerSocketPath(host: string): string {
  if (host.startsWith('unix://')) host = host.slice('unix://'.length);
  if (!host.startsWith('/')) throw invalid(`--docker-host "${host}" is not unix:///PATH: tendril-docker talks to the daemon over its Unix socket`);
  return host;
}

export class DockerApi {
  constructor(readonly socketPath: string) {}

  /** Ids of the containers (any state) attached to a network. */
  async containersOn(networkId: string): Promise<string[]> {
    const filters = encodeURIComponent(JSON.stringify({ network: [networkId] }));
    const list = (await this.get(`/containers/json?all=1&filters=${filters}`)) as Array<{ Id: string }>;
    return list.map((c) => c.Id);
  }

  /** A container's inspect; undefined when it is gone. */
  async inspect(id: string): Promise<ContainerInspect | undefined> {
    try {
      return (await this.get(`/containers/${encodeURIComponent(id)}/json`)) as ContainerInspect;
    } catch (err) {
      if (err instanceof TendrilError && err.code === 'not-found') return undefined;
      throw err;
    }
  }

  /** Streams the network connect events until the stream ends or `signal` aborts. */
  async events(onEvent: (ev: DockerEvent) => void, signal: AbortSignal): Promise<void> {
    const filters = encodeURIComponent(JSON.stringify({ type: ['network'], event: ['connect'] }));
    const res = await this.open(`/events?filters=${filters}`, signal);
    if (res.statusCode !== 200) throw new TendrilError('unavailable', `docker events answered ${res.statusCode}`);
    let buffered = '';
    res.setEncoding('utf8');
    await new Promise<void>((resolve) => {
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let nl;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line) onEvent(JSON.parse(line) as DockerEvent);
        }
      });
      res.on('end', resolve);
      res.on('close', resolve);
      res.on('error', () => resolve());
    });
  }

  private async get(path: string): Promise<unknown> {
    const res = await this.open(path);
    let text = '';
    res.setEncoding('utf8');
    for await (const chunk of res) text += chunk;
    if (res.statusCode === 404) throw new TendrilError('not-found', `docker: ${path}: ${text.trim()}`);
    if ((res.statusCode ?? 500) >= 400) throw new TendrilError('unavailable', `docker: ${path} answered ${res.statusCode}: ${text.trim().slice(0, 200)}`);
    return JSON.parse(text);
  }

  private open(path: string, signal?: AbortSignal): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, method: 'GET', path, ...(signal ? { signal } : {}) }, resolve);
      req.on('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT' || err.code === 'ECONNREFUSED') reject(new TendrilError('unavailable', `cannot reach dockerd at ${this.socketPath}`));
        else reject(err);
      });
      req.end();
    });
  }
}
