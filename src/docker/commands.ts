/**
 * The remote plugin's calls as the agent answers them (POST /v1/docker/plugin):
 * the IPAM driver hands out the node's pod addresses, the network driver
 * makes an endpoint whose pod side Docker moves into the container. The
 * agent's endpoints and its IPAM are the only state:
 *
 *   RequestAddress (v4, then v6)  reserve the pair under the MAC Docker chose
 *   CreateEndpoint                the endpoint, on those addresses, host side held down
 *   Join                          the link's name and the router as gateway
 *   (labels known)                relabel, host side up: see activator.ts
 *   Leave, DeleteEndpoint         the endpoint goes
 *   ReleaseAddress                the reservation goes
 */
import {
  GATEWAY_ADDRESS_TYPE,
  GLOBAL_ADDRESS_SPACE,
  LOCAL_ADDRESS_SPACE,
  OPTION_ADDRESS_TYPE,
  OPTION_MAC,
  POOL_IPV4,
  POOL_IPV6,
  PluginError,
  errorAnswer,
  joinAnswer,
  parseCall,
} from './protocol.js';

/** An endpoint made for Docker, as the calls need it. */
export interface DockerEndpointView {
  id: number;
  networkId: string;
  endpointId: string;
  /** The pod side's temporary name in the node netns (until Docker moves it). */
  ifname: string;
  hostIfname: string;
  mac: string;
  ipv4: string;
  ipv6: string;
  /** Docker configures IPv6 in the container. */
  ipv6Enabled: boolean;
}

/** What the calls need from the agent. */
export interface DockerBackend {
  ranges: { ipv4: string; ipv6: string };
  routerIPv4: string;
  routerIPv6: string;
  /** The addresses held for `owner`, reserved now if none are. */
  reserve(owner: string): Promise<{ ipv4: string; ipv6: string }>;
  /** The reservation holding `address`, if any. */
  reservationOf(address: string): string | undefined;
  /** Ends a reservation (not an error when there is none). */
  release(owner: string): Promise<void>;
  create(req: { networkId: string; endpointId: string; reservation: string; mac: string; ipv6: boolean }): Promise<DockerEndpointView>;
  find(endpointId: string): DockerEndpointView | undefined;
  remove(endpointId: string): Promise<void>;
  /** Removes what is left of a network's endpoints; how many there were. */
  removeNetwork(networkId: string): Promise<number>;
}

/** The reservation of one Docker endpoint's addresses: its MAC, which Docker hands to both RequestAddress calls and to CreateEndpoint. */
export function reservationOwner(mac: string): string {
  return `docker:${mac.toLowerCase()}`;
}

/** Answers one call; a failure is {"Err": ...}. */
export async function runPlugin(backend: DockerBackend, method: string, body: string): Promise<Record<string, unknown>> {
  try {
    return await answer(backend, method, body);
  } catch (err) {
    // Every failure names its call, as Docker's log shows the message alone.
    const message = (err as Error).message ?? String(err);
    const call = method.split('.').pop()!;
    return errorAnswer(message.startsWith(method) || message.startsWith(`${call}:`) || message.startsWith('unknown method') ? message : `${call}: ${message}`);
  }
}

