/**
 * Port maps as users write them: "HOSTPORT:CONTAINERPORT[/TCP|/UDP]"
 * (TCP when left out, the protocol in any case), as `endpoint add
 * --port-map` and the API's "portMaps" take them. Every failure is one
 * invalid-argument line naming the value. Pure: no I/O.
 */
import { invalid } from '../common/errors.js';
import type { PortMap } from '../common/lb.js';

export function parsePortMap(text: string): PortMap {
  const m = /^(\d{1,5}):(\d{1,5})(?:\/([A-Za-z]+))?$/.exec(text.trim());
  if (!m) throw invalid(`port map "${text}" is not HOSTPORT:CONTAINERPORT[/TCP|UDP], such as 8080:80/TCP`);
  const protocol = (m[3] ?? 'TCP').toUpperCase();
  if (protocol !== 'TCP' && protocol !== 'UDP') throw invalid(`port map "${text}": protocol "${m[3]}" is not TCP or UDP`);
  const hostPort = Number(m[1]);
  const containerPort = Number(m[2]);
  for (const [what, port] of [['host port', hostPort], ['container port', containerPort]] as const)
    if (port < 1 || port > 65535) throw invalid(`port map "${text}": ${what} ${port} is not a port (1-65535)`);
  return { hostPort, containerPort, protocol };
}

/** Several port maps; a host port (with its protocol) may appear once. */
export function parsePortMaps(texts: readonly string[]): PortMap[] {
  const out: PortMap[] = [];
  for (const text of texts) {
    const m = parsePortMap(text);
    if (out.some((o) => o.hostPort === m.hostPort && o.protocol === m.protocol))
      throw invalid(`host port ${m.hostPort}/${m.protocol} is mapped twice: give each host port once`);
    out.push(m);
  }
  return out;
}

export function formatPortMap(m: PortMap): string {
  return `${m.hostPort}:${m.containerPort}/${m.protocol}`;
}
