import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkFile } from './layers.js';

test('checkFile allows imports downward and within a layer', () => {
  const text = `import { a } from '../common/ip.js';\nimport { b } from '../bpf/index.js';\nimport { c } from './x.js';\n`;
  assert.deepEqual(checkFile('src/datapath/x.ts', text), []);
});

test('checkFile rejects an upward import with its line', () => {
  const v = checkFile('src/datapath/x.ts', `// head\nimport { Agent } from '../agent/agent.js';\n`);
  assert.equal(v.length, 1);
  assert.equal(v[0]!.line, 2);
  assert.match(v[0]!.message, /src\/datapath \(layer 3\) imports upward from src\/agent \(layer 6\)/);
});

test('checkFile keeps koffi inside src/bpf and src/sys', () => {
  assert.deepEqual(checkFile('src/bpf/libbpf.ts', `import koffi from 'koffi';`), []);
  assert.deepEqual(checkFile('src/sys/index.ts', `import koffi from 'koffi';`), []);
  assert.match(checkFile('src/endpoint/x.ts', `import koffi from 'koffi';`)[0]!.message, /koffi may be imported only/);
  assert.match(checkFile('src/api/x.ts', `const k = await import('koffi');`)[0]!.message, /koffi may be imported only/);
});

test('checkFile keeps src/common pure and knows only the designed layers', () => {
  assert.match(checkFile('src/common/x.ts', `import { readFileSync } from 'node:fs';`)[0]!.message, /pure logic/);
  assert.match(checkFile('src/misc/x.ts', ``)[0]!.message, /not a layer/);
});

test('checkFile lets unit tests in src/common use the test runner', () => {
  assert.deepEqual(checkFile('src/common/x.test.ts', `import { test } from 'node:test';\nimport assert from 'node:assert/strict';`), []);
});
