/**
 * The layering rule of DESIGN.md as data: layers point one way, and koffi (the
 * FFI) stays inside src/bpf and src/sys. Pure so it can be tested on any tree.
 */
export const LAYER_RANK: Record<string, number> = {
  common: 0,
  sys: 1,
  bpf: 2,
  link: 2,
  datapath: 3,
  endpoint: 4,
  identity: 4,
  ipcache: 4,
  policy: 4,
  ipam: 4,
  loadbalancer: 4,
  proxy: 4,
  kvstore: 4,
  node: 4,
  monitor: 4,
  api: 5,
  agent: 6,
  cli: 6,
  cni: 6,
  docker: 6,
};

const FFI_LAYERS = new Set(['bpf', 'sys']);

export interface Violation {
  file: string;
  line: number;
  message: string;
}

/** Layer of a path such as "src/datapath/x.ts", or undefined outside src/. */
export function layerOf(path: string): string | undefined {
  const m = /^src\/([^/]+)\//.exec(path);
  return m?.[1];
}

const IMPORT = /(?:^|\s)(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s+['"]([^'"]+)['"]/gm;

function resolve(from: string, spec: string): string {
  const parts = from.split('/').slice(0, -1);
  for (const seg of spec.split('/')) {
    if (seg === '..') parts.pop();
    else if (seg !== '.') parts.push(seg);
  }
  return parts.join('/');
}

export function checkFile(path: string, text: string): Violation[] {
  const layer = layerOf(path);
  if (layer === undefined) return [];
  const out: Violation[] = [];
  const rank = LAYER_RANK[layer];
  if (rank === undefined) {
    out.push({ file: path, line: 1, message: `src/${layer} is not a layer of DESIGN.md (${Object.keys(LAYER_RANK).join(', ')})` });
    return out;
  }
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    const line = text.slice(0, m.index).split('\n').length + (text[m.index] === '\n' ? 1 : 0);
    if (spec === 'koffi' && !FFI_LAYERS.has(layer)) {
      out.push({ file: path, line, message: `koffi may be imported only in src/bpf and src/sys, not src/${layer}` });
    }
    const testRunner = path.endsWith('.test.ts') && /^node:(test|assert)/.test(spec);
    if (layer === 'common' && spec.startsWith('node:') && !testRunner) {
      out.push({ file: path, line, message: `src/common is pure logic: no "${spec}" there` });
    }
    if (!spec.startsWith('.')) continue;
    const target = layerOf(resolve(path, spec) + '/');
    if (target === undefined || target === layer) continue;
    const targetRank = LAYER_RANK[target];
    if (targetRank === undefined) continue;
    if (targetRank > rank) {
      out.push({ file: path, line, message: `src/${layer} (layer ${rank}) imports upward from src/${target} (layer ${targetRank})` });
    }
  }
  return out;
}
