/**
 * The agent's side of tendril-docker: Docker endpoints are endpoints of the
 * endpoint manager with a `docker` attachment, on addresses reserved by the
 * IPAM calls, so the agent's persisted endpoint state is the only record.
 *
 * A new endpoint is made held (EndpointManager: host side down, no
 * endpoints-map entry) until its container's labels are applied (activate):
 * Docker names the container only after Join, and until then no policy
 * written for its labels could select it. A held endpoint carries nothing
 * either way (no carrier out of the container; no program delivers to it),
 * so the container is never reachable, nor reaches anything, under an
 * identity that is not its own.
 */
import { notFound } from '../common/errors.js';
import type { Labels } from '../common/labels.js';
import type { Endpoint } from '../endpoint/endpoint.js';
import type { EndpointManager } from '../endpoint/manager.js';
import type { DockerBackend, DockerEndpointView } from './commands.js';

/** An endpoint whose container's labels are not applied yet. */
export interface PendingEndpoint {
  id: number;
  networkId: string;
  endpointId: string;
}

export interface AgentDockerBackend extends DockerBackend {
  pending(): Promise<PendingEndpoint[]>;
  /** Applies the container's labels and lets traffic through; an endpoint active already keeps its labels. */
  activate(endpointId: string, labels: Labels): Promise<Endpoint>;
}

/** The temporary name of the pod side in the node netns: unique per Docker endpoint, at most 15 characters. */
export function temporaryIfname(endpointId: string): string {
  return `tnd${endpointId.slice(0, 12)}`;
}

export function agentDockerBackend(endpoints: EndpointManager): AgentDockerBackend {
  const view = (ep: Endpoint): DockerEndpointView => ({
    id: ep.id,
    networkId: ep.docker!.networkId,
    endpointId: ep.docker!.endpointId,
    ifname: ep.ifname,
    hostIfname: ep.hostIfname,
    mac: ep.podMac,
    ipv4: ep.ipv4,
    ipv6: ep.ipv6,
    ipv6Enabled: ep.docker!.ipv6,
  });
  return {
    get ranges() {
      return endpoints.ranges;
    },
    get routerIPv4() {
      return endpoints.routerIPv4;
    },
    get routerIPv6() {
      return endpoints.routerIPv6;
    },
    reserve: (owner) => endpoints.reserveAddresses(owner),
    reservationOf: (address) => endpoints.reservationOf(address),
    async release(owner) {
      await endpoints.releaseAddresses(owner);
    },
    async create(req) {
      const ep = await endpoints.add({
        netns: '',
        peerInNodeNetns: true,
        ifname: temporaryIfname(req.endpointId),
        podMac: req.mac,
        reservation: req.reservation,
        docker: { networkId: req.networkId, endpointId: req.endpointId, ipv6: req.ipv6 },
        held: true,
      });
      return view(ep);
    },
    find(endpointId) {
      const ep = endpoints.findDocker(endpointId);
      return ep && view(ep);
    },
    async remove(endpointId) {
      const ep = endpoints.findDocker(endpointId);
      if (ep) await endpoints.delete(ep.id);
    },
    async removeNetwork(networkId) {
      const left = endpoints.list().filter((ep) => ep.docker?.networkId === networkId);
      for (const ep of left) await endpoints.delete(ep.id);
      return left.length;
    },
    async pending() {
      return endpoints
        .list()
        .filter((ep) => ep.docker && ep.held)
        .map((ep) => ({ id: ep.id, networkId: ep.docker!.networkId, endpointId: ep.docker!.endpointId }));
    },
    async activate(endpointId, labels) {
      const ep = endpoints.findDocker(endpointId);
      if (!ep) throw notFound(`Docker endpoint ${endpointId} is not a tendril endpoint`);
      return endpoints.unhold(ep.id, labels);
    },
  };
}
