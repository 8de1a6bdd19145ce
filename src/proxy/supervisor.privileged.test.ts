/**
 * Real worker processes on a transparent listener (needs CAP_NET_ADMIN), in
 * test mode: a fixed flow and destination instead of the datapath's.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { L7PolicyTable, ProxyFlow, ProxyReport } from '../common/l7-policy.js';
import { readFileSync } from 'node:fs';
import { allowedCpus } from '../sys/affinity.js';
import { ProxySupervisor } from './supervisor.js';

const FLOW: ProxyFlow = { srcIdentity: 1000, dstIdentity: 2000, srcEndpoint: 0, dstEndpoint: 7, egress: false, ingress: true };

function policy(revision: number, path: string): L7PolicyTable {
  return {
    revision,
    ruleNames: {},
    endpoints: [{ endpointId: 7, entries: [{ direction: 'ingress', identity: 0, firstPort: 1, lastPort: 65535, ruleId: 1, rules: [{ path }] }] }],
  };
}

async function status(port: number, path: string): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, { headers: { connection: 'close' } });
  await res.text();
  return res.status;
}

describe('proxy workers under the supervisor', () => {
  let upstream: http.Server;
  let upPort = 0;
  const port = 20000 + Math.floor(Math.random() * 20000);
  let sup: ProxySupervisor;

  before(async () => {
    upstream = http.createServer((_req, res) => res.end('Ship landed'));
    await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
    upPort = (upstream.address() as net.AddressInfo).port;
    sup = new ProxySupervisor({
      port,
      workers: 2,
      extraArgs: ['--fixed-destination', `127.0.0.1:${upPort}`, '--fixed-flow', JSON.stringify(FLOW)],
      graceMs: 2000,
    });
  });

  after(async () => {
    await sup.stop();
    upstream.closeAllConnections();
    upstream.close();
  });

  it('starts, applies policy revisions, reports events and stats', async () => {
    await sup.start();
    assert.equal(sup.workers().filter((w) => w.ready).length, 2);
    // Each worker is bound to one CPU, the index-th of the allowed ones.
    const allowed = allowedCpus();
    for (const w of sup.workers()) {
      const list = /Cpus_allowed_list:\s*(\S+)/.exec(readFileSync(`/proc/${w.pid}/status`, 'utf8'))?.[1];
      assert.equal(list, String(allowed[w.index % allowed.length]), `worker ${w.index}`);
    }
    await sup.setPolicy(policy(1, '/a'));
    assert.ok(sup.workers().every((w) => w.revision === 1));
    const events: string[] = [];
    sup.onEvents((evs) => events.push(...evs.map((e) => `${e.path} ${e.verdict}`)));
    sup.setMonitoring(true);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(await status(port, '/a'), 200);
    assert.equal(await status(port, '/b'), 403);
    await sup.setPolicy(policy(2, '/b'));
    assert.equal(await status(port, '/a'), 403);
    assert.equal(await status(port, '/b'), 200);
    await new Promise((r) => setTimeout(r, 1200));
    assert.deepEqual(events.sort(), ['/a allow', '/a deny', '/b allow', '/b deny']);
    const st = sup.stats();
    assert.equal(st.requests, 4);
    assert.equal(st.allowed, 2);
    assert.equal(st.denied, 2);
  });

  it('a killed worker comes back and applies the current policy', async () => {
    await sup.setPolicy(policy(3, '/c'));
    const victim = sup.workers()[0]!;
    process.kill(victim.pid, 'SIGKILL');
    const t0 = Date.now();
    for (;;) {
      const w = sup.workers()[0]!;
      if (w.pid !== victim.pid && w.ready) {
        assert.equal(w.revision, 3);
        assert.equal(w.restarts, 1);
        break;
      }
      if (Date.now() - t0 > 5000) assert.fail('worker did not come back');
      await new Promise((r) => setTimeout(r, 20));
    }
    // Whichever worker the kernel picks, it judges by revision 3.
    for (let i = 0; i < 10; i++) {
      assert.equal(await status(port, '/c'), 200);
      assert.equal(await status(port, '/a'), 403);
    }
  });

  it('a worker exits when its IPC channel closes (the agent died)', async () => {
    const main = fileURLToPath(new URL('./main.js', import.meta.url));
    const child = fork(main, ['--worker', '9', '--port', String(port + 1)], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    await new Promise<void>((resolve) => child.on('message', (m: ProxyReport) => m.type === 'ready' && resolve()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    child.disconnect();
    const code = await Promise.race([exited, new Promise<string>((r) => setTimeout(() => r('still running'), 3000))]);
    if (code === 'still running') child.kill('SIGKILL');
    assert.equal(code, 0);
  });
});
