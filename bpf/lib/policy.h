/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: identity-based L3/L4 policy of endpoints.
 *   tnd_policy          HASH_OF_MAPS __u32 endpoint id -> LPM_TRIE
 *                       tnd_policy_key -> tnd_policy_entry: one endpoint's
 *                       whole policy, both directions. The agent builds a new
 *                       inner map and swaps it in with one update, so no
 *                       packet sees half a policy.
 *   tnd_policy_gen      ARRAY[1] __u32, bumped by the agent after every policy
 *                       or identity change
 *   policy_generation() the current generation (the verifier inlines the
 *                       array lookup: a load, fit for every packet)
 *   policy_dport(proto, dport)   the port a policy key uses: dport for TCP,
 *                       UDP and SCTP, 0 for the portless (ICMP)
 *   policy_check(endpoint_id, dir, peer_identity, proto, dport, &res)
 *                       the verdict on a new connection. Looks up the peer's
 *                       exact identity, its class (identity.h) and ANY by
 *                       longest prefix: a deny from any of them wins, else an
 *                       allow allows (rule of the most exact one), else a
 *                       redirect sends the flow through the L7 proxy
 *                       (proxy.h), else the default is deny with rule 0.
 *                       Returns 0 to allow, POLICY_REDIRECT, or
 *                       DROP_POLICY_DENIED, or DROP_NO_POLICY when the
 *                       endpoint has no policy map at all.
 *   send_policy(p, a)   the TND_EVENT_POLICY event of a verdict (a holds it)
 * Only new connections are looked up: conntrack remembers the generation an
 * entry was allowed at and asks again when it moved.
 */
#ifndef TND_POLICY_H
#define TND_POLICY_H

#include "compiler.h"
#include "common.h"
#include "drop.h"
#include "events.h"
#include "identity.h"
#include "pkt.h"
#include <linux/in.h>

/* Inner map template: swapped-in maps have its type, sizes and flags. */
struct policy_inner_map {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TND_POLICY_ENTRIES_MAX);
	__type(key, struct tnd_policy_key);
	__type(value, struct tnd_policy_entry);
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	/* Written once per policy change: no need to hold every slot in advance. */
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TND_ENDPOINTS_MAX);
	__type(key, __u32);
	__array(values, struct policy_inner_map);
} tnd_policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} tnd_policy_gen SEC(".maps");

/* Identity, direction, protocol and all 16 port bits. */
#define POLICY_KEY_BITS 64

/* policy_check()'s answer for TND_POLICY_REDIRECT (drop reasons are >= 130). */
#define POLICY_REDIRECT 1

struct policy_result {
	__u32 rule_id;
	__u8 verdict; /* enum tnd_policy_verdict */
};

static __always_inline __u32 policy_generation(void)
{
	__u32 zero = 0, *gen;

	gen = bpf_map_lookup_elem(&tnd_policy_gen, &zero);
	return gen ? *gen : 0;
}

static __always_inline __u16 policy_dport(__u8 proto, __u16 dport)
{
	if (proto == IPPROTO_TCP || proto == IPPROTO_UDP ||
	    proto == IPPROTO_SCTP)
		return dport;
	return 0;
}

/* The longest entry for one identity, or NULL. */
static __always_inline struct tnd_policy_entry *
policy_lookup_id(void *inner, struct tnd_policy_key *key, __u32 identity)
{
	key->identity = identity;
	return bpf_map_lookup_elem(inner, key);
}

/* Takes in one lookup's entry; 1 when it denies, which ends the search. */
static __always_inline int policy_note(const struct tnd_policy_entry *e,
				       struct policy_result *res)
{
	if (!e)
		return 0;
	if (e->verdict == TND_POLICY_DENY) {
		res->verdict = TND_POLICY_DENY;
		res->rule_id = e->rule_id;
		return 1;
	}
	/* The first allow is the most exact one: its rule is reported. */
	if (e->verdict == TND_POLICY_ALLOW && res->verdict != TND_POLICY_ALLOW) {
		res->verdict = TND_POLICY_ALLOW;
		res->rule_id = e->rule_id;
	}
	/* A redirect counts only while nothing allows; the most exact one too. */
	if (e->verdict == TND_POLICY_REDIRECT && !res->verdict) {
		res->verdict = TND_POLICY_REDIRECT;
		res->rule_id = e->rule_id;
	}
	return 0;
}

/*
 * A global function (verified once; its pointers may be NULL as far as the
 * verifier knows): new connections only, several call sites. The key is the
 * caller's, filled but for the identity (five arguments at most).
 */
__noinline int policy_lookup(__u32 endpoint_id, __u32 peer,
			     struct tnd_policy_key *key,
			     struct policy_result *res)
{
	__u32 cls = identity_class(peer);
	void *inner;

	if (!key || !res)
		return DROP_NO_POLICY;
	res->rule_id = 0;
	res->verdict = 0;
	inner = bpf_map_lookup_elem(&tnd_policy, &endpoint_id);
	if (!inner) {
		res->verdict = TND_POLICY_DENY;
		return DROP_NO_POLICY;
	}
	if (policy_note(policy_lookup_id(inner, key, peer), res))
		return DROP_POLICY_DENIED;
	if (cls != TND_IDENTITY_ANY &&
	    policy_note(policy_lookup_id(inner, key, cls), res))
		return DROP_POLICY_DENIED;
	if (peer != TND_IDENTITY_ANY &&
	    policy_note(policy_lookup_id(inner, key, TND_IDENTITY_ANY), res))
		return DROP_POLICY_DENIED;
	if (res->verdict == TND_POLICY_ALLOW)
		return 0;
	if (res->verdict == TND_POLICY_REDIRECT)
		return POLICY_REDIRECT;
	/* Nothing matched: default deny. */
	res->verdict = TND_POLICY_DENY;
	return DROP_POLICY_DENIED;
}

static __always_inline int policy_check(__u32 endpoint_id, __u8 dir,
					__u32 peer_identity, __u8 proto,
					__u16 dport, struct policy_result *res)
{
	struct tnd_policy_key key = {
		.prefixlen = POLICY_KEY_BITS,
		.direction = dir,
		.proto = proto,
		.dport = dport,
	};

	return policy_lookup(endpoint_id, peer_identity, &key, res);
}

static __always_inline void send_policy(const struct pkt *p,
					struct event_args *a)
{
	a->type = TND_EVENT_POLICY;
	a->reason = 0;
	a->target_ifindex = 0;
	event_emit(p, a);
}

#endif /* TND_POLICY_H */
