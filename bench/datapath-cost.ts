/**
 * ns per packet of the endpoint program for an established TCP packet, beside
 * a tc program that only returns TC_ACT_OK (the floor), both timed by
 * BPF_PROG_TEST_RUN on the same packet.
 *
 * BPF_PROG_TEST_RUN with repeat=N runs every iteration on the previous
 * iteration's output. from_container rewrites MACs (idempotent here) and
 * decrements the TTL, so the packet starts with TTL 255 and a batch stays
 * well below 254 iterations: every iteration takes the same, forwarding path,
 * which the returned verdict (TC_ACT_REDIRECT) confirms batch by batch.
 */
import { BpfObject, bpfObjectPath } from '../src/bpf/index.js';
import { TndEndpointInfo, TndEndpointKey } from '../src/bpf/generated/wire.js';
import { endpointConfig } from '../src/datapath/endpoint-programs.js';
import { TndLxcConfig } from '../src/bpf/generated/wire.js';
import { IPPROTO_TCP, ETH_P_IP, TCP_ACK, TCP_SYN, eth, ip4, ipv4, mac, tcp } from '../bpf/tests/packets.js';
import { median } from './stats.js';

const TC_ACT_OK = 0;
const TC_ACT_REDIRECT = 7;
const BATCH = 200;

const A = { ip: '10.200.1.2', mac: '02:00:00:00:00:0a', host: '02:00:00:00:01:0a', ifindex: 10 };
const B = { ip: '10.200.1.3', mac: '02:00:00:00:00:0b', host: '02:00:00:00:01:0b', ifindex: 11 };

function packet(from: typeof A, to: typeof A, flags: number, ttl = 64): Buffer {
  const src = ip4(from.ip);
  const dst = ip4(to.ip);
  const seg = tcp(src, dst, { sport: 40000, dport: 80, flags, payload: Buffer.alloc(64) });
  return eth(mac(from.host), mac(from.mac), ETH_P_IP, ipv4({ src, dst, proto: IPPROTO_TCP, ttl }, seg));
}

function reply(flags: number): Buffer {
  const src = ip4(B.ip);
  const dst = ip4(A.ip);
  const seg = tcp(src, dst, { sport: 80, dport: 40000, flags });
  return eth(mac(A.mac), mac(A.host), ETH_P_IP, ipv4({ src, dst, proto: IPPROTO_TCP }, seg));
}

function timeBatches(run: () => { retval: number; durationNs: number }, expect: number, batches: number): number {
  const samples: number[] = [];
  for (let i = 0; i < batches; i++) {
    const r = run();
    if (r.retval !== expect) throw new Error(`verdict ${r.retval} instead of ${expect}: the timed path is not the intended one`);
    samples.push(r.durationNs);
  }
  return median(samples);
}

export function endpointProgramCost(batches: number): { tendril: number; floor: number } {
  const lxc = BpfObject.open(bpfObjectPath('lxc.o'), {
    constants: {
      CONFIG: TndLxcConfig.encode(
        endpointConfig({ id: 1, ifindex: A.ifindex, identity: 0, podMac: A.mac, hostMac: A.host, ipv4: A.ip, ipv6: 'fd10:200:0:1::2', routerIPv4: '10.200.1.1', routerIPv6: 'fd10:200:0:1::1' }),
      ),
    },
  });
  const floorObj = BpfObject.open(bpfObjectPath('tests/passthrough.o'));
  try {
    lxc.load();
    floorObj.load();
    const addr = Buffer.alloc(16);
    ip4(B.ip).copy(addr);
    lxc.map('tnd_endpoints').update(
      TndEndpointKey.encode({ addr, family: 2 }),
      TndEndpointInfo.encode({ ifindex: B.ifindex, identity: 0, endpointId: 2, flags: 0, mac: mac(B.mac), routerMac: mac(B.host) }),
    );
    const from = lxc.program('from_container');
    const to = lxc.program('to_container');
    // Establish the connection: SYN out, SYN-ACK back.
    if (from.testRun({ data: packet(A, B, TCP_SYN) }).retval !== TC_ACT_REDIRECT) throw new Error('SYN was not forwarded');
    if (to.testRun({ data: reply(TCP_SYN | TCP_ACK) }).retval !== TC_ACT_OK) throw new Error('SYN-ACK was not delivered');
    const established = packet(A, B, TCP_ACK, 255);
    const floorProg = floorObj.program('tc_pass');
    const tendril = timeBatches(() => from.testRun({ data: established, repeat: BATCH }), TC_ACT_REDIRECT, batches);
    const floor = timeBatches(() => floorProg.testRun({ data: established, repeat: BATCH }), TC_ACT_OK, batches);
    return { tendril, floor };
  } finally {
    lxc.close();
    floorObj.close();
  }
}
