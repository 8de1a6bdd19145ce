/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: XDP only. The XDP load balancer's flow slots (struct xdp_flow_slot,
 * common.h): a key and its translation at a hash of the key.
 *   tnd_xdp_flows              ARRAY: FWD entries (the client's tuple)
 *   tnd_xdp_snat               ARRAY: reply translations of SNAT flows
 *   flow_slot(key), snat_slot(key)
 *                              the key's slot (NULL only if the map is gone)
 *   slot_holds(s, key)         s holds key's flow
 *   slot_take(s, mine, now)    claims s for a flow: 1 if s held that flow,
 *                              still open (`mine`: the caller checked the
 *                              slot is its flow's), 0 if s was free or its
 *                              flow had ended, -1 if another live flow has
 *                              it. On success the caller fills it:
 *   slot_fill(s, key, nat)     key and nat, all but last_seen_ns (the
 *                              claim's word, already set)
 *   slot_touch(s, tcp_flags, now)
 *                              keeps a held slot alive (a write at most once
 *                              a second) and notes a FIN or RST
 *   slot_release(s, key)       frees s if it holds key's flow
 *
 * Why arrays and not entries in the tnd_lb_nat LRU: a hash-map lookup costs
 * about 40 ns here (a call, hashing the 40-byte key, the bucket) and an LRU
 * insert about 130 ns, while the verifier inlines an array lookup into a few
 * instructions; a flow's key is hashed here with two multiplies. And an LRU
 * entry outlives its flow until the map is full: a SNAT port stayed taken
 * that long, so one backend and node address ran out of its 4,536 ports
 * after that many flows. A slot frees itself when its flow ends:
 * SLOT_CLOSING_NS after a FIN or RST, or after SLOT_TCP_IDLE_NS /
 * SLOT_UDP_IDLE_NS without a packet. Two live flows whose keys hash to one
 * slot cannot share it: the later one takes another SNAT port, or its FWD
 * entry goes to tnd_lb_nat.
 *
 * Concurrency: a claim is a compare-and-swap of nat.last_seen_ns, so two
 * CPUs never take one slot for two flows; the claimer then writes key and
 * nat. A reader on another CPU sees them whole unless it reads while they
 * are written, which only a packet of that same flow on another CPU can
 * (RSS keeps a flow on one), as with last_seen_ns written in place.
 */
#ifndef TND_SLOT_XDP_H
#define TND_SLOT_XDP_H

#ifndef TND_CTX_XDP
#error "slot_xdp.h is XDP only: define TND_CTX_XDP"
#endif

#include "compiler.h"
#include "common.h"
#include "lb.h"
#include "pkt.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << TND_XDP_SLOT_BITS);
	__type(key, __u32);
	__type(value, struct xdp_flow_slot);
} tnd_xdp_flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1 << TND_XDP_SLOT_BITS);
	__type(key, __u32);
	__type(value, struct xdp_flow_slot);
} tnd_xdp_snat SEC(".maps");

/* Idle time after which a flow's slot (and SNAT port) may go to another
 * flow. TCP: above the default 2 h keepalive; UDP: nf_conntrack's stream
 * timeout. After a FIN or RST: the backend's TIME_WAIT (60 s on Linux) is
 * over before the port meets the backend again. */
#define SLOT_TCP_IDLE_NS (3ULL * 3600 * NSEC_PER_SEC)
#define SLOT_UDP_IDLE_NS (120ULL * NSEC_PER_SEC)
#define SLOT_CLOSING_NS (60ULL * NSEC_PER_SEC)
#define SLOT_TOUCH_NS NSEC_PER_SEC

static __always_inline __u32 slot_index(const struct tnd_ct_key *k)
{
	const __u32 *s = (const __u32 *)k->saddr;
	const __u32 *d = (const __u32 *)k->daddr;
	__u32 h = lb_hash64(((__u64)(s[0] ^ s[1] ^ s[2] ^ s[3]) << 32) |
			    (d[0] ^ d[1] ^ d[2] ^ d[3]));

	return lb_hash64(((__u64)(h ^ k->proto) << 32) |
			 (((__u32)k->sport << 16) | k->dport)) &
	       ((1U << TND_XDP_SLOT_BITS) - 1);
}

