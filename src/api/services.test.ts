/**
 * The service routes over a real Unix socket with the typed client: the API
 * layer's validation, status codes and the 503 without a load balancer. The
 * manager behind them runs over a minimal in-memory LbDatapath (the control
 * path is under test here, not the maps).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LbDatapath } from '../common/lb.js';
import { TendrilError } from '../common/errors.js';
import { ServiceManager } from '../loadbalancer/manager.js';
import { ApiClient } from './client.js';
import { registerRoutes, type AgentServices } from './routes.js';
import { ApiServer } from './server.js';

const datapath: LbDatapath = {
  maglevSize: 1021,
  setBackend() {},
  deleteBackend() {},
  setMaglev() {},
  deleteMaglev() {},
  setFrontend() {},
  deleteFrontend() {},
  backendConnections: () => new Map([[1, 5]]),
};

let dir: string;
let manager: ServiceManager;
const servers: ApiServer[] = [];

async function serve(services: ServiceManager | undefined, name: string): Promise<ApiClient> {
  const api = new ApiServer();
  registerRoutes(api, { services } as unknown as AgentServices); // only the service routes are called
  const socket = join(dir, name);
  await api.listen(socket);
  servers.push(api);
  return new ApiClient(socket);
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tendril-api-svc-'));
  manager = new ServiceManager(datapath, { stateDir: dir, podCidrs: ['10.200.1.0/24'] });
  await manager.restore();
});
after(async () => {
  for (const s of servers) await s.close();
  manager.close();
  rmSync(dir, { recursive: true, force: true });
});

const failsWith = (p: Promise<unknown>, code: string, pattern: RegExp) =>
  assert.rejects(p, (e: unknown) => e instanceof TendrilError && e.code === code && pattern.test(e.message));

test('add, get, list, update and delete a service through the API', async () => {
  const client = await serve(manager, 'a.sock');
  const svc = await client.addService({ frontend: '10.96.0.10:80/TCP', backends: ['10.200.2.5:8080', '10.200.2.6:8080'], affinity: 'client-ip' });
  assert.equal(svc.id, 1);
  assert.equal(svc.affinityTimeoutSec, 10800);
  assert.deepEqual(svc.backends[0], { address: '10.200.2.5', port: 8080, state: 'active', connections: 5 });
  assert.deepEqual(await client.getService(1), svc);
  assert.deepEqual(await client.listServices(), [svc]);
  const updated = await client.updateService(1, { removeBackends: ['10.200.2.5:8080'] });
  assert.equal(updated.activeBackends, 1);
  assert.equal(updated.backends[0]!.state, 'terminating');
  const gone = await client.deleteService(1);
  assert.equal(gone.frontend, '10.96.0.10:80/TCP');
  assert.deepEqual(await client.listServices(), []);
});

test('errors keep their code: 400 bad input, 404 unknown id, 409 conflict', async () => {
  const client = await serve(manager, 'b.sock');
  await client.addService({ frontend: '10.96.0.20:80' });
  await failsWith(client.addService({ frontend: '10.96.0.20:80' }), 'conflict', /frontend 10\.96\.0\.20:80\/TCP is used by service \d+ already/);
  await failsWith(client.addService({ frontend: '10.200.1.9:80' }), 'invalid-argument', /inside the node's pod range 10\.200\.1\.0\/24/);
  await failsWith(client.call('POST', '/v1/services', { frontend: '10.96.0.21:80', colour: 'red' }), 'invalid-argument', /invalid service: unknown field\(s\) "colour"/);
  await failsWith(client.call('POST', '/v1/services'), 'invalid-argument', /needs a JSON body/);
  await failsWith(client.call('PATCH', '/v1/services/1'), 'invalid-argument', /needs a JSON body/);
  await failsWith(client.getService(4242), 'not-found', /service 4242 does not exist/);
  await failsWith(client.updateService(4242, { mode: 'snat' }), 'not-found', /service 4242 does not exist/);
  await failsWith(client.getService('x'), 'invalid-argument', /a service id is a number/);
});

test('without a load balancer the service routes answer 503 with one line', async () => {
  const client = await serve(undefined, 'c.sock');
  await failsWith(client.listServices(), 'unavailable', /load balancing is not running on this agent/);
  await failsWith(client.addService({ frontend: '10.96.0.10:80' }), 'unavailable', /not running/);
});
