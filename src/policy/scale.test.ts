import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isCidrIdentity } from '../common/identity.js';
import { PROTO_TCP, PROTO_UDP } from '../common/policy-entry.js';
import { lookupEntries } from './lookup.js';
import { PolicyResolver } from './resolver.js';
import { verdictOracle } from './testdata/oracle.js';
import { scaleScenario } from './testdata/scale.js';

test('1,000 rules over 10,000 identities resolve for 100 endpoints and agree with the semantics on labels', () => {
  const { policies, identities, endpoints } = scaleScenario(1000, 10_000, 100);
  assert.equal(
    policies.reduce((n, p) => n + p.specs.length, 0),
    1000,
  );
  const resolver = new PolicyResolver(policies, identities);
  const resolved = endpoints.map((e) => resolver.entriesFor(e));
  assert.ok(resolved.every((entries) => entries.length > 0));

  // Peers to probe: every 97th endpoint identity, the reserved ones and every CIDR identity.
  const peers = identities.filter((p, i) => i % 97 === 0 || p.id < 256 || isCidrIdentity(p.id));
  const probes: Array<[number, number]> = [[PROTO_TCP, 8000], [PROTO_TCP, 8013], [PROTO_TCP, 443], [PROTO_TCP, 22], [PROTO_UDP, 8000]];
  let allowed = 0;
  let denied = 0;
  endpoints.forEach((endpoint, i) => {
    if (i % 10 !== 0) return;
    const expected = verdictOracle(policies, endpoint.labels);
    for (const peer of peers)
      for (const direction of ['ingress', 'egress'] as const)
        for (const [protocol, port] of probes) {
          const got = lookupEntries(resolved[i]!, direction, peer.id, protocol, port).verdict;
          const want = expected(direction, peer, protocol, port);
          assert.equal(got, want, `endpoint ${i} ${direction} peer ${peer.id} ${protocol}/${port}`);
          if (got === 'allow') allowed++;
          else denied++;
        }
  });
  assert.ok(allowed > 100 && denied > 100, `the probes see both verdicts (${allowed} allowed, ${denied} denied)`);
});
