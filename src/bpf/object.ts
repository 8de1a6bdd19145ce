/**
 * BpfObject: one ELF object opened by libbpf, specialised (constants, pinned or
 * reused maps) before load, then loaded. It owns every program and map it
 * loaded and closes them with itself.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { isBpffs } from '../sys/index.js';
import { bpf, captureLibbpfLog, lastErrno, NativeBlock, viewOf, type Handle } from './libbpf.js';
import { BpfError, EINVAL, ENOENT } from './errors.js';
import { BpfMap } from './map.js';
import { BpfProgram } from './program.js';

export interface BpfObjectOptions {
  /** `const volatile` globals (in .rodata) by variable name; each Buffer must have the variable's exact size. */
  constants?: Record<string, Buffer>;
  /** These maps are reused from `dir/<name>` when pinned there, else created and pinned there on load. */
  pinMaps?: { dir: string; names: string[] };
  /** These maps use an already open map instead of creating one. */
  reuseMaps?: Record<string, BpfMap>;
  /** Turn loading of single programs on or off (programs in SEC("?...") are off by default). */
  autoload?: Record<string, boolean>;
  /**
   * Value sizes in bytes of maps whose value the object leaves open (declared
   * with value_size, no BTF type), set before the maps are created.
   */
  valueSizes?: Record<string, number>;
  /** The same for the inner map (the template of its values) of a map of maps, by the outer map's name. */
  innerValueSizes?: Record<string, number>;
}

const OPEN_OPTS_SIZE = 80; // sizeof(struct bpf_object_open_opts) in libbpf 1.1
const LOG_SIZE = 4 << 20; // verifier logs of big programs run to megabytes
const BTF_KIND_DATASEC = 15;

export class BpfObject {
  /** File name of the object, for messages ("lxc.o"). */
  readonly file: string;
  private obj: Handle;
  private log: NativeBlock | undefined;
  private readonly progHandles = new Map<string, Handle>();
  private readonly mapHandles = new Map<string, Handle>();
  private readonly programs = new Map<string, BpfProgram>();
  private readonly maps = new Map<string, BpfMap>();
  private loaded = false;

  private constructor(readonly path: string) {
    this.file = basename(path);
  }

  static open(path: string, options: BpfObjectOptions = {}): BpfObject {
    const self = new BpfObject(resolve(path));
    if (!existsSync(self.path)) throw new BpfError(`Cannot open BPF object "${self.path}"`, ENOENT);
    try {
      self.openFile();
      self.configure(options);
    } catch (err) {
      self.close();
      throw err;
    }
    return self;
  }

  private openFile(): void {
    this.log = new NativeBlock(LOG_SIZE);
    const opts = new NativeBlock(OPEN_OPTS_SIZE);
    try {
      // struct bpf_object_open_opts: sz@0 kernel_log_buf@56 kernel_log_size@64 kernel_log_level@72.
      // Level 0: no log on success; libbpf retries a failed load with level 1 into our buffer.
      opts.buf.writeBigUInt64LE(BigInt(OPEN_OPTS_SIZE), 0);
      opts.buf.writeBigUInt64LE(this.log.address, 56);
      opts.buf.writeBigUInt64LE(BigInt(LOG_SIZE), 64);
      const { result, log } = captureLibbpfLog(() => bpf.objectOpenFile(this.path, opts.ptr));
      if (!result) throw new BpfError(`Cannot open BPF object "${this.path}"${libbpfSays(log)}`, lastErrno() || EINVAL);
      this.obj = result;
    } finally {
      opts.free();
    }
    for (let p = bpf.objectNextProgram(this.obj, null); p; p = bpf.objectNextProgram(this.obj, p))
      this.progHandles.set(bpf.programName(p) as string, p);
    for (let m = bpf.objectNextMap(this.obj, null); m; m = bpf.objectNextMap(this.obj, m))
      this.mapHandles.set(bpf.mapName(m) as string, m);
  }

