/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: the node's event stream.
 *   tnd_events                  RINGBUF map shared by every program of a node
 *   event_emit(p, args)         one struct tnd_event, reserved and written in
 *                               place (no stack copy); silently lost when the
 *                               ring is full, never a reason to drop a packet.
 *                               A BPF subprogram, not inlined.
 * Callers are drop.h (drops), trace.h (forwarding traces) and policy.h
 * (verdicts on new connections).
 */
#ifndef TND_EVENTS_H
#define TND_EVENTS_H

#include "compiler.h"
#include "common.h"
#include "pkt.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, TND_EVENTS_BYTES);
} tnd_events SEC(".maps");

/* What the caller knows beyond the parsed packet. */
struct event_args {
	__u32 ifindex;
	__u32 target_ifindex;
	__u32 src_identity;  /* policy events and policy drops only */
	__u32 dst_identity;
	__u32 rule_id;
	__u16 reason;
	__u16 endpoint_id;
	__u8 type;
	__u8 obs_point;
	__u8 ct_state;
	__u8 verdict;
	__u8 direction;
};

/*
 * Out of line: events are off the fast path, and many sites emit them. A
 * global function: the verifier checks it once, not once per path that
 * reaches it (so its pointers may be NULL, as far as it knows).
 */
__noinline int event_emit(const struct pkt *p, const struct event_args *a)
{
	struct tnd_event *ev;

	if (!p || !a)
		return 0;
	ev = bpf_ringbuf_reserve(&tnd_events, sizeof(*ev), 0);
	if (!ev)
		return 0;
	ev->timestamp_ns = bpf_ktime_get_ns();
	ev->type = a->type;
	ev->obs_point = a->obs_point;
	ev->reason = a->reason;
	ev->endpoint_id = a->endpoint_id;
	ev->ct_state = a->ct_state;
	ev->tcp_flags = p->tcp_flags;
	ev->ifindex = a->ifindex;
	ev->target_ifindex = a->target_ifindex;
	ev->pkt_len = p->len;
	ev->family = p->tuple.family;
	ev->proto = p->tuple.proto;
	ev->sport = p->tuple.sport;
	ev->dport = p->tuple.dport;
	ev->pad = 0;
	__builtin_memcpy(ev->saddr, p->tuple.saddr, TND_ADDR_LEN);
	__builtin_memcpy(ev->daddr, p->tuple.daddr, TND_ADDR_LEN);
	ev->src_identity = a->src_identity;
	ev->dst_identity = a->dst_identity;
	ev->rule_id = a->rule_id;
	ev->verdict = a->verdict;
	ev->direction = a->direction;
	__builtin_memset(ev->pad2, 0, sizeof(ev->pad2));
	bpf_ringbuf_submit(ev, 0);
	return 0;
}

#endif /* TND_EVENTS_H */
