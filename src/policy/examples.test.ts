import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parsePolicyFiles } from './parse.js';

const EXAMPLES = join(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..', 'examples', 'policies');

test('the example policies in examples/policies parse as they are', () => {
  const files = readdirSync(EXAMPLES).filter((f) => /\.(ya?ml|json)$/.test(f));
  assert.ok(files.length >= 2);
  const policies = parsePolicyFiles(files.map((f) => ({ file: f, text: readFileSync(join(EXAMPLES, f), 'utf8') })));
  assert.deepEqual(policies.map((p) => p.key).sort(), ['shop/isolate', 'web-from-frontend']);
});