  private configure(o: BpfObjectOptions): void {
    for (const [name, on] of Object.entries(o.autoload ?? {}))
      bpf.programSetAutoload(this.programHandle(name), on);
    if (o.constants && Object.keys(o.constants).length > 0) this.setConstants(o.constants);
    for (const [name, size] of Object.entries(o.valueSizes ?? {})) {
      const ret = bpf.mapSetValueSize(this.mapHandle(name), size) as number;
      if (ret < 0) throw new BpfError(`Cannot set the value size of map "${name}" in ${this.file} to ${size} bytes`, -ret);
    }
    for (const [name, size] of Object.entries(o.innerValueSizes ?? {})) {
      const inner = bpf.mapInnerMap(this.mapHandle(name)) as Handle | null;
      if (!inner) throw new BpfError(`Map "${name}" in ${this.file} is not a map of maps with an inner map`, EINVAL);
      const ret = bpf.mapSetValueSize(inner, size) as number;
      if (ret < 0) throw new BpfError(`Cannot set the value size of the inner map of "${name}" in ${this.file} to ${size} bytes`, -ret);
    }
    if (o.pinMaps) {
      mkdirSync(o.pinMaps.dir, { recursive: true });
      if (!isBpffs(o.pinMaps.dir))
        throw new BpfError(`Cannot pin maps of ${this.file} in "${o.pinMaps.dir}": not on a bpf filesystem (mount -t bpf bpf <dir>)`, EINVAL);
      for (const name of o.pinMaps.names) {
        const ret = bpf.mapSetPinPath(this.mapHandle(name), join(o.pinMaps.dir, name)) as number;
        if (ret < 0) throw new BpfError(`Cannot set pin path of map "${name}" in ${this.file}`, -ret);
      }
    }
    for (const [name, map] of Object.entries(o.reuseMaps ?? {})) {
      const ret = bpf.mapReuseFd(this.mapHandle(name), map.fd) as number;
      if (ret < 0) throw new BpfError(`Cannot reuse map "${map.name}" as "${name}" in ${this.file}`, -ret);
    }
  }

  /** Writes each constant into the .rodata image at the offset its BTF variable has. */
  private setConstants(constants: Record<string, Buffer>): void {
    const vars = this.rodataVariables();
    const rodata = [...this.mapHandles.entries()].find(([n, m]) => n.endsWith('.rodata') && bpf.mapIsInternal(m));
    if (!rodata || vars.size === 0) throw new BpfError(`${this.file} has no .rodata constants to set`, ENOENT);
    const size = [0];
    const image = bpf.mapInitialValue(rodata[1], size);
    if (!image) throw new BpfError(`Cannot read the .rodata image of ${this.file}`, lastErrno() || EINVAL);
    const buf = viewOf(image, size[0]);
    for (const [name, value] of Object.entries(constants)) {
      const v = vars.get(name);
      if (!v) throw new BpfError(`No constant "${name}" in ${this.file} (has: ${[...vars.keys()].join(', ')})`, ENOENT);
      if (value.length !== v.size)
        throw new BpfError(`Constant "${name}" of ${this.file} is ${v.size} bytes, got ${value.length}`, EINVAL);
      value.copy(buf, v.offset);
    }
  }

  /** Variables of BTF DATASEC ".rodata": name -> offset and size (libbpf fixed the offsets at open). */
  private rodataVariables(): Map<string, { offset: number; size: number }> {
    const vars = new Map<string, { offset: number; size: number }>();
    const btf = bpf.objectBtf(this.obj);
    if (!btf) return vars;
    const id = bpf.btfFindByNameKind(btf, '.rodata', BTF_KIND_DATASEC) as number;
    if (id <= 0) return vars;
    // struct btf_type { name_off, info (vlen in the low 16 bits), size } then vlen btf_var_secinfo { type, offset, size }.
    const t = bpf.btfTypeById(btf, id);
    const vlen = viewOf(t, 12).readUInt32LE(4) & 0xffff;
    const sec = viewOf(t, 12 + 12 * vlen);
    for (let i = 0; i < vlen; i++) {
      const at = 12 + 12 * i;
      const varType = bpf.btfTypeById(btf, sec.readUInt32LE(at));
      const name = bpf.btfNameByOffset(btf, viewOf(varType, 4).readUInt32LE(0)) as string;
      vars.set(name, { offset: sec.readUInt32LE(at + 4), size: sec.readUInt32LE(at + 8) });
    }
    return vars;
  }

