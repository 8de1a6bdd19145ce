import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { TndIdentity, TndPolicyDir, TndPolicyVerdict } from '../bpf/generated/wire.js';
import * as identity from '../common/identity.js';
import { portRangeToPrefixes, type PolicyMapEntry } from '../common/policy-entry.js';
import { decodePolicyEntry, policyKey } from './policy-maps.js';
import { parseCidr } from './ipcache-map.js';

describe('enum tnd_identity (bpf/lib/common.h)', () => {
  it('has exactly the numbers of src/common/identity.ts', () => {
    const fromTs: Record<string, number> = {
      TND_IDENTITY_ANY: identity.IDENTITY_ANY,
      TND_IDENTITY_ENDPOINT_MIN: identity.ENDPOINT_IDENTITY_MIN,
      TND_IDENTITY_ENDPOINT_MAX: identity.ENDPOINT_IDENTITY_MAX,
      TND_IDENTITY_CIDR_MIN: identity.CIDR_IDENTITY_MIN,
      TND_IDENTITY_CIDR_MAX: identity.CIDR_IDENTITY_MAX,
      TND_IDENTITY_CLASS_ENDPOINTS: identity.IDENTITY_CLASS_ENDPOINTS,
      TND_IDENTITY_CLASS_WORLD: identity.IDENTITY_CLASS_WORLD,
    };
    for (const [name, value] of Object.entries(identity.ReservedIdentity)) fromTs[`TND_IDENTITY_${name.replace(/-/g, '_').toUpperCase()}`] = value;
    assert.deepEqual({ ...TndIdentity }, fromTs);
  });

  it('classes: the datapath\'s ranges are identityClass()\'s', () => {
    // bpf/lib/identity.h identity_class() tests these bounds; identity.ts is the contract.
    assert.equal(identity.identityClass(TndIdentity.TND_IDENTITY_ENDPOINT_MIN), TndIdentity.TND_IDENTITY_CLASS_ENDPOINTS);
    assert.equal(identity.identityClass(TndIdentity.TND_IDENTITY_ENDPOINT_MAX), TndIdentity.TND_IDENTITY_CLASS_ENDPOINTS);
    assert.equal(identity.identityClass(TndIdentity.TND_IDENTITY_CIDR_MIN), TndIdentity.TND_IDENTITY_CLASS_WORLD);
    assert.equal(identity.identityClass(TndIdentity.TND_IDENTITY_CIDR_MAX), TndIdentity.TND_IDENTITY_CLASS_WORLD);
    assert.equal(identity.identityClass(TndIdentity.TND_IDENTITY_WORLD), TndIdentity.TND_IDENTITY_CLASS_WORLD);
    assert.equal(identity.identityClass(TndIdentity.TND_IDENTITY_HOST), undefined);
  });
});

describe('policyKey()', () => {
  const base: PolicyMapEntry = { direction: 'ingress', identity: 256, protocol: 6, port: 80, portPrefixLen: 16, verdict: 'allow', ruleId: 1 };

  it('counts identity and direction (40 bits) for an L3 entry, + protocol (48) + port prefix bits for an L4 one', () => {
    assert.deepEqual(policyKey({ ...base, protocol: 0, port: 0, portPrefixLen: 0 }), { prefixlen: 40, identity: 256, direction: TndPolicyDir.TND_POLICY_INGRESS, proto: 0, dport: 0 });
    assert.deepEqual(policyKey({ ...base, direction: 'egress' }), { prefixlen: 64, identity: 256, direction: TndPolicyDir.TND_POLICY_EGRESS, proto: 6, dport: 0x5000 });
    assert.equal(policyKey({ ...base, port: 0, portPrefixLen: 0 }).prefixlen, 48);
    assert.equal(policyKey({ ...base, port: 1024, portPrefixLen: 6 }).prefixlen, 54);
  });

  it('keeps the port in network byte order (its prefix is its leading bits)', () => {
    assert.equal(policyKey({ ...base, port: 0x1234 }).dport, 0x3412);
  });

  it('refuses what the datapath could not mean, saying what and where', () => {
    assert.throws(() => policyKey({ ...base, port: 81, portPrefixLen: 15 }, 'entry 3'), /entry 3: port 81 is not the first of a \/15 block \(expected 80\)/);
    assert.throws(() => policyKey({ ...base, protocol: 0 }), /any protocol \(0\) has no port/);
    assert.throws(() => policyKey({ ...base, portPrefixLen: 17 }), /portPrefixLen 17 is not 0-16/);
    assert.throws(() => policyKey({ ...base, identity: -1 }), /identity -1/);
    assert.throws(() => policyKey({ ...base, protocol: 256 }), /protocol 256/);
    assert.throws(() => policyKey({ ...base, direction: 'up' as 'ingress' }), /direction "up"/);
  });

  it('round-trips every block of a port range through the key', () => {
    for (const { port, prefixLen } of portRangeToPrefixes(1, 65535)) {
      const e: PolicyMapEntry = { ...base, port, portPrefixLen: prefixLen };
      assert.deepEqual(decodePolicyEntry(policyKey(e), { verdict: TndPolicyVerdict.TND_POLICY_ALLOW, ruleId: 1 }), e);
    }
  });
});

describe('parseCidr()', () => {
  it('takes prefixes and plain addresses (/32, /128)', () => {
    assert.deepEqual(parseCidr('10.1.0.0/16'), { family: 4, bytes: Uint8Array.from([10, 1, 0, 0]), length: 16 });
    assert.equal(parseCidr('10.1.2.3').length, 32);
    assert.equal(parseCidr('fd10::1').length, 128);
    assert.throws(() => parseCidr('10.1.0.1/16'), /host bits set/);
    assert.throws(() => parseCidr('nonsense'), /not an IPv4 or IPv6 address/);
  });
});
