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
  // One at a time: the two deathstar files are two versions of one policy (rule1).
  const keys = files.map((f) => parsePolicyFiles([{ file: f, text: readFileSync(join(EXAMPLES, f), 'utf8') }]).map((p) => p.key));
  assert.deepEqual(Object.fromEntries(files.map((f, i) => [f, keys[i]])), {
    'deathstar-l3-l4.yaml': ['rule1'],
    'deathstar-l7.yaml': ['rule1'],
    'shop-isolation.yaml': ['shop/isolate'],
    'web-from-frontend.yaml': ['web-from-frontend'],
  });
  const [l7] = parsePolicyFiles([{ file: 'l7', text: readFileSync(join(EXAMPLES, 'deathstar-l7.yaml'), 'utf8') }]);
  assert.deepEqual(l7!.specs[0]!.rules[0]!.ports![0]!.http, [{ method: 'POST', path: '/v1/request-landing' }]);
});
