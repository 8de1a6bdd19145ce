/** The agent's routes: validation here, work in the subsystems. */
import type { EndpointManager } from '../endpoint/manager.js';
import type { MonitorHub } from '../monitor/hub.js';
import type { NodeMaps } from '../datapath/node-maps.js';
import { dumpMap, listMaps } from '../datapath/map-views.js';
import { invalid } from '../common/errors.js';
import { AddEndpointBody, EndpointIdParam, MapNameParam, MonitorQuery, parse } from './schemas.js';
import type { ApiServer } from './server.js';
import type { AgentStatus } from './types.js';

export interface AgentServices {
  endpoints: EndpointManager;
  maps: NodeMaps;
  monitor: MonitorHub;
  status(): AgentStatus;
}

export function registerRoutes(api: ApiServer, svc: AgentServices): void {
  api
    .route('GET', '/v1/status', () => svc.status())
    .route('GET', '/v1/endpoints', () => svc.endpoints.list())
    .route('POST', '/v1/endpoints', ({ body }) => {
      if (body === undefined) throw invalid('POST /v1/endpoints needs a JSON body such as {"netns": "/run/netns/pod1"}');
      return svc.endpoints.add(parse(AddEndpointBody, body, 'endpoint'));
    })
    .route('GET', '/v1/endpoints/:id', ({ params }) => svc.endpoints.get(parse(EndpointIdParam, params.id, 'endpoint id')))
    .route('DELETE', '/v1/endpoints/:id', ({ params }) => svc.endpoints.delete(parse(EndpointIdParam, params.id, 'endpoint id')))
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
