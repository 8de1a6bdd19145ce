/** BPF_PROG_TEST_RUN through bpf_prog_test_run_opts: run a program on given bytes. */
import { bpf, NativeBlock } from './libbpf.js';
import { BpfError } from './errors.js';

export interface TestRunOptions {
  data: Buffer;
  ctx?: Buffer;
  /** Runs the program this many times (the kernel reports the mean duration). */
  repeat?: number;
  /** Room for the output packet; defaults to the input length plus 4 KiB for headers a program adds. */
  dataSizeOut?: number;
  flags?: number;
  /** XDP live frames: packets per batch. */
  batchSize?: number;
}

export interface TestRunResult {
  retval: number;
  data: Buffer;
  ctx?: Buffer;
  durationNs: number;
}

export const BPF_F_TEST_RUN_ON_CPU = 1;
export const BPF_F_TEST_XDP_LIVE_FRAMES = 2;

const OPTS_SIZE = 80; // sizeof(struct bpf_test_run_opts) in libbpf 1.1

/**
 * struct bpf_test_run_opts: sz@0 data_in@8 data_out@16 data_size_in@24
 * data_size_out@28 ctx_in@32 ctx_out@40 ctx_size_in@48 ctx_size_out@52
 * retval@56 repeat@60 duration@64 flags@68 cpu@72 batch_size@76.
 */
export function testRun(progFd: number, progName: string, o: TestRunOptions): TestRunResult {
  // Live XDP frames go out to the device; the kernel refuses output buffers then.
  const live = ((o.flags ?? 0) & BPF_F_TEST_XDP_LIVE_FRAMES) !== 0;
  const outSize = live ? 0 : (o.dataSizeOut ?? o.data.length + 4096);
  const blocks: NativeBlock[] = [];
  const block = (size: number) => {
    const b = new NativeBlock(size);
    blocks.push(b);
    return b;
  };
  try {
    const opts = block(OPTS_SIZE);
    const dataIn = block(o.data.length);
    o.data.copy(dataIn.buf);
    const dataOut = live ? undefined : block(outSize);
    const ctxIn = o.ctx ? block(o.ctx.length) : undefined;
    if (o.ctx && ctxIn) o.ctx.copy(ctxIn.buf);
    const ctxOut = o.ctx && !live ? block(o.ctx.length) : undefined;

    const b = opts.buf;
    b.writeBigUInt64LE(BigInt(OPTS_SIZE), 0);
    b.writeBigUInt64LE(dataIn.address, 8);
    if (dataOut) b.writeBigUInt64LE(dataOut.address, 16);
    b.writeUInt32LE(o.data.length, 24);
    b.writeUInt32LE(outSize, 28);
    if (ctxIn) b.writeBigUInt64LE(ctxIn.address, 32);
    if (ctxOut) b.writeBigUInt64LE(ctxOut.address, 40);
    b.writeUInt32LE(o.ctx?.length ?? 0, 48);
    b.writeUInt32LE(ctxOut ? ctxOut.size : 0, 52);
    b.writeInt32LE(o.repeat ?? 1, 60);
    b.writeUInt32LE(o.flags ?? 0, 68);
    b.writeUInt32LE(o.batchSize ?? 0, 76);

    const ret = bpf.progTestRunOpts(progFd, opts.ptr) as number;
    if (ret < 0) {
      const hint = ret === -28 ? ` (output is larger than dataSizeOut ${outSize})` : '';
      throw new BpfError(`Cannot test-run program "${progName}"${hint}`, -ret);
    }
    const result: TestRunResult = {
      retval: b.readUInt32LE(56) | 0,
      data: dataOut ? Buffer.from(dataOut.buf.subarray(0, b.readUInt32LE(28))) : Buffer.alloc(0),
      durationNs: b.readUInt32LE(64),
    };
    if (ctxOut) result.ctx = Buffer.from(ctxOut.buf.subarray(0, b.readUInt32LE(52)));
    return result;
  } finally {
    for (const blk of blocks) blk.free();
  }
}
