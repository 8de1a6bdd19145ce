/**
 * libnetwork's remote plugin protocol (docs/remote.md and docs/ipam.md of
 * moby/libnetwork) as tendril-docker speaks it: the calls Docker makes, each
 * a POST /Method with a JSON body, parsed and checked here; what goes back
 * is a JSON object, {"Err": "..."} for a failure. Pure: no I/O here.
 */

/** The content type of every answer (the plugin API's v1.2). */
export const PLUGIN_CONTENT_TYPE = 'application/vnd.docker.plugins.v1.2+json';

/** The address spaces of the IPAM driver: only the local one takes pools. */
export const LOCAL_ADDRESS_SPACE = 'tendril-local';
export const GLOBAL_ADDRESS_SPACE = 'tendril-global';
/** One pool per family: the node's pod range. */
export const POOL_IPV4 = 'tendril-ipv4';
export const POOL_IPV6 = 'tendril-ipv6';

/** Keys Docker puts into Options maps. */
export const OPTION_MAC = 'com.docker.network.endpoint.macaddress';
export const OPTION_ADDRESS_TYPE = 'RequestAddressType';
export const GATEWAY_ADDRESS_TYPE = 'com.docker.network.gateway';

/** RouteType of a static route in a Join answer: 1 = reached directly on the interface. */
export const ROUTE_CONNECTED = 1;

export class PluginError extends Error {}

export interface IpamData {
  addressSpace: string;
  pool: string;
  gateway: string;
}

export type PluginCall =
  | { method: 'Plugin.Activate' }
  | { method: 'NetworkDriver.GetCapabilities' }
  | { method: 'NetworkDriver.CreateNetwork'; networkId: string; ipv4Data: IpamData[]; ipv6Data: IpamData[] }
  | { method: 'NetworkDriver.DeleteNetwork'; networkId: string }
  | { method: 'NetworkDriver.CreateEndpoint'; networkId: string; endpointId: string; address: string; addressIPv6: string; macAddress: string }
  | { method: 'NetworkDriver.EndpointOperInfo'; networkId: string; endpointId: string }
  | { method: 'NetworkDriver.DeleteEndpoint'; networkId: string; endpointId: string }
  | { method: 'NetworkDriver.Join'; networkId: string; endpointId: string; sandboxKey: string }
  | { method: 'NetworkDriver.Leave'; networkId: string; endpointId: string }
  | { method: 'NetworkDriver.DiscoverNew' | 'NetworkDriver.DiscoverDelete' }
  | { method: 'NetworkDriver.ProgramExternalConnectivity' | 'NetworkDriver.RevokeExternalConnectivity'; networkId: string; endpointId: string }
  | { method: 'IpamDriver.GetCapabilities' | 'IpamDriver.GetDefaultAddressSpaces' }
  | { method: 'IpamDriver.RequestPool'; addressSpace: string; pool: string; subPool: string; v6: boolean }
  | { method: 'IpamDriver.ReleasePool'; poolId: string }
  | { method: 'IpamDriver.RequestAddress'; poolId: string; address: string; options: Record<string, string> }
  | { method: 'IpamDriver.ReleaseAddress'; poolId: string; address: string };

export type PluginMethod = PluginCall['method'];

/** Calls whose body carries nothing Tendril reads (Docker may send none at all). */
const NO_BODY = new Set<string>([
  'Plugin.Activate',
  'NetworkDriver.GetCapabilities',
  'NetworkDriver.DiscoverNew',
  'NetworkDriver.DiscoverDelete',
  'IpamDriver.GetCapabilities',
  'IpamDriver.GetDefaultAddressSpaces',
]);

export const METHODS: readonly PluginMethod[] = [
  'Plugin.Activate',
  'NetworkDriver.GetCapabilities',
  'NetworkDriver.CreateNetwork',
  'NetworkDriver.DeleteNetwork',
  'NetworkDriver.CreateEndpoint',
  'NetworkDriver.EndpointOperInfo',
  'NetworkDriver.DeleteEndpoint',
  'NetworkDriver.Join',
  'NetworkDriver.Leave',
  'NetworkDriver.DiscoverNew',
  'NetworkDriver.DiscoverDelete',
  'NetworkDriver.ProgramExternalConnectivity',
  'NetworkDriver.RevokeExternalConnectivity',
  'IpamDriver.GetCapabilities',
  'IpamDriver.GetDefaultAddressSpaces',
  'IpamDriver.RequestPool',
  'IpamDriver.ReleasePool',
  'IpamDriver.RequestAddress',
  'IpamDriver.ReleaseAddress',
];

type Json = Record<string, unknown>;

