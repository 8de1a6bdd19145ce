import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatHostPort, formatIP, parseIP, parsePrefix, prefixContains, parseMac, formatMac } from './ip.js';

test('parseIP and formatIP round-trip IPv4 and IPv6 in canonical form', () => {
  for (const text of ['10.200.1.2', '0.0.0.0', '255.255.255.255', 'fd10:200:0:1::2', '::', '::1', '2001:db8::1:0:0:1', 'fe80::1']) {
    assert.equal(formatIP(parseIP(text).bytes), text);
  }
  assert.equal(formatIP(parseIP('FD10:0200:0000:0001:0000:0000:0000:0002').bytes), 'fd10:200:0:1::2');
  assert.equal(formatIP(parseIP('::ffff:10.1.2.3').bytes), '::ffff:a01:203');
});

test('parseIP rejects malformed addresses with the value in the message', () => {
  for (const bad of ['10.200.1', '10.200.1.256', '01.2.3.4', '1::2::3', 'fd10:200', 'x', '', '1:2:3:4:5:6:7:8:9']) {
    assert.throws(() => parseIP(bad), new RegExp(`"${bad.replace(/\./g, '\\.')}" is not an IPv4 or IPv6 address`));
  }
});

test('parsePrefix checks length and host bits, prefixContains matches', () => {
  const p = parsePrefix('10.200.0.0/16');
  assert.ok(prefixContains(p, parseIP('10.200.7.9').bytes));
  assert.ok(!prefixContains(p, parseIP('10.201.0.1').bytes));
  assert.throws(() => parsePrefix('10.0.0.0/33'), /invalid prefix length/);
  assert.throws(() => parsePrefix('10.0.0.1/8'), /did you mean 10\.0\.0\.0\/8/);
  assert.ok(prefixContains(parsePrefix('fd10:200::/48'), parseIP('fd10:200:0:5::1').bytes));
});

test('MAC addresses parse and format', () => {
  assert.equal(formatMac(parseMac('02:AA:bb:0c:00:01')), '02:aa:bb:0c:00:01');
  assert.throws(() => parseMac('02:aa:bb'), /not a MAC address/);
});

test('formatHostPort() brackets IPv6 addresses', () => {
  assert.equal(formatHostPort('10.96.0.10', 80), '10.96.0.10:80');
  assert.equal(formatHostPort('fd10:96::a', 80), '[fd10:96::a]:80');
});
