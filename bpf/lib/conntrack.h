/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: connection tracking.
 *   tnd_ct                   LRU_HASH tnd_ct_key -> tnd_ct_entry, node-wide
 *   ct_now()                 conntrack's clock: CLOCK_MONOTONIC in ns at tick
 *                            resolution (the coarse clock, cached per tick);
 *                            read it once per packet
 *   ct_find(p, dir, now, reply_first, &rkey, &reply)
 *                            the packet's live connection, or NULL. reply
 *                            says whether the packet goes against the first
 *                            packet; the entry's key is then rkey (the
 *                            reversed tuple), else p->tuple. reply_first: try
 *                            the reversed tuple first (the caller knows the
 *                            packet is most likely a reply).
 *   ct_account(e, p, reply, now, &res)
 *                            account a packet of a known connection; res
 *                            says what happened, and carries the entry's
 *                            flags (enum tnd_ct_flags: L7 proxy flows).
 *   ct_create(p, endpoint_id, now, policy_gen, flags, &res)
 *                            the packet opens a connection (after ct_find
 *                            missed and the policy allowed it): an entry
 *                            keyed by its tuple and ct_find's direction
 *                            (replacing any entry of that key).
 * Split so that policy sits between a miss and the entry it would create.
 *
 * An entry is keyed by the tuple of the connection's first packet and the
 * direction (relative to the endpoint) it was seen in. A packet is looked up
 * as (its tuple, dir); on a miss as (reversed tuple, other dir): that is the
 * reply of a connection the other program of the same endpoint created (a
 * reply leaving the pod answers a connection that entered it). Expired
 * entries count as misses; the LRU map reclaims them. A fresh SYN on a closed
 * TCP entry starts over.
 *
 * An established packet writes only its direction's two counters: flags,
 * state and report time are written when they change, last_seen_ns and
 * expires_ns at most once a second (so an entry may expire up to a second
 * before "timeout after the last packet").
 */
#ifndef TND_CONNTRACK_H
#define TND_CONNTRACK_H

#include "compiler.h"
#include "common.h"
#include "pkt.h"
#include "clock.h"
#include <linux/in.h>

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TND_CT_MAX);
	__type(key, struct tnd_ct_key);
	__type(value, struct tnd_ct_entry);
} tnd_ct SEC(".maps");

#define CT_TIMEOUT_TCP_NEW (60 * NSEC_PER_SEC)
#define CT_TIMEOUT_TCP_ESTABLISHED (6 * 3600 * NSEC_PER_SEC)
#define CT_TIMEOUT_TCP_CLOSING (10 * NSEC_PER_SEC)
#define CT_TIMEOUT_TCP_CLOSED (10 * NSEC_PER_SEC)
#define CT_TIMEOUT_OTHER (60 * NSEC_PER_SEC) /* UDP, ICMP */
#define CT_REPORT_INTERVAL NSEC_PER_SEC      /* trace aggregation */
/* last_seen_ns/expires_ns lag the last packet by less than this (Cilium's idea). */
#define CT_UPDATE_INTERVAL NSEC_PER_SEC

struct ct_result {
	__u8 state;   /* enum tnd_ct_state after this packet */
	__u8 created; /* this packet made the entry */
	__u8 reply;   /* this packet goes against the first packet */
	__u8 report;  /* aggregation: this packet deserves a trace event */
	__u8 flags;   /* the entry's enum tnd_ct_flags */
};

/* Conntrack's clock (clock.h), read once per packet. */
static __always_inline __u64 ct_now(void)
{
	return clock_now();
}

static __always_inline __u64 ct_timeout(__u8 proto, __u8 state)
{
	if (proto != IPPROTO_TCP)
		return CT_TIMEOUT_OTHER;
	switch (state) {
	case TND_CT_ESTABLISHED:
		return CT_TIMEOUT_TCP_ESTABLISHED;
	case TND_CT_CLOSING:
		return CT_TIMEOUT_TCP_CLOSING;
	case TND_CT_CLOSED:
		return CT_TIMEOUT_TCP_CLOSED;
	default:
		return CT_TIMEOUT_TCP_NEW;
	}
}

/* The state the flags alone imply; states only move forward. */
static __always_inline __u8 ct_next_state(__u8 state, __u8 proto, __u8 flags,
					  __u8 fwd, __u8 rev, int reply)
{
	__u8 next = state;

	if (proto == IPPROTO_TCP) {
		if ((flags & TCP_F_RST) || (fwd & rev & TCP_F_FIN))
			next = TND_CT_CLOSED;
		else if ((fwd | rev) & TCP_F_FIN)
			next = TND_CT_CLOSING;
		else if (reply)
			next = TND_CT_ESTABLISHED;
	} else if (reply) {
		next = TND_CT_ESTABLISHED;
	}
	return next > state ? next : state;
}

