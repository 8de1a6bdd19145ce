/** The libbpf binding of Tendril: objects, maps, programs, links, ring buffers, codecs. */
export type { Codec } from './codec.js';
export { bytesCodec, u8, u16, u32, u64, uintCodec } from './codec.js';
export { BpfError } from './errors.js';
export { BpfObject, type BpfObjectOptions } from './object.js';
export { BpfProgram } from './program.js';
export { BpfMap, MapFlag, MapType, type MapCreateOptions, type UpdateFlag } from './map.js';
export { TypedMap } from './typed-map.js';
export { BpfLink } from './link.js';
export type { LinkInfo } from './info.js';
export { attachCgroup, attachSkMsg, attachTcx, attachXdp, CgroupHook } from './attach.js';
export { RingBufferReader } from './ringbuf.js';
export { BPF_F_TEST_RUN_ON_CPU, BPF_F_TEST_XDP_LIVE_FRAMES, type TestRunOptions, type TestRunResult } from './testrun.js';
export { bpfObjectPath, repoRoot } from './paths.js';
export { attachTc, detachTc, queryTc, DEFAULT_TC_FILTER, type TcDirection, type TcFilterId } from './tc.js';
