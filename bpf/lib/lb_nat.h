/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: per-packet load balancing at the endpoint (tc; lxc.o). The FWD/REV
 * entries of tnd_lb_nat are described in common.h.
 *   lb_cluster_service(p)         the cluster-scope service whose frontend
 *                                 p is sent to, or NULL (not TCP/UDP, not a
 *                                 frontend). The one lookup every pod
 *                                 packet pays.
 *   lb_nat_fwd(ctx, p, svc, m, now)
 *                                 a pod's packet to a frontend: its flow's
 *                                 backend (FWD, while that backend exists),
 *                                 else a new one (lb_select, counted, FWD
 *                                 and REV with TND_LB_NAT_F_AT_CLIENT
 *                                 written); then DNAT. 0, -DROP_NO_SERVICE_
 *                                 BACKEND (nothing written) or -DROP_NAT_FAILED.
 *   lb_nat_rev(ctx, p, now)       a reply of a TND_CT_F_LB connection: the
 *                                 REV entry of its tuple rewrites its source
 *                                 (and with SNAT its destination). 0 (also
 *                                 when there is no entry) or -DROP_NAT_FAILED.
 *   lb_rev_ct_flags(p)            TND_CT_F_LB when the packet entering a
 *                                 backend was translated before it (a REV of
 *                                 its reply without AT_CLIENT), else 0: for
 *                                 the backend's new ingress entry.
 *   lb_dsr_recv(ctx, p, now)      to_container: reads, checks and removes a
 *                                 DSR option and writes the REV entry. 0:
 *                                 no DSR option, 1: done, or -DROP_DSR_INVALID
 *                                 / -DROP_WRITE_ERROR (nothing written).
 * The packet pointers are invalid after lb_nat_*() and lb_dsr_recv().
 */
#ifndef TND_LB_NAT_H
#define TND_LB_NAT_H

#include "compiler.h"
#include "ctx.h"
#include "common.h"
#include "csum.h"
#include "drop.h"
#include "fib.h"
#include "lb.h"
#include "nat.h"
#include "pkt.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

/* Not tnd_-named: a BTF anchor for the enums of tnd_lb_nat that TypeScript names. */
struct btf_lb_nat_types {
	enum tnd_lb_nat_dir dir;
	enum tnd_lb_nat_flags flags;
};

/* Once per object that includes lb_nat.h. */
#define LB_NAT_TYPES_IN_BTF() \
	const volatile struct btf_lb_nat_types *const volatile btf_lb_nat_types_anchor = 0

/* last_seen_ns moves at most this often (tnd_lb_nat's contract: 1 s behind). */
#define LB_NAT_TOUCH_INTERVAL NSEC_PER_SEC

/* Where IPv4 options start, and the IHL of a packet carrying the DSR option. */
#define LB_IPV4_OPT_OFF (ETH_HLEN + sizeof(struct iphdr))
#define LB_DSR_IHL 7
#define LB_IPV6_EXT_OFF (ETH_HLEN + sizeof(struct ipv6hdr))

static __always_inline struct tnd_lb_service *
lb_cluster_service(const struct pkt *p)
{
	struct tnd_lb_service_key k = {};

	if (p->tuple.proto != IPPROTO_TCP && p->tuple.proto != IPPROTO_UDP)
		return NULL;
	__builtin_memcpy(k.addr, p->tuple.daddr, TND_ADDR_LEN);
	k.port = p->tuple.dport;
	k.proto = p->tuple.proto;
	k.family = p->tuple.family;
	k.scope = TND_LB_SCOPE_CLUSTER;
	return lb_service_lookup(&k);
}

/* One multiply-rotate round: x enters h. */
static __always_inline __u64 lb_mix(__u64 h, __u64 x)
{
	h ^= x * 0x87c37b91114253d5ULL;
	h = (h << 27) | (h >> 37);
	return h * 5 + 0x52dce729;
}

/*
 * The flow's Maglev hash: every field of the 5-tuple and the service id
 * (so that two services sharing one table do not send one client's flows
 * to the same slot), finished with lb_hash64's avalanche.
 */