  /** Creates the maps and loads every program into the kernel. */
  load(): void {
    if (this.loaded) throw new BpfError(`${this.file} is already loaded`, EINVAL);
    if (!this.obj) throw new BpfError(`${this.file} is closed`, EINVAL);
    const { result: ret, log } = captureLibbpfLog(() => bpf.objectLoad(this.obj) as number);
    try {
      if (ret < 0) throw this.loadError(-ret, log);
      this.loaded = true;
      for (const [name, p] of this.progHandles) {
        const fd = bpf.programFd(p) as number;
        if (fd >= 0) this.programs.set(name, new BpfProgram(fd, false, name));
      }
      for (const [name, m] of this.mapHandles) {
        const fd = bpf.mapFd(m) as number;
        if (fd >= 0) this.maps.set(name, new BpfMap(fd, false, name));
      }
    } finally {
      // The log buffer is only written during load; give the 4 MiB back now.
      this.log?.free();
      this.log = undefined;
    }
  }

  private loadError(errno: number, libbpfLog: string[]): BpfError {
    // libbpf names the program it failed on: "prog 'from_container': failed to load: -13".
    const failed = libbpfLog.map((l) => /prog '([^']+)': failed to load/.exec(l)?.[1]).find((n) => n !== undefined);
    if (failed !== undefined) {
      const verifierLog = this.log ? cString(this.log.buf) : '';
      return new BpfError(`Cannot load program "${failed}" of ${this.file}`, errno, verifierLog || libbpfLog.join('\n'));
    }
    return new BpfError(`Cannot load ${this.file}${libbpfSays(libbpfLog)}`, errno);
  }

  program(name: string): BpfProgram {
    const p = this.programs.get(name);
    if (p) return p;
    throw new BpfError(
      this.loaded
        ? `No loaded program "${name}" in ${this.file} (has: ${[...this.programs.keys()].join(', ')})`
        : `${this.file} is not loaded yet: call load() before program("${name}")`,
      ENOENT,
    );
  }

  map(name: string): BpfMap {
    const m = this.maps.get(name);
    if (m) return m;
    throw new BpfError(
      this.loaded
        ? `No map "${name}" in ${this.file} (has: ${[...this.maps.keys()].join(', ')})`
        : `${this.file} is not loaded yet: call load() before map("${name}")`,
      ENOENT,
    );
  }

  /** Every program in the object (loaded or not), by C function name. */
  programNames(): string[] {
    return [...this.progHandles.keys()];
  }

  /** Every map in the object, internal ones (".rodata", ".bss") under libbpf's names. */
  mapNames(): string[] {
    return [...this.mapHandles.keys()];
  }

  close(): void {
    for (const p of this.programs.values()) p.invalidate();
    for (const m of this.maps.values()) m.invalidate();
    this.programs.clear();
    this.maps.clear();
    if (this.obj) bpf.objectClose(this.obj);
    this.obj = null;
    this.log?.free();
    this.log = undefined;
  }

  [Symbol.dispose](): void {
    this.close();
  }

  private programHandle(name: string): Handle {
    const p = this.progHandles.get(name);
    if (!p) throw new BpfError(`No program "${name}" in ${this.file} (has: ${[...this.progHandles.keys()].join(', ')})`, ENOENT);
    return p;
  }

  private mapHandle(name: string): Handle {
    const m = this.mapHandles.get(name);
    if (!m) throw new BpfError(`No map "${name}" in ${this.file} (has: ${[...this.mapHandles.keys()].join(', ')})`, ENOENT);
    return m;
  }
}

function cString(b: Buffer): string {
  const end = b.indexOf(0);
  return b.toString('utf8', 0, end < 0 ? b.length : end);
}

/** The last few libbpf warnings, as a parenthesised tail for an error message. */
function libbpfSays(log: string[]): string {
  const tail = log.slice(-5).map((l) => l.replace(/^libbpf: /, ''));
  return tail.length ? ` (libbpf: ${tail.join('; ')})` : '';
}
