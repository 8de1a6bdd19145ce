/**
 * A packet generator in a few lines over BPF_PROG_TEST_RUN with
 * BPF_F_TEST_XDP_LIVE_FRAMES: bpf/bench/xdp_bench.c's xdp_tx runs on each
 * frame and the kernel sends it out of the device the context names
 * (ctx.ingress_ifindex), in batches of 64, on the calling CPU. On a veth the
 * frames land on the peer's XDP program (veth's ndo_xdp_xmit), which is what
 * bench/xdp-lb.ts measures.
 *
 * The device is looked up in the caller's network namespace, so the
 * generator runs as its own process inside the sender's netns:
 *
 *   nsenter --net=/run/netns/S node dist/bench/xdp-pktgen.js '{"ifname":"gen0","seconds":2,...}'
 *
 * It prints "started" when the first batch goes, then one JSON line
 * {frames, seconds, pps} when it stops (by time, checked between calls of
 * `framesPerCall` frames).
 */
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { BPF_F_TEST_XDP_LIVE_FRAMES, BpfObject, bpfObjectPath } from '../src/bpf/index.js';
import { ifNameToIndex } from '../src/sys/index.js';
import { pinToCpu } from '../src/sys/affinity.js';

export interface PktgenOptions {
  /** The sending device, in this process's netns. */
  ifname: string;
  /** The frame, Ethernet header first, as hex. */
  frameHex: string;
  /** Generate for this long. */
  seconds: number;
  /** Frames per BPF_PROG_TEST_RUN call (its `repeat`); default 1,000,000. */
  framesPerCall?: number;
  /** Pin the generator to this CPU. */
  cpu?: number;
}

export interface PktgenResult {
  frames: number;
  seconds: number;
  pps: number;
}

/** struct xdp_md { data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex }. */
export function xdpContext(frameLength: number, ifindex: number): Buffer {
  const ctx = Buffer.alloc(24);
  ctx.writeUInt32LE(0, 0);
  ctx.writeUInt32LE(frameLength, 4);
  ctx.writeUInt32LE(ifindex, 12);
  return ctx;
}

/** Sends `frame` out of `ifname` as fast as one CPU can, for `seconds`; the caller must be in the device's netns. */
export function generate(o: PktgenOptions, onStart?: () => void): PktgenResult {
  if (o.cpu !== undefined) pinToCpu(o.cpu);
  const frame = Buffer.from(o.frameHex, 'hex');
  const ctx = xdpContext(frame.length, ifNameToIndex(o.ifname));
  const perCall = o.framesPerCall ?? 1_000_000;
  const obj = BpfObject.open(bpfObjectPath('bench/xdp_bench.o'), { autoload: { xdp_count_drop: false, xdp_count_sink: false } });
  try {
    obj.load();
    const prog = obj.program('xdp_tx');
    let frames = 0;
    const start = performance.now();
    const end = start + o.seconds * 1000;
    onStart?.();
    while (performance.now() < end) {
      // Live frames report no verdict (retval 0): the receiver's count is the check.
      prog.testRun({ data: frame, ctx, repeat: perCall, flags: BPF_F_TEST_XDP_LIVE_FRAMES, batchSize: 64 });
      frames += perCall;
    }
    const seconds = (performance.now() - start) / 1000;
    return { frames, seconds, pps: frames / seconds };
  } finally {
    obj.close();
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  try {
    const o = JSON.parse(process.argv[2] ?? '') as PktgenOptions;
    const r = generate(o, () => process.stdout.write('started\n'));
    process.stdout.write(`${JSON.stringify(r)}\n`);
  } catch (err) {
    process.stderr.write(`xdp-pktgen: ${(err as Error).message}\n`);
    process.exit(1);
  }
}