static __always_inline __u32 lb_flow_hash(const struct pkt *p, __u32 service_id)
{
	const __u32 *s = (const void *)p->tuple.saddr;
	const __u32 *d = (const void *)p->tuple.daddr;
	__u64 h = service_id;
	int i;

#pragma unroll
	for (i = 0; i < 4; i++)
		if (i == 0 || p->tuple.family == TND_AF_INET6)
			h = lb_mix(h, ((__u64)s[i] << 32) | d[i]);
	h = lb_mix(h, ((__u64)p->tuple.sport << 32) |
			      ((__u64)p->tuple.dport << 16) | p->tuple.proto);
	return lb_hash64(h);
}

/* The packet's own tuple as a tnd_lb_nat key of direction dir. */
static __always_inline void lb_nat_key(struct tnd_ct_key *k, const struct pkt *p,
				       __u8 dir)
{
	*k = p->tuple;
	k->dir = dir;
	k->pad = 0;
}

/* The tuple of the packet's reply as a tnd_lb_nat key of direction dir. */
static __always_inline void lb_nat_key_reply(struct tnd_ct_key *k,
					     const struct pkt *p, __u8 dir)
{
	__builtin_memcpy(k->saddr, p->tuple.daddr, TND_ADDR_LEN);
	__builtin_memcpy(k->daddr, p->tuple.saddr, TND_ADDR_LEN);
	k->sport = p->tuple.dport;
	k->dport = p->tuple.sport;
	k->proto = p->tuple.proto;
	k->family = p->tuple.family;
	k->dir = dir;
	k->pad = 0;
}

static __always_inline void lb_nat_touch(struct tnd_lb_nat *n, __u64 now)
{
	if (now - n->last_seen_ns >= LB_NAT_TOUCH_INTERVAL)
		n->last_seen_ns = now;
}

static __always_inline int lb_nat_fwd(struct __ctx_buff *ctx, struct pkt *p,
				      const struct tnd_lb_service *svc, __u32 m,
				      __u64 now)
{
	struct tnd_lb_nat n = {};
	struct tnd_lb_backend *b;
	struct tnd_lb_nat *fwd;
	struct tnd_ct_key k;
	__u32 id = 0;

	lb_nat_key(&k, p, TND_LB_NAT_FWD);
	fwd = bpf_map_lookup_elem(&tnd_lb_nat, &k);
	/* An existing flow keeps its backend, terminating or not, while it exists. */
	if (fwd && fwd->service_id == svc->service_id) {
		id = fwd->backend_id;
		if (bpf_map_lookup_elem(&tnd_lb_backends, &id)) {
			lb_nat_touch(fwd, now);
			__builtin_memcpy(n.addr, fwd->addr, TND_ADDR_LEN);
			n.port = fwd->port;
			return nat_rewrite(ctx, p, NAT_DST, n.addr, n.port);
		}
	}

	{
		/* Its own scope: the key's stack slot is free again below. */
		struct tnd_lb_affinity_key ak = {};

		ak.service_id = svc->service_id;
		ak.family = p->tuple.family;
		__builtin_memcpy(ak.client, p->tuple.saddr, TND_ADDR_LEN);
		b = lb_select(svc, &ak, lb_flow_hash(p, svc->service_id), m,
			      &id);
	}
	if (!b || b->family != p->tuple.family)
		return -DROP_NO_SERVICE_BACKEND;

	/*
	 * REV first, so no reply can arrive before its way back exists: the
	 * backend's reply, from the backend to the client as it sent.
	 */
	__builtin_memcpy(k.saddr, b->addr, TND_ADDR_LEN);
	__builtin_memcpy(k.daddr, p->tuple.saddr, TND_ADDR_LEN);
	k.sport = b->port;
	k.dport = p->tuple.sport;
	k.dir = TND_LB_NAT_REV;
	__builtin_memcpy(n.addr, p->tuple.daddr, TND_ADDR_LEN);
	n.port = p->tuple.dport;
	n.backend_id = id;
	n.service_id = svc->service_id;
	n.flags = TND_LB_NAT_F_AT_CLIENT;
	n.family = p->tuple.family;
	n.last_seen_ns = now;
	if (bpf_map_update_elem(&tnd_lb_nat, &k, &n, BPF_ANY) < 0)
		return -DROP_NAT_FAILED;

	lb_nat_key(&k, p, TND_LB_NAT_FWD);
	__builtin_memcpy(n.addr, b->addr, TND_ADDR_LEN);
	n.port = b->port;
	n.flags = 0;
	if (bpf_map_update_elem(&tnd_lb_nat, &k, &n, BPF_ANY) < 0)
		return -DROP_NAT_FAILED;
	lb_count_connection(id);
	return nat_rewrite(ctx, p, NAT_DST, n.addr, n.port);
}