static __always_inline struct xdp_flow_slot *flow_slot(const struct tnd_ct_key *key)
{
	__u32 idx = slot_index(key);

	return bpf_map_lookup_elem(&tnd_xdp_flows, &idx);
}

static __always_inline struct xdp_flow_slot *snat_slot(const struct tnd_ct_key *key)
{
	__u32 idx = slot_index(key);

	return bpf_map_lookup_elem(&tnd_xdp_snat, &idx);
}

/* The 40 bytes of two keys as ten words (keys are 2-aligned; 4-byte loads). */
static __always_inline int slot_key_eq(const struct tnd_ct_key *a, const struct tnd_ct_key *b)
{
	const __u32 *x = (const __u32 *)a, *y = (const __u32 *)b;
	__u32 diff = 0;
	int i;

#pragma unroll
	for (i = 0; i < sizeof(*a) / 4; i++)
		diff |= x[i] ^ y[i];
	return !diff;
}

static __always_inline int slot_holds(const struct xdp_flow_slot *s,
				      const struct tnd_ct_key *key)
{
	return s->nat.last_seen_ns && slot_key_eq(&s->key, key);
}

static __always_inline int slot_expired(const struct xdp_flow_slot *s, __u64 seen, __u64 now)
{
	__u64 timeout = s->nat.flags & TND_LB_NAT_F_CLOSING ? SLOT_CLOSING_NS :
			s->key.proto == IPPROTO_TCP ? SLOT_TCP_IDLE_NS : SLOT_UDP_IDLE_NS;

	/* Signed: a claim in the current tick leaves seen one ahead of now. */
	return (__s64)(now - seen) > (__s64)timeout;
}

static __always_inline int slot_take(struct xdp_flow_slot *s, int mine, __u64 now)
{
	__u64 seen = s->nat.last_seen_ns;
	int live = seen && !slot_expired(s, seen, now);
	int open = live && !(s->nat.flags & TND_LB_NAT_F_CLOSING);

	if (live && !mine)
		return -1;
	/* now may equal seen (the same tick): the swap must still change the word. */
	if (now == seen)
		now++;
	if (__sync_val_compare_and_swap(&s->nat.last_seen_ns, seen, now) != seen)
		return -1;
	return open && mine;
}

static __always_inline void slot_fill(struct xdp_flow_slot *s, const struct tnd_ct_key *key,
				      const struct tnd_lb_nat *nat)
{
	__builtin_memcpy(&s->key, key, sizeof(*key));
	__builtin_memcpy(s->nat.addr, nat->addr, TND_ADDR_LEN);
	__builtin_memcpy(s->nat.addr2, nat->addr2, TND_ADDR_LEN);
	s->nat.port = nat->port;
	s->nat.port2 = nat->port2;
	s->nat.backend_id = nat->backend_id;
	s->nat.service_id = nat->service_id;
	s->nat.flags = nat->flags;
	s->nat.family = nat->family;
}

static __always_inline void slot_touch(struct xdp_flow_slot *s, __u8 tcp_flags, __u64 now)
{
	if (tcp_flags & (TCP_F_FIN | TCP_F_RST))
		s->nat.flags |= TND_LB_NAT_F_CLOSING;
	if ((__s64)(now - s->nat.last_seen_ns) >= (__s64)SLOT_TOUCH_NS)
		s->nat.last_seen_ns = now;
}

static __always_inline void slot_release(struct xdp_flow_slot *s, const struct tnd_ct_key *key)
{
	__u64 seen = s->nat.last_seen_ns;

	if (seen && slot_key_eq(&s->key, key))
		__sync_val_compare_and_swap(&s->nat.last_seen_ns, seen, 0);
}

#endif /* TND_SLOT_XDP_H */
