/**
 * attachCgroup() on the real kernel: a child cgroup of the cgroup2 root made
 * for the run, a process moved into it (and into a namespace of the run)
 * that connects to its own listener on 127.0.0.1.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { uniqueName } from './testdata/fixtures.js';
import { BpfError, BpfObject, attachCgroup, bpfObjectPath } from './index.js';

const CONNECT_TO_SELF = `
const net = require('node:net');
const s = net.createServer((c) => c.end()).listen(0, '127.0.0.1', () => {
  const c = net.connect(s.address().port, '127.0.0.1');
  c.on('connect', () => { console.log('connected'); process.exit(0); });
  c.on('error', (e) => { console.log(e.code); process.exit(0); });
});`;

function cgroup2Root(): string {
  const line = readFileSync('/proc/self/mounts', 'utf8').split('\n').find((l) => l.split(' ')[2] === 'cgroup2');
  return line!.split(' ')[1]!;
}

describe('attachCgroup() on a child cgroup', () => {
  const name = uniqueName('tndcg');
  const cgroup = join(cgroup2Root(), name);
  let obj: BpfObject;

  /** What a connect() to its own listener gives a process in the cgroup. */
  const connectInCgroup = () =>
    spawnSync('sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec nsenter --net="/run/netns/$1" "$2" -e "$3"', cgroup, name, process.execPath, CONNECT_TO_SELF], { encoding: 'utf8' }).stdout.trim();

  before(() => {
    execFileSync('ip', ['netns', 'add', name]);
    execFileSync('ip', ['-n', name, 'link', 'set', 'lo', 'up']);
    mkdirSync(cgroup);
    obj = BpfObject.open(bpfObjectPath('tests/cgroup_pass.o'));
    obj.load();
  });
  after(() => {
    obj?.close();
    spawnSync('rmdir', [cgroup]);
    spawnSync('ip', ['netns', 'del', name]);
  });

  it('attaches through a link: the cgroup id and hook in its info; the programs act and go with the link', () => {
    assert.equal(connectInCgroup(), 'connected');
    const refuse = attachCgroup(obj.program('connect4_refuse'), cgroup, 'connect4');
    try {
      const info = refuse.info();
      assert.equal(info.type, 3);
      assert.equal(info.cgroupId, statSync(cgroup, { bigint: true }).ino);
      assert.equal(info.attachType, 10);
      assert.equal(connectInCgroup(), 'ECONNREFUSED', 'bpf_set_retval(-ECONNREFUSED) is the error connect() returns');
      // Links are multi-attach: a second program on the same hook runs too, and a refusal stands.
      using pass = attachCgroup(obj.program('connect4_pass'), cgroup, 'connect4');
      assert.equal(connectInCgroup(), 'ECONNREFUSED');
      refuse.update(obj.program('connect4_pass'));
      assert.equal(connectInCgroup(), 'connected', 'update() swapped the program');
      assert.equal(pass.info().cgroupId, info.cgroupId);
    } finally {
      refuse.close();
    }
    assert.equal(connectInCgroup(), 'connected');
  });

  it('names the cgroup and the hook when it cannot attach', () => {
    assert.throws(
      () => attachCgroup(obj.program('connect4_pass'), join(cgroup, 'missing'), 'connect4'),
      (e: unknown) => e instanceof BpfError && e.code === 'ENOENT' && /to connect4 of ".*missing"/.test(e.message),
    );
    assert.throws(() => attachCgroup(obj.program('connect4_pass'), '/tmp', 'connect4'), (e: unknown) => e instanceof BpfError && /"\/tmp"/.test(e.message));
    assert.throws(() => attachCgroup(obj.program('connect4_pass'), cgroup, 'bind4' as 'connect4'), /no such hook/);
  });
});
