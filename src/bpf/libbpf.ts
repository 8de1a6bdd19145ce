/**
 * libbpf 1.1 (libbpf.so.1) declared through koffi, plus the two pieces of glue
 * the rest of src/bpf needs: native memory blocks (for option structs that hold
 * raw pointers) and capture of libbpf's own log lines (so errors can quote them
 * instead of libbpf printing to stderr).
 *
 * Conventions of libbpf 1.x: int-returning calls return -errno on failure;
 * pointer-returning calls return NULL and set errno.
 */
import koffi from 'koffi';
import { fileURLToPath } from 'node:url';

const lib = koffi.load('libbpf.so.1');
const f = (decl: string) => lib.func(decl);

export const ringBufferSampleFn = koffi.proto('int ring_buffer_sample_fn(void *ctx, void *data, size_t size)');

export const bpf = {
  setPrint: f('void *libbpf_set_print(void *fn)'),
  numPossibleCpus: f('int libbpf_num_possible_cpus(void)'),

  objectOpenFile: f('void *bpf_object__open_file(const char *path, const void *opts)'),
  objectLoad: f('int bpf_object__load(void *obj)'),
  objectClose: f('void bpf_object__close(void *obj)'),
  objectName: f('const char *bpf_object__name(void *obj)'),
  objectBtf: f('void *bpf_object__btf(void *obj)'),
  objectNextProgram: f('void *bpf_object__next_program(void *obj, void *prev)'),
  objectNextMap: f('void *bpf_object__next_map(void *obj, void *prev)'),

  programName: f('const char *bpf_program__name(void *prog)'),
  programFd: f('int bpf_program__fd(void *prog)'),
  programSetAutoload: f('int bpf_program__set_autoload(void *prog, bool autoload)'),
  programAutoload: f('bool bpf_program__autoload(void *prog)'),

  mapName: f('const char *bpf_map__name(void *map)'),
  mapFd: f('int bpf_map__fd(void *map)'),
  mapSetPinPath: f('int bpf_map__set_pin_path(void *map, const char *path)'),
  mapReuseFd: f('int bpf_map__reuse_fd(void *map, int fd)'),
  mapInitialValue: f('void *bpf_map__initial_value(void *map, _Out_ size_t *psize)'),
  mapIsInternal: f('bool bpf_map__is_internal(void *map)'),
  mapSetValueSize: f('int bpf_map__set_value_size(void *map, uint32_t size)'),
  mapInnerMap: f('void *bpf_map__inner_map(void *map)'),

  btfFindByNameKind: f('int btf__find_by_name_kind(void *btf, const char *name, uint32_t kind)'),
  btfTypeById: f('void *btf__type_by_id(void *btf, uint32_t id)'),
  btfNameByOffset: f('const char *btf__name_by_offset(void *btf, uint32_t offset)'),

  mapCreate: f(
    'int bpf_map_create(int map_type, const char *map_name, uint32_t key_size, uint32_t value_size, uint32_t max_entries, const void *opts)',
  ),
  mapGetFdById: f('int bpf_map_get_fd_by_id(uint32_t id)'),
  mapLookupElem: f('int bpf_map_lookup_elem(int fd, const void *key, void *value)'),
  mapUpdateElem: f('int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags)'),
  mapDeleteElem: f('int bpf_map_delete_elem(int fd, const void *key)'),
  mapGetNextKey: f('int bpf_map_get_next_key(int fd, const void *key, void *next_key)'),
  mapLookupBatch: f(
    'int bpf_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys, void *values, _Inout_ uint32_t *count, const void *opts)',
  ),
  mapUpdateBatch: f(
    'int bpf_map_update_batch(int fd, const void *keys, const void *values, _Inout_ uint32_t *count, const void *opts)',
  ),
  mapDeleteBatch: f('int bpf_map_delete_batch(int fd, const void *keys, _Inout_ uint32_t *count, const void *opts)'),

  objPin: f('int bpf_obj_pin(int fd, const char *pathname)'),
  objGet: f('int bpf_obj_get(const char *pathname)'),
  objGetInfoByFd: f('int bpf_obj_get_info_by_fd(int fd, void *info, _Inout_ uint32_t *info_len)'),

  progTestRunOpts: f('int bpf_prog_test_run_opts(int prog_fd, void *opts)'),

  linkCreate: f('int bpf_link_create(int prog_fd, int target_fd, int attach_type, const void *opts)'),
  linkUpdate: f('int bpf_link_update(int link_fd, int new_prog_fd, const void *opts)'),
  linkDetach: f('int bpf_link_detach(int link_fd)'),

  tcHookCreate: f('int bpf_tc_hook_create(void *hook)'),
  tcHookDestroy: f('int bpf_tc_hook_destroy(void *hook)'),
  tcAttach: f('int bpf_tc_attach(const void *hook, void *opts)'),
  tcDetach: f('int bpf_tc_detach(const void *hook, const void *opts)'),
  tcQuery: f('int bpf_tc_query(const void *hook, void *opts)'),

  ringBufferNew: lib.func('ring_buffer__new', 'void *', ['int', koffi.pointer(ringBufferSampleFn), 'void *', 'void *']),
  ringBufferEpollFd: f('int ring_buffer__epoll_fd(void *rb)'),
  ringBufferConsume: f('int ring_buffer__consume(void *rb)'),
  ringBufferFree: f('void ring_buffer__free(void *rb)'),
};

