/**
 * `npm test`'s lint: the layering rule (tools/layers.ts) and the generated
 * files' header, over every TypeScript file under src/. Exit 1 on a violation.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkFile, type Violation } from './layers.js';

const root = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..');

function* tsFiles(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* tsFiles(path);
    else if (name.endsWith('.ts')) yield path;
  }
}

const violations: Violation[] = [];
let files = 0;
for (const path of tsFiles(join(root, 'src'))) {
  files++;
  const rel = relative(root, path);
  const text = readFileSync(path, 'utf8');
  violations.push(...checkFile(rel, text));
  if (rel.includes('/generated/') && !text.startsWith('// DO NOT EDIT'))
    violations.push({ file: rel, line: 1, message: 'generated files start with "// DO NOT EDIT" and come from tools/' });
}
for (const v of violations) process.stderr.write(`${v.file}:${v.line}: ${v.message}\n`);
if (violations.length) {
  process.stderr.write(`lint: ${violations.length} violation(s) in ${files} files\n`);
  process.exit(1);
}
process.stdout.write(`lint: ${files} files follow the layering rule\n`);