async function answer(backend: DockerBackend, method: string, body: string): Promise<Record<string, unknown>> {
  const call = parseCall(method, body);
  switch (call.method) {
    case 'Plugin.Activate':
      return { Implements: ['NetworkDriver', 'IpamDriver'] };
    case 'NetworkDriver.GetCapabilities':
      return { Scope: 'local', ConnectivityScope: 'local' };
    case 'NetworkDriver.CreateNetwork': {
      // Endpoints get the node's pod addresses, which only Tendril's IPAM hands out.
      const spaces = [...call.ipv4Data, ...call.ipv6Data].map((d) => d.addressSpace);
      if (call.ipv4Data.length === 0 || spaces.some((s) => s !== LOCAL_ADDRESS_SPACE))
        throw new PluginError('a tendril network needs tendril IPAM: docker network create -d tendril --ipam-driver tendril NAME');
      return {};
    }
    case 'NetworkDriver.DeleteNetwork':
      await backend.removeNetwork(call.networkId);
      return {};
    case 'NetworkDriver.CreateEndpoint': {
      if (!call.address) throw new PluginError('CreateEndpoint: the endpoint has no IPv4 address: the network needs --ipam-driver tendril');
      const reservation = backend.reservationOf(call.address.split('/')[0]!);
      if (!reservation) throw new PluginError(`CreateEndpoint: ${call.address} was not handed out by tendril IPAM`);
      const mac = reservation.slice('docker:'.length);
      if (call.macAddress && call.macAddress.toLowerCase() !== mac)
        throw new PluginError(`CreateEndpoint: MAC ${call.macAddress} differs from ${mac}, the one the addresses were requested for`);
      await backend.create({ networkId: call.networkId, endpointId: call.endpointId, reservation, mac, ipv6: call.addressIPv6 !== '' });
      // Docker chose the MAC; an answer naming it again would be refused.
      return call.macAddress ? {} : { Interface: { MacAddress: mac } };
    }
    case 'NetworkDriver.EndpointOperInfo': {
      const ep = known(backend, call.endpointId);
      return { Value: { 'tendril.endpoint': ep.id, 'tendril.host-interface': ep.hostIfname } };
    }
    case 'NetworkDriver.DeleteEndpoint':
      known(backend, call.endpointId);
      await backend.remove(call.endpointId);
      return {};
    case 'NetworkDriver.Join': {
      const ep = known(backend, call.endpointId);
      return joinAnswer({ srcName: ep.ifname, routerIPv4: backend.routerIPv4, routerIPv6: backend.routerIPv6, ipv6: ep.ipv6Enabled });
    }
    case 'NetworkDriver.Leave':
      // Docker moves the link back out of the sandbox; DeleteEndpoint removes it.
      known(backend, call.endpointId);
      return {};
    case 'NetworkDriver.DiscoverNew':
    case 'NetworkDriver.DiscoverDelete':
    case 'NetworkDriver.ProgramExternalConnectivity':
    case 'NetworkDriver.RevokeExternalConnectivity':
      // Pods reach the world through the node's stack; nothing per endpoint to program.
      return {};
    case 'IpamDriver.GetCapabilities':
      // The MAC in every RequestAddress ties an endpoint's IPv4 and IPv6 requests together.
      return { RequiresMACAddress: true, RequiresRequestReplay: false };
    case 'IpamDriver.GetDefaultAddressSpaces':
      return { LocalDefaultAddressSpace: LOCAL_ADDRESS_SPACE, GlobalDefaultAddressSpace: GLOBAL_ADDRESS_SPACE };
    case 'IpamDriver.RequestPool': {
      if (call.addressSpace !== LOCAL_ADDRESS_SPACE) throw new PluginError(`RequestPool: address space "${call.addressSpace}" is not tendril's (${LOCAL_ADDRESS_SPACE}); tendril networks are local`);
      const range = call.v6 ? backend.ranges.ipv6 : backend.ranges.ipv4;
      if (call.pool && call.pool !== range) throw new PluginError(`RequestPool: tendril hands out this node's pod range ${range}: leave --subnet out (or give exactly ${range})`);
      if (call.subPool) throw new PluginError('RequestPool: tendril hands out the whole pod range: leave --ip-range out');
      return { PoolID: call.v6 ? POOL_IPV6 : POOL_IPV4, Pool: range, Data: {} };
    }
    case 'IpamDriver.ReleasePool':
      poolFamily(call.poolId);
      return {};
    case 'IpamDriver.RequestAddress': {
      const family = poolFamily(call.poolId);
      const router = family === 4 ? backend.routerIPv4 : backend.routerIPv6;
      const len = family === 4 ? 32 : 128;
      if (call.options[OPTION_ADDRESS_TYPE] === GATEWAY_ADDRESS_TYPE) {
        if (call.address && call.address !== router) throw new PluginError(`RequestAddress: the gateway is this node's router ${router}: leave --gateway out`);
        return { Address: `${router}/${len}`, Data: {} };
      }
      if (call.address) throw new PluginError(`RequestAddress: tendril chooses pod addresses: leave --ip/--ip6 out (asked for ${call.address})`);
      const mac = call.options[OPTION_MAC];
      if (!mac) throw new PluginError(`RequestAddress: Options lack ${OPTION_MAC}, which tendril asks for (RequiresMACAddress)`);
      const addrs = await backend.reserve(reservationOwner(mac));
      return { Address: `${family === 4 ? addrs.ipv4 : addrs.ipv6}/${len}`, Data: {} };
    }
    case 'IpamDriver.ReleaseAddress': {
      poolFamily(call.poolId);
      const ip = call.address.split('/')[0]!;
      if (ip === backend.routerIPv4 || ip === backend.routerIPv6) return {};
      // The IPv4 and IPv6 release of one endpoint end one reservation: the second finds none.
      const owner = backend.reservationOf(ip);
      if (owner) await backend.release(owner);
      return {};
    }
  }
}

function known(backend: DockerBackend, endpointId: string): DockerEndpointView {
  const ep = backend.find(endpointId);
  if (!ep) throw new PluginError(`endpoint ${endpointId} is not a tendril endpoint (see "tendril endpoint list")`);
  return ep;
}

function poolFamily(poolId: string): 4 | 6 {
  if (poolId === POOL_IPV4) return 4;
  if (poolId === POOL_IPV6) return 6;
  throw new PluginError(`unknown pool "${poolId}": tendril's pools are ${POOL_IPV4} and ${POOL_IPV6}`);
}