/** Opaque libbpf handle (bpf_object *, bpf_map *, ...); null on failure. */
export type Handle = unknown;

/** errno saved by koffi right after the last native call. */
export const lastErrno = (): number => koffi.errno();

/**
 * A block of native memory with a Buffer view and its address, for option
 * structs whose fields are pointers (test-run data, log buffers). Free it.
 */
export class NativeBlock {
  readonly ptr: unknown;
  readonly buf: Buffer;
  readonly address: bigint;
  constructor(readonly size: number) {
    this.ptr = koffi.alloc('uint8_t', Math.max(size, 1));
    this.buf = Buffer.from(koffi.view(this.ptr, Math.max(size, 1))).subarray(0, size);
    this.buf.fill(0);
    this.address = koffi.address(this.ptr);
  }
  free(): void {
    koffi.free(this.ptr);
  }
}

/** A Buffer view of `size` bytes of native memory at `ptr` (no copy). */
export function viewOf(ptr: unknown, size: number): Buffer {
  if (size === 0) return Buffer.alloc(0);
  return Buffer.from(koffi.view(ptr, size));
}

// --- libbpf's log: captured for error messages, never printed unless asked ---
// A native print function (native/libbpf-log.c) keeps each thread's lines;
// a JavaScript callback could not run on the worker threads that load
// endpoint programs. TENDRIL_LIBBPF_DEBUG=1 also prints every line.

const logLib = koffi.load(fileURLToPath(new URL('../../../build/lib/libtendril-bpflog.so', import.meta.url)));
const log = {
  printFn: logLib.func('void *tnd_libbpf_print_fn(void)'),
  take: logLib.func('size_t tnd_libbpf_log_take(_Out_ uint8_t *buf, size_t size)'),
};
bpf.setPrint(log.printFn());
const takeBuf = Buffer.alloc(16384);

/** This thread's libbpf lines since the last call. */
function takeLog(): string[] {
  const n = Number(log.take(takeBuf, takeBuf.length));
  return takeBuf.toString('utf8', 0, n).split('\n').map((l) => l.trimEnd()).filter(Boolean);
}

/** Runs `fn` and returns what it returned along with libbpf's warnings meanwhile. */
export function captureLibbpfLog<T>(fn: () => T): { result: T; log: string[] } {
  takeLog(); // lines of calls nobody captured
  const result = fn();
  return { result, log: takeLog() };
}
