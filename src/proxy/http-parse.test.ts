import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BODY_CHUNKED,
  BODY_CLOSE,
  BODY_LENGTH,
  BODY_NONE,
  BodyFramer,
  DEFAULT_LIMITS,
  HttpError,
  findHeadEnd,
  parseRequestHead,
  parseResponseHead,
  responseBodyKind,
} from './http-parse.js';

function req(text: string) {
  const buf = Buffer.from(text, 'latin1');
  const end = findHeadEnd(buf, 0, buf.length, 0, DEFAULT_LIMITS.maxHeadSize);
  assert.ok(end > 0, 'head is complete');
  return parseRequestHead(buf, 0, end);
}

function refused(text: string, status: number, what?: RegExp) {
  assert.throws(
    () => req(text),
    (err: unknown) => err instanceof HttpError && err.status === status && (!what || what.test(err.message)),
    JSON.stringify(text),
  );
}

test('a valid request head: method, target, version, Host, framing', () => {
  const h = req('POST /v1/request-landing?x=1 HTTP/1.1\r\nHost: api:80\r\nContent-Length: 5\r\nX-A:  b \r\n\r\n');
  assert.equal(h.method, 'POST');
  assert.equal(h.target, '/v1/request-landing?x=1');
  assert.equal(h.version, 11);
  assert.equal(h.host, 'api:80');
  assert.equal(h.bodyKind, BODY_LENGTH);
  assert.equal(h.contentLength, 5);
  assert.equal(h.header('x-a'), 'b');
  assert.deepEqual(h.headerAll('X-A'.toLowerCase()), ['b']);
  assert.ok(h.keepAlive);
  const c = req('GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n');
  assert.equal(c.bodyKind, BODY_CHUNKED);
  assert.ok(!c.keepAlive);
  const old = req('GET / HTTP/1.0\r\n\r\n');
  assert.equal(old.version, 10);
  assert.ok(!old.keepAlive);
  assert.ok(req('GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n').keepAlive);
  const up = req('GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
  assert.ok(up.upgrade && up.connUpgrade);
});

test('malformed request lines are refused with 400 (505 for another version)', () => {
  refused('GET  / HTTP/1.1\r\nHost: a\r\n\r\n', 400, /request line/);
  refused('GET /\r\nHost: a\r\n\r\n', 400);
  refused('G(T / HTTP/1.1\r\nHost: a\r\n\r\n', 400, /method/);
  refused('GET /a\x7fb HTTP/1.1\r\nHost: a\r\n\r\n', 400, /target/);
  refused('GET /a\x00 HTTP/1.1\r\nHost: a\r\n\r\n', 400);
  refused('GET / HTTP/1.1 \r\nHost: a\r\n\r\n', 400, /version/);
  refused('GET / HTTQ/1.1\r\nHost: a\r\n\r\n', 400, /version/);
  refused('GET / HTTP/1.x\r\nHost: a\r\n\r\n', 400, /version/);
  refused('GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505);
  refused('GET / HTTP/1.2\r\nHost: a\r\n\r\n', 505);
});

test('malformed header fields: bad name, bad value, NUL, obs-fold, lone CR, bare LF', () => {
  refused('GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n', 400, /header name/);
  refused('GET / HTTP/1.1\r\nHost: a\r\nName : x\r\n\r\n', 400, /header name/);
  refused('GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n', 400, /header name/);
  refused('GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n', 400, /header value/);
  refused('GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n', 400, /header value/);
  refused('GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n', 400, /header value/);
  refused('GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n folded\r\n\r\n', 400, /obs-fold/);
  refused('GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tfolded\r\n\r\n', 400, /obs-fold/);
  const bare = Buffer.from('GET / HTTP/1.1\nHost: a\r\n\r\n');
  assert.throws(() => findHeadEnd(bare, 0, bare.length, 0, 1000), (e: unknown) => e instanceof HttpError && e.status === 400);
  const bare2 = Buffer.from('GET / HTTP/1.1\r\nHost: a\n\n');
  assert.throws(() => findHeadEnd(bare2, 0, bare2.length, 0, 1000), /bare LF/);
});

test('framing ambiguities are refused: CL+TE, duplicate or listed CL, invalid CL, TE without chunked last', () => {
  refused('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /both/);
  refused('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n', 400, /more than one Content-Length/);
  refused('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n', 400, /invalid Content-Length/);
  refused('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n', 400, /invalid Content-Length/);
  refused('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n', 400, /invalid Content-Length/);
  refused('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n', 400, /invalid Content-Length/);
  refused('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n', 400, /invalid Content-Length/);
  refused('POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1234567890123456\r\n\r\n', 400, /invalid Content-Length/);
  refused('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n', 400, /after chunked/);
  refused('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n', 400, /final coding/);
  refused('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /after chunked/);
  refused('POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n', 501);
  refused('POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /HTTP\/1.0/);
});

test('Host is required once in HTTP/1.1', () => {
  refused('GET / HTTP/1.1\r\nX: a\r\n\r\n', 400, /without Host/);
  refused('GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n', 400, /more than one Host/);
});

test('head size and field count limits answer 431', () => {
  const big = Buffer.from(`GET / HTTP/1.1\r\nHost: a\r\nX: ${'a'.repeat(20000)}\r\n\r\n`);
  assert.throws(() => findHeadEnd(big, 0, big.length, 0, 16384), (e: unknown) => e instanceof HttpError && e.status === 431);
  const partial = big.subarray(0, 17000);
  assert.throws(() => findHeadEnd(partial, 0, partial.length, 0, 16384), (e: unknown) => e instanceof HttpError && e.status === 431);
  const many = `GET / HTTP/1.1\r\nHost: a\r\n${'X: 1\r\n'.repeat(101)}\r\n`;
  refused(many, 431);
});

test('findHeadEnd resumes where it stopped and finds the end across chunks', () => {
  const text = Buffer.from('GET / HTTP/1.1\r\nHost: a\r\n\r\nrest');
  let scanned = 0;
  for (let n = 1; n < text.length; n++) {
    const end = findHeadEnd(text, 0, n, scanned, 1000);
    if (end > 0) {
      assert.equal(end, text.length - 4);
      return;
    }
    scanned = Math.max(0, n - 3);
  }
  assert.fail('end not found');
});

function frame(kind: number, length: number, parts: string[]): { consumed: number[]; done: boolean } {
  const f = new BodyFramer();
  f.reset(kind, length, 400);
  const consumed: number[] = [];
  for (const p of parts) {
    const b = Buffer.from(p, 'latin1');
    consumed.push(f.advance(b, 0, b.length));
  }
  return { consumed, done: f.done };
}

test('chunked bodies are framed incrementally: sizes, extensions, trailers, any split', () => {
  const body = '5;ext=1\r\nhello\r\nA\r\n0123456789\r\n0\r\nTrailer: x\r\n\r\nNEXT';
  const whole = frame(BODY_CHUNKED, 0, [body]);
  assert.ok(whole.done);
  assert.equal(whole.consumed[0], body.length - 4);
  for (let split = 1; split < body.length - 4; split++) {
    const r = frame(BODY_CHUNKED, 0, [body.slice(0, split), body.slice(split)]);
    assert.ok(r.done, `split at ${split}`);
    assert.equal(r.consumed[0]! + r.consumed[1]!, body.length - 4);
  }
  assert.ok(!frame(BODY_CHUNKED, 0, ['5\r\nhel']).done);
  assert.ok(frame(BODY_LENGTH, 3, ['abcdef']).done);
  assert.deepEqual(frame(BODY_LENGTH, 3, ['ab', 'cdef']).consumed, [2, 1]);
  assert.ok(frame(BODY_NONE, 0, ['x']).done);
});

test('bad chunked bodies are refused: size, CR without LF, data longer than size, bare LF', () => {
  for (const bad of ['x\r\n', '\r\n', '5\n', '5\r\nhelloX\r\n', '1234567890123\r\n', '5\r\nhello\r\n0\r\n\n', '0\r\n\x00\r\n\r\n', '5 x\n']) {
    assert.throws(() => frame(BODY_CHUNKED, 0, [bad]), (e: unknown) => e instanceof HttpError && e.status === 400, JSON.stringify(bad));
  }
});

test('response heads: status, framing by method and status', () => {
  const parse = (t: string) => {
    const b = Buffer.from(t);
    return parseResponseHead(b, 0, findHeadEnd(b, 0, b.length, 0, 1000));
  };
  const ok = parse('HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\n');
  assert.equal(ok.status, 200);
  assert.equal(responseBodyKind(ok, 'GET'), BODY_LENGTH);
  assert.equal(responseBodyKind(ok, 'HEAD'), BODY_NONE);
  assert.equal(responseBodyKind(parse('HTTP/1.1 204 No Content\r\n\r\n'), 'GET'), BODY_NONE);
  assert.equal(responseBodyKind(parse('HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n'), 'GET'), BODY_NONE);
  assert.equal(responseBodyKind(parse('HTTP/1.1 100 Continue\r\n\r\n'), 'GET'), BODY_NONE);
  assert.equal(responseBodyKind(parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n'), 'GET'), BODY_CHUNKED);
  assert.equal(responseBodyKind(parse('HTTP/1.1 200 OK\r\n\r\n'), 'GET'), BODY_CLOSE);
  assert.equal(responseBodyKind(parse('HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n'), 'GET'), BODY_CLOSE);
  assert.equal(parse('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n').status, 101);
  assert.equal(parse('HTTP/1.1 200\r\n\r\n').status, 200);
  assert.ok(!parse('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n').keepAlive);
  assert.throws(() => parse('HTTP/1.1 2000 OK\r\n\r\n'), (e: unknown) => e instanceof HttpError && e.status === 502);
  assert.throws(() => parse('HTTP/1.1 200 OK\r\nBad Name: x\r\n\r\n'), (e: unknown) => e instanceof HttpError && e.status === 502);
});