function isObject(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** A call from its method (the URL path without "/") and its body text. */
export function parseCall(method: string, body: string): PluginCall {
  if (!(METHODS as readonly string[]).includes(method)) throw new PluginError(`unknown method ${method}: tendril-docker serves ${METHODS.join(', ')}`);
  const m = method as PluginMethod;
  if (NO_BODY.has(m)) return { method: m } as PluginCall;
  let json: unknown;
  try {
    json = JSON.parse(body);
  } catch {
    throw new PluginError(`${m}: the body is not valid JSON`);
  }
  if (!isObject(json)) throw new PluginError(`${m}: the body must be a JSON object`);
  const r = new Reader(m, json);
  switch (m) {
    case 'NetworkDriver.CreateNetwork':
      return { method: m, networkId: r.id('NetworkID'), ipv4Data: r.ipamData('IPv4Data'), ipv6Data: r.ipamData('IPv6Data') };
    case 'NetworkDriver.DeleteNetwork':
      return { method: m, networkId: r.id('NetworkID') };
    case 'NetworkDriver.CreateEndpoint': {
      const iface = json.Interface ?? {};
      if (!isObject(iface)) throw new PluginError(`${m}: "Interface" must be an object`);
      const ir = new Reader(m, iface, 'Interface.');
      return {
        method: m,
        networkId: r.id('NetworkID'),
        endpointId: r.id('EndpointID'),
        address: ir.optString('Address'),
        addressIPv6: ir.optString('AddressIPv6'),
        macAddress: ir.optString('MacAddress'),
      };
    }
    case 'NetworkDriver.Join':
      return { method: m, networkId: r.id('NetworkID'), endpointId: r.id('EndpointID'), sandboxKey: r.string('SandboxKey') };
    case 'NetworkDriver.EndpointOperInfo':
    case 'NetworkDriver.DeleteEndpoint':
    case 'NetworkDriver.Leave':
    case 'NetworkDriver.ProgramExternalConnectivity':
    case 'NetworkDriver.RevokeExternalConnectivity':
      return { method: m, networkId: r.id('NetworkID'), endpointId: r.id('EndpointID') };
    case 'IpamDriver.RequestPool':
      return { method: m, addressSpace: r.string('AddressSpace'), pool: r.optString('Pool'), subPool: r.optString('SubPool'), v6: r.optBool('V6') };
    case 'IpamDriver.ReleasePool':
      return { method: m, poolId: r.string('PoolID') };
    case 'IpamDriver.RequestAddress':
      return { method: m, poolId: r.string('PoolID'), address: r.optString('Address'), options: r.stringMap('Options') };
    case 'IpamDriver.ReleaseAddress':
      return { method: m, poolId: r.string('PoolID'), address: r.string('Address') };
  }
  throw new PluginError(`${m}: not parsed`); // unreachable: every method with a body has its case
}

/** Field access with one clear message per wrong field. */
class Reader {
  constructor(
    readonly method: string,
    readonly json: Json,
    readonly prefix = '',
  ) {}

  private fail(key: string, what: string): never {
    throw new PluginError(`${this.method}: "${this.prefix}${key}" ${what}`);
  }

  string(key: string): string {
    const v = this.json[key];
    if (typeof v !== 'string' || v === '') this.fail(key, 'must be a non-empty string');
    return v;
  }

  /** Docker's 64-hex-digit network and endpoint ids. */
  id(key: string): string {
    const v = this.string(key);
    if (!/^[0-9a-f]{12,64}$/.test(v)) this.fail(key, `is not a Docker id: "${v.slice(0, 80)}"`);
    return v;
  }

  optString(key: string): string {
    const v = this.json[key];
    if (v === undefined || v === null) return '';
    if (typeof v !== 'string') this.fail(key, 'must be a string');
    return v;
  }

  optBool(key: string): boolean {
    const v = this.json[key];
    if (v === undefined || v === null) return false;
    if (typeof v !== 'boolean') this.fail(key, 'must be true or false');
    return v;
  }

  /** Options maps: Docker sends null for none; values that are not strings are not Tendril's. */
  stringMap(key: string): Record<string, string> {
    const v = this.json[key];
    if (v === undefined || v === null) return {};
    if (!isObject(v)) this.fail(key, 'must be an object');
    const out: Record<string, string> = {};
    for (const [k, val] of Object.entries(v)) if (typeof val === 'string') out[k] = val;
    return out;
  }

  ipamData(key: string): IpamData[] {
    const v = this.json[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) this.fail(key, 'must be a list');
    return v.map((item, i) => {
      if (!isObject(item)) this.fail(`${key}[${i}]`, 'must be an object');
      const r = new Reader(this.method, item, `${this.prefix}${key}[${i}].`);
      return { addressSpace: r.optString('AddressSpace'), pool: r.optString('Pool'), gateway: r.optString('Gateway') };
    });
  }
}

/** A failure as Docker reads it. */
export function errorAnswer(message: string): { Err: string } {
  return { Err: message };
}

/** What a Join answer needs to know of the endpoint. */
export interface JoinInfo {
  /** The pod side's temporary name in Docker's netns. */
  srcName: string;
  routerIPv4: string;
  routerIPv6: string;
  /** Docker configures IPv6 in the container (the network has it). */
  ipv6: boolean;
}

/** Container interfaces are named eth0, eth1, ... as Docker's own drivers name them. */
export const CONTAINER_IFNAME_PREFIX = 'eth';

/**
 * The Join answer: the link Docker moves into the sandbox, and the router as
 * gateway. Pod addresses are /32 and /128, so the router is not on any
 * subnet of the interface: a connected route to it comes first, which Docker
 * adds with the interface, before the default route via it.
 */
export function joinAnswer(info: JoinInfo): Json {
  const routes = [{ Destination: `${info.routerIPv4}/32`, RouteType: ROUTE_CONNECTED }];
  if (info.ipv6) routes.push({ Destination: `${info.routerIPv6}/128`, RouteType: ROUTE_CONNECTED });
  return {
    InterfaceName: { SrcName: info.srcName, DstPrefix: CONTAINER_IFNAME_PREFIX },
    Gateway: info.routerIPv4,
    ...(info.ipv6 ? { GatewayIPv6: info.routerIPv6 } : {}),
    StaticRoutes: routes,
    // The router is the gateway: no docker_gwbridge for these containers.
    DisableGatewayService: true,
  };
}