static __always_inline int lb_nat_rev(struct __ctx_buff *ctx, struct pkt *p,
				      __u64 now)
{
	struct tnd_lb_nat *e, n;
	struct tnd_ct_key k;
	int ret;

	lb_nat_key(&k, p, TND_LB_NAT_REV);
	e = bpf_map_lookup_elem(&tnd_lb_nat, &k);
	if (!e)
		return 0;
	lb_nat_touch(e, now);
	n = *e;
	ret = nat_rewrite(ctx, p, NAT_SRC, n.addr, n.port);
	if (ret == 0 && (n.flags & TND_LB_NAT_F_SNAT))
		ret = nat_rewrite(ctx, p, NAT_DST, n.addr2, n.port2);
	return ret;
}

/*
 * A backend's translated reply bound outside the node leaves by the FIB's
 * device from here, not through the node's stack: its source is now the
 * frontend, which for a NodePort is one of the node's own addresses, and
 * the stack drops forwarded packets with a local source. The TTL drops by
 * one as the stack would. Returns the redirect, or CTX_OK to let the stack
 * route it when the FIB has no usable answer (no route, MTU, TTL).
 */
static __always_inline int lb_reply_exit_fib(struct __sk_buff *ctx,
					     const struct pkt *p)
{
	struct bpf_fib_lookup fib;
	void *data, *data_end;
	struct ethhdr *eth;
	int ret;

	if (p->ttl <= 1)
		return CTX_OK;
	fib_params(&fib, p, ctx->ifindex, p->tuple.saddr, p->tuple.daddr, ctx->len - ETH_HLEN);
	ret = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	if (ret != BPF_FIB_LKUP_RET_SUCCESS && ret != BPF_FIB_LKUP_RET_NO_NEIGH)
		return CTX_OK;

	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	if (p->tuple.family == TND_AF_INET) {
		struct iphdr *ip = data + ETH_HLEN;

		if ((void *)(ip + 1) > data_end)
			return CTX_OK;
		ipv4_ttl_dec(ip);
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			return CTX_OK;
		ip6->hop_limit--;
	}
	if (ret == BPF_FIB_LKUP_RET_NO_NEIGH)
		return bpf_redirect_neigh(fib.ifindex, NULL, 0, 0);
	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return bpf_redirect(fib.ifindex, 0);
}

static __always_inline __u8 lb_rev_ct_flags(const struct pkt *p)
{
	struct tnd_lb_nat *e;
	struct tnd_ct_key k;

	if (p->tuple.proto != IPPROTO_TCP && p->tuple.proto != IPPROTO_UDP)
		return 0;
	lb_nat_key_reply(&k, p, TND_LB_NAT_REV);
	e = bpf_map_lookup_elem(&tnd_lb_nat, &k);
	if (e && !(e->flags & TND_LB_NAT_F_AT_CLIENT))
		return TND_CT_F_LB;
	return 0;
}

/* The REV entry of a DSR flow: the backend's replies leave as the frontend. */
static __always_inline int lb_dsr_rev(const struct pkt *p, const __u8 *addr,
				      __u16 port, __u64 now)
{
	struct tnd_lb_nat r = {}, *e;
	struct tnd_ct_key k;

	lb_nat_key_reply(&k, p, TND_LB_NAT_REV);
	e = bpf_map_lookup_elem(&tnd_lb_nat, &k);
	/* UDP carries the option on every packet: write only what changed. */
	if (e && e->flags == TND_LB_NAT_F_DSR && e->port == port &&
	    !__builtin_memcmp(e->addr, addr, TND_ADDR_LEN)) {
		lb_nat_touch(e, now);
		return 0;
	}
	__builtin_memcpy(r.addr, addr, TND_ADDR_LEN);
	r.port = port;
	r.flags = TND_LB_NAT_F_DSR;
	r.family = p->tuple.family;
	r.last_seen_ns = now;
	if (bpf_map_update_elem(&tnd_lb_nat, &k, &r, BPF_ANY) < 0)
		return -DROP_WRITE_ERROR;
	return 0;
}

