/** The policy subsystem's public API: parse, resolve, trace, keep. */
export { parsePolicyFiles, parsePolicyDocument, type PolicySource } from './parse.js';
export type { Policy, PolicyKind, PolicySpec, PeerRule, Peer, PortRange } from './model.js';
export { referencedCidrs, identityForAddress, cidrLabel } from './cidr.js';
export { PolicyResolver, type Resolution } from './resolver.js';
export type { IdentityLabels } from './identity-index.js';
export { lookupEntries, type LookupResult } from './lookup.js';
export { tracePolicy, type TracePeer, type TraceRequest, type TraceResult, type DirectionTrace } from './trace.js';
export { RuleTable, formatRuleRef, type RuleRef, type RuleTableState } from './rule-table.js';
export { PolicyRepository, summarize, type PolicySummary } from './repository.js';
