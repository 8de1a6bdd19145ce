import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizePath } from './normalize.js';

test('the two bypasses of the issue normalise to the denied path', () => {
  assert.equal(normalizePath('/v1/./exhaust-port', 'POST'), '/v1/exhaust-port');
  assert.equal(normalizePath('/v1/%65xhaust-port', 'POST'), '/v1/exhaust-port');
});

test('dot segments, duplicate slashes, the query', () => {
  assert.equal(normalizePath('/v1/request-landing', 'GET'), '/v1/request-landing');
  assert.equal(normalizePath('/v1/a/../x', 'GET'), '/v1/x');
  assert.equal(normalizePath('/v1//x', 'GET'), '/v1/x');
  assert.equal(normalizePath('//v1///x/', 'GET'), '/v1/x/');
  assert.equal(normalizePath('/../../etc', 'GET'), '/etc');
  assert.equal(normalizePath('/a/b/..', 'GET'), '/a/');
  assert.equal(normalizePath('/a/.', 'GET'), '/a/');
  assert.equal(normalizePath('/', 'GET'), '/');
  assert.equal(normalizePath('/x?a=/../b', 'GET'), '/x');
  assert.equal(normalizePath('/.hidden/..x', 'GET'), '/.hidden/..x');
});

test('only unreserved characters are decoded; the rest stays encoded with upper-case hex', () => {
  assert.equal(normalizePath('/v1%2Fexhaust-port', 'GET'), '/v1%2Fexhaust-port');
  assert.equal(normalizePath('/v1%2fx', 'GET'), '/v1%2Fx');
  assert.equal(normalizePath('/a%20b', 'GET'), '/a%20b');
  assert.equal(normalizePath('/%7Euser/%2E%2E/x', 'GET'), '/x');
  assert.equal(normalizePath('/%41%5a%30-%5F', 'GET'), '/AZ0-_');
  assert.equal(normalizePath('/%25', 'GET'), '/%25');
});

test('invalid targets are refused', () => {
  assert.equal(normalizePath('/a%2', 'GET'), undefined);
  assert.equal(normalizePath('/a%zz', 'GET'), undefined);
  assert.equal(normalizePath('/a%00b', 'GET'), undefined);
  assert.equal(normalizePath('a/b', 'GET'), undefined);
  assert.equal(normalizePath('/a#frag', 'GET'), undefined);
  assert.equal(normalizePath('*', 'GET'), undefined);
  assert.equal(normalizePath('*', 'OPTIONS'), '*');
});

test('absolute-form: the path of the URI', () => {
  assert.equal(normalizePath('http://api.example:80/v1/./x?q', 'GET'), '/v1/x');
  assert.equal(normalizePath('http://api.example', 'GET'), '/');
  assert.equal(normalizePath('http://api.example?x', 'GET'), '/');
  assert.equal(normalizePath('http:///x', 'GET'), undefined);
});
