/**
 * Runs inside a test network namespace (started by attach.privileged.test.ts
 * through nsenter): attaches programs to "veth0", sends pings to the peer
 * 10.200.250.1 and prints what it observed as one JSON line on stdout.
 *   node attach-child.js tcx|xdp <bpffs dir>
 */
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { ifNameToIndex } from '../../sys/index.js';
import { BpfError, BpfLink, BpfObject, attachTc, attachTcx, attachXdp, bpfObjectPath, detachTc, queryTc, type BpfMap } from '../index.js';

const [scenario, pinDir] = process.argv.slice(2);

function ping(): boolean {
  try {
    execFileSync('ping', ['-c', '2', '-i', '0.2', '-W', '2', '10.200.250.1'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function counter(arr: BpfMap): number {
  return Number(arr.lookup(Buffer.alloc(4))?.readBigUInt64LE(0) ?? -1n);
}

function errorOf(fn: () => unknown): { code?: string; message: string } | null {
  try {
    fn();
    return null;
  } catch (e) {
    return { code: e instanceof BpfError || (e as { code?: string }).code ? (e as { code: string }).code : undefined, message: (e as Error).message };
  }
}

function tcx(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  using selftest = BpfObject.open(bpfObjectPath('tests/ffi_selftest.o'));
  selftest.load();
  using passthrough = BpfObject.open(bpfObjectPath('tests/passthrough.o'));
  passthrough.load();
  const count = selftest.program('count_packets');
  const pass = passthrough.program('tc_pass');
  const arr = selftest.map('selftest_array');
  const ifindex = ifNameToIndex('veth0');
  out.ifindex = ifindex;
  out.countId = count.id;
  out.passId = pass.id;

  const link = attachTcx(count, ifindex, 'ingress');
  out.info = link.info();
  out.pingWithCount = ping();
  out.countedAfterPing = counter(arr);

  link.pin(`${pinDir}/tcx-link`);
  const pinned = BpfLink.openPinned(`${pinDir}/tcx-link`);
  out.pinnedId = pinned.id;
  out.linkId = link.id;

  pinned.update(pass);
  out.infoAfterUpdate = link.info();
  const before = counter(arr);
  out.pingWithPass = ping();
  out.countedDuringPass = counter(arr) - before;

  link.close(); // the pin keeps it attached
  out.stillAttachedAfterClose = pinned.info().progId === pass.id;
  pinned.detach();
  out.infoAfterDetach = pinned.info();
  pinned.close();
  rmSync(`${pinDir}/tcx-link`); // a pin is a file: remove it like one

  const egress = attachTcx(count, ifindex, 'egress');
  out.egressInfo = egress.info();
  egress.close(); // not pinned: closing the last fd detaches

  out.errIfindex0 = errorOf(() => attachTcx(count, 0, 'ingress'));
  out.errNoDevice = errorOf(() => attachTcx(count, 999999, 'egress'));
  out.errNoName = errorOf(() => ifNameToIndex('nosuchdev0'));
  return out;
}

function xdp(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  using selftest = BpfObject.open(bpfObjectPath('tests/ffi_selftest.o'));
  selftest.load();
  using passthrough = BpfObject.open(bpfObjectPath('tests/passthrough.o'));
  passthrough.load();
  const count = selftest.program('xdp_count');
  const arr = selftest.map('selftest_array');
  const ifindex = ifNameToIndex('veth0');
  out.ifindex = ifindex;
  out.countId = count.id;

  const link = attachXdp(count, ifindex, 'native');
  out.info = link.info();
  out.ping = ping();
  out.counted = counter(arr);
  out.errSecond = errorOf(() => attachXdp(passthrough.program('xdp_pass'), ifindex, 'native'));
  link.update(passthrough.program('xdp_pass'));
  out.progIdAfterUpdate = link.info().progId;
  out.passId = passthrough.program('xdp_pass').id;
  link.close();

  const generic = attachXdp(count, ifindex, 'generic');
  out.genericInfo = generic.info();
  generic.close();
  out.errIfindex0 = errorOf(() => attachXdp(count, 0));
  return out;
}

function tc(): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  using selftest = BpfObject.open(bpfObjectPath('tests/ffi_selftest.o'));
  selftest.load();
  using passthrough = BpfObject.open(bpfObjectPath('tests/passthrough.o'));
  passthrough.load();
  const count = selftest.program('count_packets');
  const pass = passthrough.program('tc_pass');
  const arr = selftest.map('selftest_array');
  const ifindex = ifNameToIndex('veth0');
  out.countId = count.id;
  out.passId = pass.id;
  out.queryBefore = queryTc(ifindex, 'ingress') ?? null;
  out.attachedId = attachTc(count, ifindex, 'ingress');
  out.query = queryTc(ifindex, 'ingress');
  out.pingWithCount = ping();
  out.countedAfterPing = counter(arr);
  out.replacedId = attachTc(pass, ifindex, 'ingress'); // same filter: replaced in place
  const before = counter(arr);
  out.pingWithPass = ping();
  out.countedDuringPass = counter(arr) - before;
  out.filters = execFileSync('tc', ['filter', 'show', 'dev', 'veth0', 'ingress'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(' id ')).length;
  out.egressId = attachTc(count, ifindex, 'egress');
  detachTc(ifindex, 'ingress');
  detachTc(ifindex, 'ingress'); // a second detach is harmless
  out.queryAfterDetach = queryTc(ifindex, 'ingress') ?? null;
  out.egressStill = queryTc(ifindex, 'egress');
  out.errIfindex0 = errorOf(() => attachTc(count, 0, 'ingress'));
  out.errNoDevice = errorOf(() => attachTc(count, 999999, 'egress'));
  return out;
}

const result = scenario === 'tcx' ? tcx() : scenario === 'xdp' ? xdp() : scenario === 'tc' ? tc() : { error: `unknown scenario ${scenario}` };
process.stdout.write(`${JSON.stringify(result)}\n`);