static __always_inline int lb_dsr_recv4(struct __ctx_buff *ctx, struct pkt *p,
					__u64 now)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + ETH_HLEN;
	struct tnd_dsr_opt4 *o = data + LB_IPV4_OPT_OFF;
	__u8 addr[TND_ADDR_LEN] = {};
	__u16 old, port, *w;
	int i;

	if ((void *)(ip + 1) + 1 > data_end || ip->ihl <= 5 ||
	    *(__u8 *)(ip + 1) != TND_DSR_OPT4_TYPE)
		return 0;
	if ((void *)(o + 1) > data_end)
		return -DROP_DSR_INVALID;
	if (ip->ihl != LB_DSR_IHL || o->len != sizeof(*o) || !o->port ||
	    !*(__u32 *)o->addr ||
	    (p->tuple.proto != IPPROTO_TCP && p->tuple.proto != IPPROTO_UDP))
		return -DROP_DSR_INVALID;
	port = o->port;
	__builtin_memcpy(addr, o->addr, 4);

	/* The header's checksum loses the option's words and gets the new IHL and length. */
	w = (void *)o;
#pragma unroll
	for (i = 0; i < 4; i++)
		csum_replace2(&ip->check, w[i], 0);
	old = *(__u16 *)ip;
	ip->ihl = 5;
	csum_replace2(&ip->check, old, *(__u16 *)ip);
	old = ip->tot_len;
	ip->tot_len = bpf_htons(bpf_ntohs(old) - sizeof(*o));
	csum_replace2(&ip->check, old, ip->tot_len);

	if (bpf_skb_adjust_room(ctx, -(__s32)sizeof(*o), BPF_ADJ_ROOM_NET, 0) < 0)
		return -DROP_WRITE_ERROR;
	p->l4_off -= sizeof(*o);
	p->len -= sizeof(*o);
	if (lb_dsr_rev(p, addr, port, now) < 0)
		return -DROP_WRITE_ERROR;
	return 1;
}

static __always_inline int lb_dsr_recv6(struct __ctx_buff *ctx, struct pkt *p,
					__u64 now)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	struct tnd_dsr_opt6 *o = data + LB_IPV6_EXT_OFF;
	__u8 addr[TND_ADDR_LEN];
	__u16 port;

	if ((void *)o + 3 > data_end || ip6->nexthdr != IPPROTO_DSTOPTS ||
	    o->type != TND_DSR_OPT6_TYPE)
		return 0;
	if ((void *)(o + 1) > data_end)
		return -DROP_DSR_INVALID;
	/* Exactly the option and its PadN, and the L4 header right behind. */
	if (o->hdrlen != 2 || o->len != 18 || o->padn_type != 1 ||
	    o->padn_len != 0 || !o->port || o->nexthdr != p->tuple.proto ||
	    p->l4_off != LB_IPV6_EXT_OFF + sizeof(*o) ||
	    (p->tuple.proto != IPPROTO_TCP && p->tuple.proto != IPPROTO_UDP))
		return -DROP_DSR_INVALID;
	port = o->port;
	__builtin_memcpy(addr, o->addr, TND_ADDR_LEN);
	ip6->nexthdr = o->nexthdr;
	ip6->payload_len = bpf_htons(bpf_ntohs(ip6->payload_len) - sizeof(*o));

	if (bpf_skb_adjust_room(ctx, -(__s32)sizeof(*o), BPF_ADJ_ROOM_NET, 0) < 0)
		return -DROP_WRITE_ERROR;
	p->l4_off -= sizeof(*o);
	p->len -= sizeof(*o);
	if (lb_dsr_rev(p, addr, port, now) < 0)
		return -DROP_WRITE_ERROR;
	return 1;
}

static __always_inline int lb_dsr_recv(struct __ctx_buff *ctx, struct pkt *p,
				       __u64 now)
{
	if (p->tuple.family == TND_AF_INET)
		return lb_dsr_recv4(ctx, p, now);
	return lb_dsr_recv6(ctx, p, now);
}

#endif /* TND_LB_NAT_H */
