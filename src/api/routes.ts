/** The agent's routes: validation here, work in the subsystems. */
import type { EndpointManager } from '../endpoint/manager.js';
import type { PolicyEnforcement } from '../policy/enforcement.js';
import type { MonitorHub } from '../monitor/hub.js';
import type { NodeMaps } from '../datapath/node-maps.js';
import type { ServiceManager } from '../loadbalancer/manager.js';
import { dumpMap, listMaps } from '../datapath/map-views.js';
import { parsePortMaps } from '../endpoint/port-map.js';
import { TendrilError, invalid } from '../common/errors.js';
import { AddEndpointBody, AddServiceBody, EndpointIdParam, RelabelEndpointBody, IdentityIdParam, MapNameParam, MonitorQuery, PolicyImportBody, PolicyNameParam, PolicyTraceBody, ServiceIdParam, UpdateServiceBody, parse } from './schemas.js';
import type { ApiServer } from './server.js';
import type { AgentStatus, PolicySummaryView } from './types.js';
import type { PolicySummary } from '../policy/repository.js';

export interface AgentServices {
  endpoints: EndpointManager;
  maps: NodeMaps;
  policy: PolicyEnforcement;
  monitor: MonitorHub;
  /** Load balancing; absent until the agent runs it (the routes then answer 503). */
  services?: ServiceManager;
  status(): AgentStatus;
}

export function registerRoutes(api: ApiServer, svc: AgentServices): void {
  api
    .route('GET', '/v1/status', () => svc.status())
    .route('GET', '/v1/endpoints', () => svc.endpoints.list())
    .route('POST', '/v1/endpoints', ({ body }) => {
      if (body === undefined) throw invalid('POST /v1/endpoints needs a JSON body such as {"netns": "/run/netns/pod1"}');
      const req = parse(AddEndpointBody, body, 'endpoint');
      return svc.endpoints.add({ ...req, portMaps: parsePortMaps(req.portMaps ?? []) });
    })
    .route('GET', '/v1/endpoints/:id', ({ params }) => svc.endpoints.get(parse(EndpointIdParam, params.id, 'endpoint id')))
    .route('DELETE', '/v1/endpoints/:id', ({ params }) => svc.endpoints.delete(parse(EndpointIdParam, params.id, 'endpoint id')))
    .route('POST', '/v1/endpoints/:id/labels', ({ params, body }) => {
      const id = parse(EndpointIdParam, params.id, 'endpoint id');
      if (body === undefined) throw invalid('POST /v1/endpoints/ID/labels needs a JSON body such as {"set": {"org": "empire"}, "remove": ["class"]}');
      const change = parse(RelabelEndpointBody, body, 'labels');
      return svc.endpoints.relabel(id, { set: change.set ?? {}, remove: change.remove ?? [] });
    })
    .route('GET', '/v1/policies', () => svc.policy.listPolicies().map(policyView))
    .route('POST', '/v1/policies', async ({ body }) => {
      if (body === undefined) throw invalid('POST /v1/policies needs a JSON body such as {"files": [{"file": "web.yaml", "text": "..."}]}');
      const result = await svc.policy.importFiles(parse(PolicyImportBody, body, 'policy import').files);
      return { ...result, imported: result.imported.map(policyView) };
    })
    .route('DELETE', '/v1/policies', () => svc.policy.deleteAllPolicies())
    .route('GET', '/v1/policies/:name', ({ params }) => {
      const p = svc.policy.getPolicy(parse(PolicyNameParam, params.name, 'policy name'));
      return { ...policyView(p), document: p.document };
    })
    .route('DELETE', '/v1/policies/:name', ({ params }) => svc.policy.deletePolicy(parse(PolicyNameParam, params.name, 'policy name')))
    .route('POST', '/v1/policy-trace', ({ body }) => {
      if (body === undefined) throw invalid('POST /v1/policy-trace needs a JSON body such as {"src": "app=a", "dst": "app=b", "dport": "80/TCP"}');
      const q = parse(PolicyTraceBody, body, 'policy trace');
      return svc.policy.trace({ src: q.src, dst: q.dst, port: q.dport.port, protocol: q.dport.protocol });
    })
    .route('GET', '/v1/services', () => services(svc).list())
    .route('POST', '/v1/services', ({ body }) => {
      if (body === undefined) throw invalid('POST /v1/services needs a JSON body such as {"frontend": "10.96.0.10:80/TCP", "backends": ["10.200.1.5:8080"]}');
      return services(svc).add(parse(AddServiceBody, body, 'service'));
    })
    .route('GET', '/v1/services/:id', ({ params }) => services(svc).get(parse(ServiceIdParam, params.id, 'service id')))
    .route('PATCH', '/v1/services/:id', ({ params, body }) => {
      const id = parse(ServiceIdParam, params.id, 'service id');
      if (body === undefined) throw invalid('PATCH /v1/services/ID needs a JSON body such as {"addBackends": ["10.200.1.7:8080"]}');
      return services(svc).update(id, parse(UpdateServiceBody, body, 'service update'));
    })
    .route('DELETE', '/v1/services/:id', ({ params }) => services(svc).delete(parse(ServiceIdParam, params.id, 'service id')))
    .route('GET', '/v1/identities', () => svc.policy.identities())
    .route('GET', '/v1/identities/:id', ({ params }) => svc.policy.identity(parse(IdentityIdParam, params.id, 'identity')))
    .route('GET', '/v1/maps', () => listMaps(svc.maps))
    .route('GET', '/v1/maps/:name', ({ params }) => dumpMap(svc.maps, parse(MapNameParam, params.name, 'map name')))
    .route('GET', '/v1/monitor', ({ query, req, res }) => {
      const filter = parse(MonitorQuery, query, 'monitor query');
      if (filter.endpoint !== undefined) svc.endpoints.get(filter.endpoint); // unknown endpoint: 404 now, not silence
      res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
      res.flushHeaders();
      const unsubscribe = svc.monitor.subscribe({ types: filter.type, endpoint: filter.endpoint }, (ev) => {
        res.write(JSON.stringify(ev) + '\n');
      });
      req.socket.setKeepAlive(true);
      res.on('close', unsubscribe);
      return undefined;
    });
}

function services(svc: AgentServices): ServiceManager {
  if (!svc.services) throw new TendrilError('unavailable', 'load balancing is not running on this agent: services are unavailable');
  return svc.services;
}

/** The API's view of a policy summary: only what a user reads. */
function policyView(p: PolicySummary): PolicySummaryView {
  return { key: p.key, kind: p.kind, name: p.name, ...(p.namespace ? { namespace: p.namespace } : {}), rules: p.rules, directions: p.directions };
}
