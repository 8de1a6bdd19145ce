/**
 * The agent's side of the CNI commands: an attachment is an endpoint made
 * by the endpoint manager with the attachment's key on it, so the agent's
 * endpoint state (persisted, restored after a restart) is the only record.
 */
import type { EndpointManager } from '../endpoint/manager.js';
import type { Endpoint } from '../endpoint/endpoint.js';
import { formatPortMap, parsePortMaps } from '../endpoint/port-map.js';
import { run } from '../link/exec.js';
import type { CniBackend } from './commands.js';
import type { EndpointNetworking } from './protocol.js';

export function agentCniBackend(endpoints: EndpointManager): CniBackend {
  const networking = (ep: Endpoint): EndpointNetworking => ({
    ifname: ep.ifname,
    mac: ep.podMac,
    netns: ep.netns,
    hostIfname: ep.hostIfname,
    hostMac: ep.hostMac,
    ipv4: ep.ipv4,
    ipv6: ep.ipv6,
    routerIPv4: endpoints.routerIPv4,
    routerIPv6: endpoints.routerIPv6,
  });
  return {
    async add(key, req) {
      const ep = await endpoints.add({
        netns: req.netns,
        ifname: key.ifname,
        labels: { ...req.labels },
        // The same checks as `endpoint add --port-map`.
        portMaps: parsePortMaps(req.portMappings.map(formatPortMap)),
        attachment: { network: key.network, containerId: key.containerId },
      });
      return networking(ep);
    },
    async find(key) {
      await endpoints.settled();
      const ep = endpoints.findAttachment(key.network, key.containerId, key.ifname);
      return ep && networking(ep);
    },
    async remove(key) {
      await endpoints.settled();
      const ep = endpoints.findAttachment(key.network, key.containerId, key.ifname);
      if (!ep) return false;
      await endpoints.delete(ep.id);
      return true;
    },
    async attachments(network) {
      await endpoints.settled();
      return endpoints
        .list()
        .filter((ep) => ep.attachment?.network === network)
        .map((ep) => ({ containerId: ep.attachment!.containerId, ifname: ep.ifname }));
    },
    async verify(ep) {
      let links: Array<{ ifname: string; address?: string; operstate?: string; addr_info?: Array<{ local: string; prefixlen: number }> }>;
      try {
        links = JSON.parse(await run('ip', ['-j', 'addr', 'show', 'dev', ep.ifname], { netns: ep.netns }));
      } catch (err) {
        return `${ep.ifname} is missing from ${ep.netns}: ${(err as Error).message}`;
      }
      const link = links[0];
      if (!link) return `${ep.ifname} is missing from ${ep.netns}`;
      if (link.address?.toLowerCase() !== ep.mac.toLowerCase()) return `${ep.ifname} has MAC ${link.address}, expected ${ep.mac}`;
      const have = new Set((link.addr_info ?? []).map((a) => `${a.local}/${a.prefixlen}`));
      for (const want of [ep.ipv4 && `${ep.ipv4}/32`, ep.ipv6 && `${ep.ipv6}/128`]) {
        if (want && !have.has(want)) return `${ep.ifname} lacks its address ${want}`;
      }
      for (const [family, router] of [['-4', ep.routerIPv4], ['-6', ep.routerIPv6]] as const) {
        if (!router) continue;
        const routes = JSON.parse(await run('ip', ['-j', family, 'route', 'show', 'default'], { netns: ep.netns })) as Array<{ gateway?: string; dev?: string }>;
        if (!routes.some((r) => r.gateway === router && r.dev === ep.ifname)) return `${ep.ifname} lost its default route via ${router}`;
      }
      return null;
    },
    unavailable() {
      return null;
    },
  };
}
