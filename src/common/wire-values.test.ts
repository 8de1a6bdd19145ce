import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatKeyAddress, keyAddress, ntohs, protocolName } from './wire-values.js';
import { parseIP } from './ip.js';

test('wire values read as people write them', () => {
  assert.equal(protocolName(6), 'TCP');
  assert.equal(protocolName(58), 'ICMPv6');
  assert.equal(protocolName(99), '99');
  assert.equal(ntohs(0x5000), 80);
  const v4 = new Uint8Array(16);
  v4.set([10, 200, 1, 2]);
  assert.equal(formatKeyAddress(v4, 2), '10.200.1.2');
  const v6 = Uint8Array.from([0xfd, 0x10, 2, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 2]);
  assert.equal(formatKeyAddress(v6, 10), 'fd10:200:0:1::2');
});

test('keyAddress() pads an address to its 16-byte key field and formatKeyAddress() reads it back', () => {
  const v4 = keyAddress(parseIP('10.96.0.10').bytes);
  assert.equal(v4.length, 16);
  assert.equal(formatKeyAddress(v4, 2), '10.96.0.10');
  assert.equal(formatKeyAddress(keyAddress(parseIP('fd10:96::a').bytes), 10), 'fd10:96::a');
});
