/**
 * XdpLb on a real device: attach xdp_lb in native mode to a veth of a node
 * namespace made for the test (bpf/tests/xdp-netns.ts runs this file inside
 * it), attach again (the pinned link gets the new program in place, as
 * after an agent restart), detach (link and pins gone).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { innerEnv, runInNodeNetns } from '../../bpf/tests/xdp-netns.js';
import { ifNameToIndex } from '../sys/index.js';
import { LbMaps } from './lb-maps.js';
import { PinPaths } from './paths.js';
import { XdpLb } from './xdp-lb.js';

const inner = innerEnv();

/** The XDP program the kernel reports on a device, and its mode (1 = native). */
function xdpOn(dev: string): { id: number; mode: number } | undefined {
  const [link] = JSON.parse(execFileSync('ip', ['-d', '-j', 'link', 'show', 'dev', dev], { encoding: 'utf8' })) as Array<{ xdp?: { mode: number; prog?: { id: number } } }>;
  return link?.xdp?.prog ? { id: link.xdp.prog.id, mode: link.xdp.mode } : undefined;
}

if (!inner) {
  describe('XdpLb', () => {
    it('attaches, updates in place and detaches inside a node namespace of its own', () => {
      const r = runInNodeNetns(fileURLToPath(import.meta.url));
      assert.equal(r.status, 0, r.output);
      assert.match(r.output, /ℹ pass [1-9]\d*\n/, r.output);
      assert.match(r.output, /ℹ fail 0\n/, r.output);
    });
  });
} else {
  const paths = new PinPaths(inner.bpffs, 'xdp-attach');
  let maps: LbMaps;

  before(() => {
    maps = LbMaps.open(paths, { maglevSize: 7 });
  });
  after(() => {
    XdpLb.detach(paths);
    maps?.close();
  });

  describe('XdpLb, inside a node namespace', () => {
    it('attaches in native mode through a pinned link', () => {
      const a = XdpLb.attach(maps, { ifname: 'ext0' });
      assert.equal(a.updated, false);
      assert.equal(a.info.ifindex, ifNameToIndex('ext0'));
      assert.ok(existsSync(join(paths.links, 'xdp_lb', 'ext0')));
      assert.deepEqual(xdpOn('ext0'), { id: a.info.progId, mode: 1 });
      assert.deepEqual([...XdpLb.pinned(paths).keys()], ['ext0']);
      assert.equal(XdpLb.stats(paths).TND_XDP_TX, 0);
    });

    it('attaching again (a restarted agent) swaps the program in the same link', () => {
      const before = XdpLb.pinned(paths).get('ext0')!;
      maps.close();
      maps = LbMaps.open(paths);
      const a = XdpLb.attach(maps, { ifname: 'ext0' });
      assert.equal(a.updated, true);
      assert.equal(a.info.id, before.id, 'same link');
      assert.notEqual(a.info.progId, before.progId, 'new program');
      assert.deepEqual(xdpOn('ext0'), { id: a.info.progId, mode: 1 });
    });

    it('a second device gets a link of its own; an unknown device is one clear error', () => {
      XdpLb.attach(maps, { ifname: 'ext1' });
      assert.deepEqual([...XdpLb.pinned(paths).keys()].sort(), ['ext0', 'ext1']);
      assert.throws(() => XdpLb.attach(maps, { ifname: 'nosuch0' }), /network device "nosuch0" does not exist in this namespace/);
      assert.equal(XdpLb.detach(paths, 'ext1'), 1);
      assert.equal(xdpOn('ext1'), undefined);
    });

    it('detaching removes the program and the pins', () => {
      assert.equal(XdpLb.detach(paths), 1);
      assert.equal(xdpOn('ext0'), undefined);
      assert.equal(existsSync(join(paths.links, 'xdp_lb')), false);
      assert.equal(XdpLb.detach(paths), 0);
    });
  });
}
