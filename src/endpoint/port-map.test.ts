import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatPortMap, parsePortMap, parsePortMaps } from './port-map.js';

test('port maps: HOSTPORT:PORT with TCP by default, the protocol in any case', () => {
  assert.deepEqual(parsePortMap('8080:80'), { hostPort: 8080, containerPort: 80, protocol: 'TCP' });
  assert.deepEqual(parsePortMap('5353:53/udp'), { hostPort: 5353, containerPort: 53, protocol: 'UDP' });
  assert.equal(formatPortMap(parsePortMap('1:65535/TCP')), '1:65535/TCP');
  assert.deepEqual(parsePortMaps(['8080:80/TCP', '8080:80/UDP']).length, 2);
});

test('bad port maps: one line naming the value', () => {
  const cases: Array<[string[], RegExp]> = [
    [['0:80/TCP'], /host port 0 is not a port/],
    [['8080:65536/TCP'], /container port 65536 is not a port/],
    [['8080:80/SCTP'], /protocol "SCTP" is not TCP or UDP/],
    [['8080'], /"8080" is not HOSTPORT:CONTAINERPORT/],
    [['a:80'], /not HOSTPORT:CONTAINERPORT/],
    [['8080:80/TCP', '8080:81'], /host port 8080\/TCP is mapped twice/],
    [['8080:80/TCP', '8080:80/TCP'], /mapped twice/],
  ];
  for (const [texts, message] of cases) assert.throws(() => parsePortMaps(texts), (err: Error & { code?: string }) => err.code === 'invalid-argument' && message.test(err.message) && !err.message.includes('\n'));
});
