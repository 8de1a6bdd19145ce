import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IDENTITY_ANY, IDENTITY_CLASS_ENDPOINTS } from '../common/identity.js';
import type { L7Entry, L7PolicyTable, ProxyFlow } from '../common/l7-policy.js';
import { CompiledPolicy, type RequestView } from './rules.js';

function view(method: string, path: string, host?: string, headers: Record<string, string[]> = {}): RequestView {
  return { method, path, host, headerAll: (n) => headers[n] ?? [] };
}

function table(entries: Record<number, L7Entry[]>, revision = 1): L7PolicyTable {
  return { revision, ruleNames: {}, endpoints: Object.entries(entries).map(([id, e]) => ({ endpointId: Number(id), entries: e })) };
}

const ingressFlow: ProxyFlow = { srcIdentity: 1000, dstIdentity: 2000, srcEndpoint: 0, dstEndpoint: 7, egress: false, ingress: true };

test('ingress: methods and paths are anchored regexes, literals compare exactly', () => {
  const p = new CompiledPolicy(
    table({
      7: [
        { direction: 'ingress', identity: 1000, firstPort: 80, lastPort: 80, ruleId: 11, rules: [{ method: 'POST', path: '/v1/request-landing' }] },
        { direction: 'ingress', identity: 1000, firstPort: 80, lastPort: 80, ruleId: 12, rules: [{ method: 'GET|HEAD', path: '/public/.*' }] },
      ],
    }),
  );
  const r = p.forFlow(ingressFlow, 80);
  assert.equal(r.decide(view('POST', '/v1/request-landing')), 11);
  assert.equal(r.decide(view('POST', '/v1/request-landing/x')), -1);
  assert.equal(r.decide(view('POST', '/v1/exhaust-port')), -1);
  assert.equal(r.decide(view('GET', '/v1/request-landing')), -1);
  assert.equal(r.decide(view('HEAD', '/public/a/b')), 12);
  assert.equal(r.decide(view('XGET', '/public/a')), -1);
  assert.equal(p.forFlow(ingressFlow, 81).decide(view('POST', '/v1/request-landing')), -1, 'port outside the range');
});

test('peer identity by lookupIdentities: exact, class, any; other peers are denied', () => {
  const p = new CompiledPolicy(
    table({
      7: [
        { direction: 'ingress', identity: IDENTITY_CLASS_ENDPOINTS, firstPort: 1, lastPort: 65535, ruleId: 3, rules: [{ path: '/a' }] },
        { direction: 'ingress', identity: IDENTITY_ANY, firstPort: 1, lastPort: 65535, ruleId: 4, rules: [{ path: '/b' }] },
        { direction: 'ingress', identity: 5000, firstPort: 1, lastPort: 65535, ruleId: 5, rules: [{ path: '/c' }] },
      ],
    }),
  );
  const r = p.forFlow(ingressFlow, 80);
  assert.equal(r.decide(view('GET', '/a')), 3);
  assert.equal(r.decide(view('GET', '/b')), 4);
  assert.equal(r.decide(view('GET', '/c')), -1);
  const world = p.forFlow({ ...ingressFlow, srcIdentity: 2 }, 80);
  assert.equal(world.decide(view('GET', '/a')), -1);
  assert.equal(world.decide(view('GET', '/b')), 4);
});

test('host and headers: presence, exact value, names case-insensitive', () => {
  const p = new CompiledPolicy(
    table({ 7: [{ direction: 'ingress', identity: 0, firstPort: 80, lastPort: 80, ruleId: 9, rules: [{ host: 'api(:80)?', headers: ['X-Token: s3cret', 'X-Trace'] }] }] }),
  );
  const r = p.forFlow(ingressFlow, 80);
  const h = { 'x-token': ['s3cret'], 'x-trace': [''] };
  assert.equal(r.decide(view('GET', '/', 'api', h)), 9);
  assert.equal(r.decide(view('GET', '/', 'api:80', h)), 9);
  assert.equal(r.decide(view('GET', '/', 'api:8080', h)), -1);
  assert.equal(r.decide(view('GET', '/', undefined, h)), -1);
  assert.equal(r.decide(view('GET', '/', 'api', { 'x-token': ['S3CRET'], 'x-trace': [''] })), -1);
  assert.equal(r.decide(view('GET', '/', 'api', { 'x-token': ['s3cret'] })), -1);
});

test('an entry without rules allows everything; a redirecting direction without entries denies', () => {
  const p = new CompiledPolicy(table({ 7: [{ direction: 'ingress', identity: 0, firstPort: 80, lastPort: 80, ruleId: 21, rules: [] }] }));
  assert.equal(p.forFlow(ingressFlow, 80).decide(view('DELETE', '/anything')), 21);
  assert.equal(p.forFlow({ ...ingressFlow, dstEndpoint: 8 }, 80).decide(view('GET', '/')), -1);
  assert.equal(p.forFlow({ ...ingressFlow, ingress: false }, 80).decide(view('GET', '/')), -1);
});

test('both directions redirected: each must allow', () => {
  const flow: ProxyFlow = { srcIdentity: 1000, dstIdentity: 2000, srcEndpoint: 3, dstEndpoint: 7, egress: true, ingress: true };
  const p = new CompiledPolicy(
    table({
      3: [{ direction: 'egress', identity: 2000, firstPort: 80, lastPort: 80, ruleId: 31, rules: [{ method: 'GET' }] }],
      7: [{ direction: 'ingress', identity: 1000, firstPort: 80, lastPort: 80, ruleId: 71, rules: [{ path: '/ok' }] }],
    }),
  );
  const r = p.forFlow(flow, 80);
  assert.equal(r.decide(view('GET', '/ok')), 71);
  assert.equal(r.decide(view('POST', '/ok')), -1);
  assert.equal(r.decide(view('GET', '/no')), -1);
  // egress judged against the destination identity
  assert.equal(p.forFlow({ ...flow, dstIdentity: 2001, ingress: false }, 80).decide(view('GET', '/ok')), -1);
  assert.equal(p.forFlow({ ...flow, ingress: false }, 80).decide(view('GET', '/x')), 31);
});

test('resolution is cached per table; an invalid regex matches nothing', () => {
  const p = new CompiledPolicy(table({ 7: [{ direction: 'ingress', identity: 0, firstPort: 80, lastPort: 80, ruleId: 1, rules: [{ path: '/(' }, { path: '/ok' }] }] }));
  assert.strictEqual(p.direction(7, 'ingress', 80, 1000), p.direction(7, 'ingress', 80, 1000));
  const r = p.forFlow(ingressFlow, 80);
  assert.equal(r.decide(view('GET', '/(')), -1);
  assert.equal(r.decide(view('GET', '/ok')), 1);
});
