import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { randomBytes } from 'node:crypto';
import { bpfObjectPath, repoRoot, type Codec } from './index.js';
import * as wire from './generated/wire.js';

type Layout =
  | { kind: 'int'; size: number }
  | { kind: 'bytes'; size: number }
  | { kind: 'array'; n: number; elem: Layout; size: number }
  | { kind: 'struct'; name: string; size: number; fields: Array<{ name: string; offset: number; type: Layout }> };
interface Generator {
  collectTypes(objects: string[]): { structs: Array<Layout & { kind: 'struct' }>; enums: Array<{ name: string; values: Array<{ name: string; val: number }> }> };
  defaultObjects(): string[];
  generateWire(objects: string[]): string;
}

const GEN = join(repoRoot(), 'tools/gen-codecs.mjs');
const gen = (await import(pathToFileURL(GEN).href)) as Generator;
const pascal = (s: string) => s.split('_').filter(Boolean).map((w) => w[0]!.toUpperCase() + w.slice(1)).join('');
const camel = (s: string) => pascal(s)[0]!.toLowerCase() + pascal(s).slice(1);
const isZero = (v: unknown): boolean =>
  typeof v === 'number' || typeof v === 'bigint' ? v == 0 : Buffer.isBuffer(v) ? v.every((x) => x === 0) : Array.isArray(v) ? v.every(isZero) : Object.values(v as object).every(isZero);

describe('src/bpf/generated/wire.ts', () => {
  const objects = gen.defaultObjects();
  let structs: ReturnType<Generator['collectTypes']>['structs'] = [];
  let enums: ReturnType<Generator['collectTypes']>['enums'] = [];
  before(() => ({ structs, enums } = gen.collectTypes(objects)));
  const exported = wire as unknown as Record<string, unknown>;

  it('is what tools/gen-codecs.mjs makes from build/bpf/*.o today (no drift)', () => {
    assert.ok(objects.length > 0, 'no objects in build/bpf: run make -C bpf');
    const r = spawnSync(process.execPath, [GEN, '--check'], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });

  it('testdata/selftest-wire.ts matches ffi_selftest.o', () => {
    const r = spawnSync(process.execPath, [GEN, '--check', '--objects', bpfObjectPath('tests/ffi_selftest.o'), '--out', join(repoRoot(), 'src/bpf/testdata/selftest-wire.ts')], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
  });

  it('has a codec of the BTF size for every tnd_ struct, each field at its BTF offset', () => {
    assert.ok(structs.length > 0);
    for (const s of structs) {
      const codec = exported[pascal(s.name)] as Codec<Record<string, unknown>>;
      assert.ok(codec, `no codec for struct ${s.name}`);
      assert.equal(codec.size, s.size, `${s.name} size`);
      for (const f of s.fields) {
        if (/^pad/.test(f.name)) continue;
        // Only this field's bytes set: the decoded object has only this field non-zero,
        // and encoding it back gives the same bytes.
        const b = Buffer.alloc(s.size);
        b.fill(0xff, f.offset, f.offset + f.type.size);
        const v = codec.decode(b);
        for (const [k, val] of Object.entries(v)) assert.equal(isZero(val), k !== camel(f.name), `${s.name}.${f.name} -> ${k}`);
        assert.deepEqual(codec.encode(v), b, `${s.name}.${f.name} round trip`);
      }
    }
  });

  it('round-trips random bytes (padding comes back as zero)', () => {
    for (const s of structs) {
      const codec = exported[pascal(s.name)] as Codec<unknown>;
      for (let i = 0; i < 20; i++) {
        const v = codec.decode(randomBytes(s.size));
        assert.deepEqual(codec.decode(codec.encode(v)), v);
      }
    }
  });

  it('has every tnd_ enum with its values and a name table', () => {
    for (const e of enums) {
      const values = exported[pascal(e.name)] as Record<string, number>;
      const names = exported[`${camel(e.name)}Names`] as Record<number, string>;
      for (const { name, val } of e.values) {
        assert.equal(values[name], val, `${e.name}.${name}`);
        assert.ok(names[val], `${e.name} name of ${val}`);
      }
    }
  });
});

describe('tools/gen-codecs.mjs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tnd-gen-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const compile = (name: string, source: string) => {
    writeFileSync(join(dir, `${name}.c`), source);
    execFileSync('clang-19', ['-O2', '-g', '-target', 'bpf', '-c', join(dir, `${name}.c`), '-o', join(dir, `${name}.o`)]);
    return join(dir, `${name}.o`);
  };

  it('fails when a struct differs between two objects, naming both', () => {
    const a = compile('a', 'struct tnd_x { unsigned int a; }; struct tnd_x use_a;');
    const b = compile('b', 'struct tnd_x { unsigned long long a; }; struct tnd_x use_b;');
    const r = spawnSync(process.execPath, [GEN, '--objects', a, b, '--out', join(dir, 'out.ts')], { encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /tnd_x differs between .*a\.o and .*b\.o/);
  });

  it('is deterministic: the same objects give the same text', () => {
    const objs = gen.defaultObjects();
    assert.equal(gen.generateWire(objs), gen.generateWire([...objs].reverse().reverse()));
  });

  it('refuses bitfields in wire structs', () => {
    const o = compile('bits', 'struct tnd_bits { unsigned int a : 3; unsigned int b : 29; }; struct tnd_bits use_bits;');
    assert.throws(() => gen.generateWire([o]), /bitfields are not allowed/);
  });

  it('maps nested structs, u64 arrays and char arrays', () => {
    const o = compile(
      'nested',
      'struct tnd_inner { unsigned short x; unsigned char pad[2]; }; struct tnd_outer { struct tnd_inner in[2]; unsigned long long c[2]; char name[5]; }; struct tnd_outer use_outer;',
    );
    const text = gen.generateWire([o]);
    assert.match(text, /in: TndInner\[\];/);
    assert.match(text, /c: bigint\[\];/);
    assert.match(text, /name: Buffer;/);
    assert.doesNotMatch(text, /\bpad: /);
  });
});