/* A hit that must be treated as a miss. */
static __always_inline int ct_dead(const struct tnd_ct_entry *e, __u64 now,
				   __u8 flags)
{
	if (now > e->expires_ns)
		return 1;
	return e->state == TND_CT_CLOSED && (flags & TCP_F_SYN) &&
	       !(flags & TCP_F_ACK);
}

static __always_inline void ct_reverse(struct tnd_ct_key *r,
				       const struct tnd_ct_key *t)
{
	__builtin_memcpy(r->saddr, t->daddr, TND_ADDR_LEN);
	__builtin_memcpy(r->daddr, t->saddr, TND_ADDR_LEN);
	r->sport = t->dport;
	r->dport = t->sport;
	r->proto = t->proto;
	r->family = t->family;
	r->dir = t->dir ^ 1;
	r->pad = 0;
}

/* A hit that is live, or NULL. */
static __always_inline struct tnd_ct_entry *
ct_lookup(const struct tnd_ct_key *k, __u64 now, __u8 flags)
{
	struct tnd_ct_entry *e = bpf_map_lookup_elem(&tnd_ct, k);

	if (e && ct_dead(e, now, flags))
		return NULL;
	return e;
}

static __always_inline struct tnd_ct_entry *
ct_find(struct pkt *p, __u8 dir, __u64 now, int reply_first,
	struct tnd_ct_key *rkey, int *reply)
{
	__u8 flags = p->tcp_flags;
	struct tnd_ct_entry *e;

	p->tuple.dir = dir;
	if (reply_first) {
		ct_reverse(rkey, &p->tuple);
		e = ct_lookup(rkey, now, flags);
		*reply = 1;
		if (!e) {
			e = ct_lookup(&p->tuple, now, flags);
			*reply = 0;
		}
	} else {
		e = ct_lookup(&p->tuple, now, flags);
		*reply = 0;
		if (!e) {
			ct_reverse(rkey, &p->tuple);
			e = ct_lookup(rkey, now, flags);
			*reply = 1;
		}
	}
	return e;
}

static __always_inline void ct_account(struct tnd_ct_entry *e,
				       const struct pkt *p, int reply,
				       __u64 now, struct ct_result *res)
{
	__u8 flags = p->tcp_flags, seen, fwd, rev, old_state;

	/*
	 * Plain read-modify-write, no atomics: a direction's counters are
	 * written by that direction's packets, which one sender rarely emits
	 * from two CPUs at the same instant; when it does, an increment may be
	 * lost. They are statistics, never an input to a verdict, and a locked
	 * add on this shared line cost several ns per counter (see
	 * bench/datapath-cost.ts).
	 */
	if (reply) {
		e->packets_rev += 1;
		e->bytes_rev += p->len;
		seen = e->tcp_flags_rev;
		if (flags & ~seen)
			e->tcp_flags_rev = seen | flags;
	} else {
		e->packets_fwd += 1;
		e->bytes_fwd += p->len;
		seen = e->tcp_flags_fwd;
		if (flags & ~seen)
			e->tcp_flags_fwd = seen | flags;
	}
	fwd = reply ? e->tcp_flags_fwd : seen | flags;
	rev = reply ? seen | flags : e->tcp_flags_rev;
	old_state = e->state;
	res->state = ct_next_state(old_state, p->tuple.proto, flags, fwd, rev,
				   reply);
	res->created = 0;
	res->reply = reply;
	res->flags = e->flags;
	res->report = (flags & ~seen) || res->state != old_state ||
		      now - e->last_report_ns > CT_REPORT_INTERVAL;
	if (res->state != old_state)
		e->state = res->state;
	/* Timestamps move at most once a CT_UPDATE_INTERVAL, or on a state change. */
	if (res->state != old_state ||
	    now - e->last_seen_ns >= CT_UPDATE_INTERVAL) {
		e->last_seen_ns = now;
		e->expires_ns = now + ct_timeout(p->tuple.proto, res->state);
	}
	if (res->report)
		e->last_report_ns = now;
}

static __always_inline void ct_create(const struct pkt *p, __u16 endpoint_id,
				      __u64 now, __u32 policy_gen, __u8 ct_flags,
				      struct ct_result *res)
{
	struct tnd_ct_entry n = {};
	__u8 flags = p->tcp_flags;

	n.created_ns = now;
	n.last_seen_ns = now;
	n.last_report_ns = now;
	n.packets_fwd = 1;
	n.bytes_fwd = p->len;
	n.tcp_flags_fwd = flags;
	n.endpoint_id = endpoint_id;
	n.policy_gen = policy_gen;
	n.flags = ct_flags;
	n.state = ct_next_state(TND_CT_NEW, p->tuple.proto, flags, flags, 0, 0);
	n.expires_ns = now + ct_timeout(p->tuple.proto, n.state);
	/* Full map: LRU evicts; a failed insert must not drop traffic. */
	bpf_map_update_elem(&tnd_ct, &p->tuple, &n, BPF_ANY);
	res->state = n.state;
	res->created = 1;
	res->reply = 0;
	res->report = 1;
	res->flags = ct_flags;
}

#endif /* TND_CONNTRACK_H */
