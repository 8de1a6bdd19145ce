/**
 * `tendril service` as a user runs it: the real CLI binary against the real
 * API server over a Unix socket; the manager behind it runs over an
 * in-memory LbDatapath (the agent's wiring and the maps are tested elsewhere).
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LbDatapath } from '../../common/lb.js';
import { ServiceManager } from '../../loadbalancer/manager.js';
import { registerRoutes, type AgentServices } from '../../api/routes.js';
import { ApiServer } from '../../api/server.js';

const BIN = join(fileURLToPath(new URL('.', import.meta.url)), '../../../../bin/tendril');
const datapath: LbDatapath = {
  maglevSize: 16381,
  setBackend() {},
  deleteBackend() {},
  setMaglev() {},
  deleteMaglev() {},
  setFrontend() {},
  deleteFrontend() {},
  backendConnections: () => new Map([[1, 12]]),
};

let dir: string;
let api: ApiServer;
let manager: ServiceManager;

function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, ...args], { env: { ...process.env, TENDRIL_SOCKET: join(dir, 'agent.sock') } }, (err, stdout, stderr) =>
      resolve({ code: err ? Number(err.code) : 0, stdout, stderr }),
    );
  });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'tendril-cli-svc-'));
  manager = new ServiceManager(datapath, { stateDir: dir, podCidrs: ['10.200.1.0/24'] });
  await manager.restore();
  api = new ApiServer();
  registerRoutes(api, { services: manager } as unknown as AgentServices);
  await api.listen(join(dir, 'agent.sock'));
});
after(async () => {
  await api.close();
  manager.close();
  rmSync(dir, { recursive: true, force: true });
});

test('service add, update, list, get, delete', async () => {
  let r = await cli(['service', 'add', '--frontend', '10.96.0.10:80/TCP', '--backend', '10.200.2.5:8080', '--backend', '10.200.2.6:8080', '--affinity', 'client-ip']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ID: +1$/m);
  assert.match(r.stdout, /^Affinity: +client-ip 3h$/m);
  r = await cli(['service', 'add', '--frontend', '[fd10:96::a]:80', '--type', 'NodePort', '--node-port', '30080', '--mode', 'dsr', '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { id: 2, frontend: '[fd10:96::a]:80/TCP', type: 'NodePort', mode: 'dsr', affinity: 'none', affinityTimeoutSec: 0, nodePort: 30080, activeBackends: 0, backends: [] });
  r = await cli(['service', 'update', '1', '--remove-backend', '10.200.2.5:8080']);
  assert.equal(r.code, 0, r.stderr);
  r = await cli(['service', 'list']);
  assert.equal(r.code, 0, r.stderr);
  const lines = r.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, /^ID +FRONTEND +TYPE +MODE +AFFINITY +ACTIVE +BACKEND +STATE +CONNECTIONS$/);
  assert.match(lines[1]!, /^1 +10\.96\.0\.10:80\/TCP +ClusterIP +snat +client-ip 3h +1\/2 +10\.200\.2\.5:8080 +terminating +12$/);
  assert.match(lines[2]!, /^ +10\.200\.2\.6:8080 +active +0$/);
  assert.match(lines[3]!, /^2 +\[fd10:96::a\]:80\/TCP +NodePort:30080 +dsr +none +0\/0 +- +- +-$/);
  r = await cli(['service', 'get', '2', '-o', 'json']);
  assert.equal(JSON.parse(r.stdout).id, 2);
  r = await cli(['service', 'delete', '2']);
  assert.equal(r.stdout, 'service 2 deleted ([fd10:96::a]:80/TCP)\n');
});

test('user errors exit 1 with one line; usage errors exit 2', async () => {
  const oneLine = (r: { code: number; stderr: string }, code: number, pattern: RegExp) => {
    assert.equal(r.code, code, r.stderr);
    assert.match(r.stderr.split('\n')[0]!, pattern);
    if (code === 1) assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
  };
  oneLine(await cli(['service', 'add', '--frontend', '10.200.1.9:80']), 1, /^tendril: frontend address 10\.200\.1\.9 is inside the node's pod range/);
  oneLine(await cli(['service', 'add', '--frontend', '10.96.0.30:80', '--backend', '10.200.2.5']), 1, /^tendril: backend "10\.200\.2\.5" has no port/);
  oneLine(await cli(['service', 'add', '--frontend', '10.96.0.30:80', '--mode', 'dsr']), 1, /^tendril: mode dsr is for NodePort and ExternalIP/);
  oneLine(await cli(['service', 'get', '77']), 1, /^tendril: service 77 does not exist/);
  oneLine(await cli(['service', 'add']), 2, /^tendril: service add needs --frontend/);
  oneLine(await cli(['service', 'get', 'web']), 2, /^tendril: service ID must be a number, not "web"/);
  oneLine(await cli(['service', 'update', '1']), 2, /^tendril: service update needs at least one change/);
  oneLine(await cli(['service', 'update', '1', '--backend', '10.200.2.5:80', '--add-backend', '10.200.2.6:80']), 2, /not both/);
  oneLine(await cli(['service', 'add', '--frontend', '10.96.0.30:80', '--node-port', 'x']), 2, /--node-port must be a number, not "x"/);
  oneLine(await cli(['service', 'frobnicate']), 2, /unknown service command "frobnicate"/);
});
