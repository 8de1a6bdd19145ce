/**
 * Endpoints' port maps as HostPort services: one nodeport-scope frontend per
 * map and pod family, the pod as its one backend; conflicts with NodePort
 * services and other port maps; owned by the endpoint (not changeable
 * through the service calls); restored and pruned. The datapath is a
 * recording fake of LbDatapath; the real maps are tested in src/datapath.
 */
import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FrontendEntry, LbDatapath, PortMap } from '../common/lb.js';
import { ServiceManager } from './manager.js';

function fakeDatapath() {
  const frontends = new Map<string, FrontendEntry>();
  const backends = new Map<number, string>();
  const dp: LbDatapath = {
    maglevSize: 1021,
    setBackend: (b) => void backends.set(b.id, `${b.address}:${b.port}/${b.protocol}`),
    deleteBackend: (id) => void backends.delete(id),
    setMaglev: () => undefined,
    deleteMaglev: () => undefined,
    setFrontend: (f) => void frontends.set(`${f.scope} ${f.frontend.address}:${f.frontend.port}/${f.frontend.protocol}`, f),
    deleteFrontend: (f, scope) => void frontends.delete(`${scope} ${f.address}:${f.port}/${f.protocol}`),
    backendConnections: () => new Map(),
  };
  return { dp, frontends, backends };
}

let dir: string;
const open: ServiceManager[] = [];

async function started(dp: LbDatapath): Promise<ServiceManager> {
  const m = new ServiceManager(dp, { stateDir: dir, podCidrs: ['10.200.1.0/24', 'fd10:200:0:1::/64'] });
  open.push(m);
  await m.restore();
  return m;
}

const web: PortMap = { hostPort: 8080, containerPort: 80, protocol: 'TCP' };
const dns: PortMap = { hostPort: 5353, containerPort: 53, protocol: 'UDP' };
const pod = ['10.200.1.5', 'fd10:200:0:1::5'];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'tendril-portmap-'));
});
afterEach(() => {
  for (const m of open.splice(0)) m.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a port map is a nodeport frontend per family with the pod as its one backend, named after the endpoint', async () => {
  const { dp, frontends, backends } = fakeDatapath();
  const m = await started(dp);
  const views = await m.setPortMaps(3, [web, dns], pod);
  assert.deepEqual(
    views.map((v) => [v.type, v.frontend, v.name, v.endpoint, v.backends.map((b) => `${b.address}:${b.port}`)]),
    [
      ['HostPort', '0.0.0.0:8080/TCP', 'endpoint-3', 3, ['10.200.1.5:80']],
      ['HostPort', '[::]:8080/TCP', 'endpoint-3', 3, ['fd10:200:0:1::5:80']],
      ['HostPort', '0.0.0.0:5353/UDP', 'endpoint-3', 3, ['10.200.1.5:53']],
      ['HostPort', '[::]:5353/UDP', 'endpoint-3', 3, ['fd10:200:0:1::5:53']],
    ],
  );
  assert.deepEqual([...frontends.keys()].sort(), ['nodeport 0.0.0.0:5353/UDP', 'nodeport 0.0.0.0:8080/TCP', 'nodeport :::5353/UDP', 'nodeport :::8080/TCP']);
  assert.equal(backends.size, 4);
  // Idempotent: the same maps again change nothing.
  assert.deepEqual(await m.setPortMaps(3, [web, dns], pod), views);
  assert.deepEqual(await m.setPortMaps(3, [], []), []);
  assert.equal(frontends.size, 0);
  assert.equal(backends.size, 0);
  assert.deepEqual(m.list(), []);
});

test('a host port used by a NodePort service or another endpoint fails the whole call and changes nothing', async () => {
  const { dp, frontends } = fakeDatapath();
  const m = await started(dp);
  const np = await m.add({ frontend: '10.96.0.10:80/TCP', type: 'NodePort', nodePort: 30080, backends: ['10.200.1.9:80'] });
  await m.setPortMaps(1, [web], pod);
  const before = JSON.stringify(m.list());
  const entries = frontends.size;
  await assert.rejects(m.setPortMaps(2, [dns, { hostPort: 30080, containerPort: 80, protocol: 'TCP' }], ['10.200.1.6']), {
    code: 'conflict',
    message: `host port 30080/TCP is used by service ${np.id} already`,
  });
  await assert.rejects(m.setPortMaps(2, [web], ['10.200.1.6']), { code: 'conflict', message: 'host port 8080/TCP is used by a port map of endpoint 1 already' });
  await assert.rejects(m.add({ frontend: '10.96.0.11:80/TCP', type: 'NodePort', nodePort: 8080 }), { message: 'node port 8080/TCP is used by a port map of endpoint 1 already' });
  // The same port with the other protocol is another port.
  await m.setPortMaps(2, [{ hostPort: 8080, containerPort: 80, protocol: 'UDP' }], ['10.200.1.6']);
  await m.setPortMaps(2, [], []);
  assert.equal(JSON.stringify(m.list()), before);
  assert.equal(frontends.size, entries);
});

test('a port map service is not updated or deleted through the service calls', async () => {
  const { dp } = fakeDatapath();
  const m = await started(dp);
  const [v] = await m.setPortMaps(4, [web], ['10.200.1.5']);
  const hint = /port map 8080:80\/TCP of endpoint 4: it goes with the endpoint \(tendril endpoint delete 4\)/;
  await assert.rejects(m.delete(v!.id), { code: 'conflict', message: hint });
  await assert.rejects(m.update(v!.id, { addBackends: ['10.200.1.7:80'] }), { code: 'conflict', message: hint });
  assert.equal(m.list().length, 1);
});

test('port maps are saved and restored; prune removes those of endpoints that are gone', async () => {
  const first = fakeDatapath();
  const m = await started(first.dp);
  await m.setPortMaps(1, [web], pod);
  await m.setPortMaps(2, [dns], ['10.200.1.6']);
  const views = m.list();
  m.close();
  const second = fakeDatapath();
  const again = await started(second.dp);
  assert.deepEqual(again.list(), views);
  assert.deepEqual([...second.frontends.keys()].sort(), [...first.frontends.keys()].sort());
  assert.equal(await again.prunePortMaps(new Set([1])), 1);
  assert.deepEqual(
    again.list().map((v) => v.endpoint),
    [1, 1],
  );
  assert.equal(second.frontends.size, 2);
});
