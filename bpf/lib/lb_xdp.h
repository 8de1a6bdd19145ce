/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: XDP only. The load balancer of NodePort and ExternalIP frontends for
 * traffic from outside the node (xdp.c; the bench wrapper times the same
 * code). The includer defines TND_CTX_XDP and DECLARE_CONFIG(struct
 * tnd_xdp_config) first.
 *   xdp_lb_process(ctx)   the verdict for the frame in hand
 *   tnd_xdp_stats         PERCPU_ARRAY enum tnd_xdp_stat -> __u64 packets
 *
 * A packet to an ExternalIP frontend, or to a NodePort frontend at one of
 * the node's addresses, found in one lookup (scope TND_LB_SCOPE_XDP, which
 * the agent derives from the EXTERNAL and NODEPORT entries and the node's
 * addresses), keeps its flow's backend (the FWD entry of tnd_lb_nat) or
 * gets one (lb_select). The FIB says where the backend is:
 *   - a local endpoint (or an address of the node): DNAT only, a REV entry
 *     for lxc.o to rewrite the replies where they leave the backend, and
 *     XDP_PASS: the stack delivers it through the endpoint's programs, so
 *     policy applies there;
 *   - a remote backend: SNAT (the node's address, a port of
 *     TND_LB_SNAT_PORT_MIN..MAX, a REV entry for the replies coming back
 *     here) or DSR (the frontend in an IP option / destination option),
 *     DNAT, MACs from the FIB, TTL-1, XDP_TX back out of the receiving
 *     device or XDP_REDIRECT out of another one;
 *   - a next hop not resolved yet: DNAT only and XDP_PASS, no entries, so
 *     the stack resolves it and the flow's next packet is balanced here.
 * The FIB's answer for a backend (device, MACs, source address, or local)
 * is cached per CPU and receiving device for XDP_NEXTHOP_TTL_NS
 * (xdp_nexthops): a route or neighbour change reaches established flows
 * within a second. An established flow's backend is checked when its
 * last_seen_ns moves, at most once a second: a removed backend's flows
 * move to another one within a second.
 * No usable backend: a TCP reset or an ICMP port unreachable goes back.
 * A remote backend's SNAT reply (to a SNAT port: its REV entry says it is
 * one) gets its REV translation and goes back to the client. Anything else
 * passes untouched: IPv4 options, IPv6 extension headers, fragments, other
 * protocols, malformed packets.
 *
 * Cost: every helper call pays the CPU's return-stack mitigations (about
 * 20 ns here), and every hash lookup hashes its key. A packet that is not
 * for a frontend costs one hash lookup (two in the SNAT port range); an
 * established flow's, two (frontend, FWD); clock and next hop come from
 * per-CPU arrays, which the verifier inlines.
 */
#ifndef TND_LB_XDP_H
#define TND_LB_XDP_H

#ifndef TND_CTX_XDP
#error "lb_xdp.h is XDP only: define TND_CTX_XDP"
#endif

#include "compiler.h"
#include "ctx.h"
#include "common.h"
#include "csum.h"
#include "endpoints.h"
#include "lb.h"
#include "mac.h"
#include "nat.h"
#include "parse.h"
#include "clock.h"
#include "fib.h"
#include "dsr_xdp.h"
#include "refuse_xdp.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TND_XDP_STATS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tnd_xdp_stats SEC(".maps");

/*
 * Where a backend (or, for replies, a client) is, as the FIB said at most
 * XDP_NEXTHOP_TTL_NS ago: a FIB lookup costs more than the rest of an
 * established flow's packet, and routes and neighbours change far less
 * often than packets come. Per receiving device; private to the program.
 * A direct-mapped cache in a PERCPU_ARRAY (a slot per hash of address and
 * device; a collision only costs a FIB lookup): no hashing of a key, no
 * locking, no cache line shared between CPUs, and each CPU's slot stays
 * whole while it is read.
 */
struct xdp_nexthop_key {
	__u8 addr[TND_ADDR_LEN];
	__u32 ifindex;            /* the receiving device */
	__u8 family;
	__u8 pad[3];
};

struct xdp_nexthop {
	__u64 expires_ns;         /* bpf_ktime_get_coarse_ns() */
	__u32 ifindex;            /* egress device */
	__u8 local;               /* an endpoint or an address of this node */
	__u8 pad;
	__u8 smac[6];
	__u8 dmac[6];
	__u8 pad2[2];
	__u8 src[TND_ADDR_LEN];   /* the node's source address toward it */
	__u32 pad3;
};

struct xdp_nexthop_slot {
	struct xdp_nexthop_key key;
	struct xdp_nexthop nh;
};

#define XDP_NEXTHOP_BITS 12
#define XDP_NEXTHOP_TTL_NS NSEC_PER_SEC

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1 << XDP_NEXTHOP_BITS);
	__type(key, __u32);
	__type(value, struct xdp_nexthop_slot);
} xdp_nexthops SEC(".maps");

enum xdp_nexthop_kind {
	NH_REMOTE = 0,
	NH_LOCAL = 1,
	NH_UNRESOLVED = 2,        /* no neighbour entry yet: the stack resolves it */
	NH_ERROR = 3,             /* unreachable, forwarding off, ...: the stack decides */
};

/* A flow's last_seen_ns is written at most this often (per-packet writes
 * would bounce the entry's cache line between CPUs). */
#define XDP_LB_TOUCH_NS NSEC_PER_SEC
#define XDP_LB_SNAT_TRIES 4
#define XDP_LB_SNAT_RANGE (TND_LB_SNAT_PORT_MAX - TND_LB_SNAT_PORT_MIN + 1)

static __always_inline int xdp_stat(__u32 slot, int verdict)
{
	__u64 *n = bpf_map_lookup_elem(&tnd_xdp_stats, &slot);

	if (n)
		*n += 1;
	return verdict;
}

/*
 * The flow's hash: the 5-tuple mixed with the service, so one client's
 * flows to two services land independently.
 */
static __always_inline __u32 xdp_flow_hash(const struct pkt *p, __u32 service_id)
{
	const __u32 *s = (const __u32 *)p->tuple.saddr;
	const __u32 *d = (const __u32 *)p->tuple.daddr;
	__u32 h = lb_hash64(((__u64)(s[0] ^ s[1] ^ s[2] ^ s[3]) << 32) |
			    (d[0] ^ d[1] ^ d[2] ^ d[3]));
	__u64 ports = ((__u32)p->tuple.sport << 16) | p->tuple.dport;

	return lb_hash64((((__u64)(h ^ service_id)) << 32) |
			 (ports ^ ((__u32)p->tuple.proto << 8)));
}

/* L3 length of the frame (what the FIB compares with the MTU). */
static __always_inline __u16 xdp_l3_len(const struct pkt *p)
{
	return p->len - ETH_HLEN;
}

/*
 * Ingress-perspective FIB lookup of dst for the packet in hand, as if it
 * were forwarded: the receiving device, the client as source.
 */
static __always_inline int xdp_fib(struct xdp_md *ctx, const struct pkt *p,
				   const __u8 *src, const __u8 *dst,
				   __u16 tot_len, __u32 flags,
				   struct bpf_fib_lookup *fib)
{
	fib_params(fib, p, ctx->ingress_ifindex, src, dst, tot_len);
	return bpf_fib_lookup(ctx, fib, sizeof(*fib), flags);
}

/* The cache slot of dst as seen from the receiving device (Fibonacci hashing). */
static __always_inline __u32 xdp_nexthop_index(const __u32 *a, __u32 ifindex)
{
	return ((a[0] ^ a[1] ^ a[2] ^ a[3] ^ ifindex) * 0x9e3779b1U) >> (32 - XDP_NEXTHOP_BITS);
}

/*
 * Where dst is, from the cache or the FIB (ingress perspective, the client
 * as source; BPF_FIB_LOOKUP_SRC gives the node's address toward dst): *out
 * points at this CPU's cache slot, valid while the program runs. Only
 * resolved answers are cached. The FIB checks the MTU against the packet
 * that fills the cache. dst is 16 bytes, 8-aligned, zero after an IPv4
 * address.
 */
static __always_inline int xdp_nexthop(struct xdp_md *ctx, const struct pkt *p,
				       const __u8 *dst, __u16 tot_len, __u64 now,
				       const struct xdp_nexthop **out)
{
	const __u64 *d = (const __u64 *)dst;
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 idx = xdp_nexthop_index((const __u32 *)dst, ifindex);
	struct xdp_nexthop_slot *c;
	struct bpf_fib_lookup fib;
	__u64 *k;
	int ret;

	c = bpf_map_lookup_elem(&xdp_nexthops, &idx);
	if (!c)
		return NH_ERROR;
	*out = &c->nh;
	k = (__u64 *)c->key.addr;
	if (c->nh.expires_ns > now && k[0] == d[0] && k[1] == d[1] &&
	    c->key.ifindex == ifindex && c->key.family == p->tuple.family)
		return c->nh.local ? NH_LOCAL : NH_REMOTE;

	if (endpoint_lookup_addr(p->tuple.family, dst)) {
		c->nh.local = 1;
	} else {
		ret = xdp_fib(ctx, p, p->tuple.saddr, dst, tot_len, BPF_FIB_LOOKUP_SRC, &fib);
		if (ret == BPF_FIB_LKUP_RET_NOT_FWDED) {
			c->nh.local = 1; /* an address of the node itself */
		} else if (ret == BPF_FIB_LKUP_RET_NO_NEIGH) {
			c->nh.expires_ns = 0;
			return NH_UNRESOLVED;
		} else if (ret != BPF_FIB_LKUP_RET_SUCCESS) {
			c->nh.expires_ns = 0;
			return NH_ERROR;
		} else {
			c->nh.local = 0;
			c->nh.ifindex = fib.ifindex;
			__builtin_memcpy(c->nh.smac, fib.smac, ETH_ALEN);
			__builtin_memcpy(c->nh.dmac, fib.dmac, ETH_ALEN);
			__builtin_memset(c->nh.src, 0, TND_ADDR_LEN);
			if (p->tuple.family == TND_AF_INET)
				*(__u32 *)c->nh.src = fib.ipv4_src;
			else
				__builtin_memcpy(c->nh.src, fib.ipv6_src, TND_ADDR_LEN);
		}
	}
	k[0] = d[0];
	k[1] = d[1];
	c->key.ifindex = ifindex;
	c->key.family = p->tuple.family;
	c->nh.expires_ns = now + XDP_NEXTHOP_TTL_NS;
	return c->nh.local ? NH_LOCAL : NH_REMOTE;
}

/* MACs of the next hop, TTL/hop limit minus one; then out of its device. */
static __always_inline int xdp_forward(struct xdp_md *ctx, const struct pkt *p,
				       const struct xdp_nexthop *nh)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, nh->dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, nh->smac, ETH_ALEN);
	if (p->tuple.family == TND_AF_INET) {
		struct iphdr *ip = (void *)(eth + 1);

		if ((void *)(ip + 1) > data_end)
			return XDP_DROP;
		ipv4_ttl_dec(ip);
	} else {
		struct ipv6hdr *ip6 = (void *)(eth + 1);

		if ((void *)(ip6 + 1) > data_end)
			return XDP_DROP;
		ip6->hop_limit--;
	}
	if (nh->ifindex == ctx->ingress_ifindex)
		return xdp_stat(TND_XDP_TX, XDP_TX);
	return xdp_stat(TND_XDP_REDIRECTED, bpf_redirect(nh->ifindex, 0));
}

/* The REV entry of a flow whose backend replies to `dst`:`dport`. */
static __always_inline void xdp_rev_key(struct tnd_ct_key *rk, const struct pkt *p,
					const struct tnd_lb_nat *n,
					const __u8 *dst, __u16 dport)
{
	__builtin_memset(rk, 0, sizeof(*rk));
	__builtin_memcpy(rk->saddr, n->addr, TND_ADDR_LEN);
	__builtin_memcpy(rk->daddr, dst, TND_ADDR_LEN);
	rk->sport = n->port;
	rk->dport = dport;
	rk->proto = p->tuple.proto;
	rk->family = p->tuple.family;
	rk->dir = TND_LB_NAT_REV;
}

/*
 * A SNAT port for a new flow to a remote backend: the REV entry (backend ->
 * snat:port) is claimed with BPF_NOEXIST, so two flows never share one; an
 * entry that already names this very flow (its FWD entry was evicted) is
 * taken over. Returns the port, or 0.
 */
static __always_inline __u16 xdp_snat_port(const struct pkt *p, struct tnd_lb_nat *n,
					   const __u8 *snat_addr, __u32 hash)
{
	struct tnd_lb_nat rv = {};
	struct tnd_ct_key rk;
	int i;

	__builtin_memcpy(rv.addr, p->tuple.daddr, TND_ADDR_LEN);
	__builtin_memcpy(rv.addr2, p->tuple.saddr, TND_ADDR_LEN);
	rv.port = p->tuple.dport;
	rv.port2 = p->tuple.sport;
	rv.backend_id = n->backend_id;
	rv.service_id = n->service_id;
	rv.flags = TND_LB_NAT_F_SNAT;
	rv.family = p->tuple.family;
	rv.last_seen_ns = n->last_seen_ns;
#pragma unroll
	for (i = 0; i < XDP_LB_SNAT_TRIES; i++) {
		__u16 port = bpf_htons(TND_LB_SNAT_PORT_MIN + (hash + i * 2011) % XDP_LB_SNAT_RANGE);
		struct tnd_lb_nat *old;

		xdp_rev_key(&rk, p, n, snat_addr, port);
		if (!bpf_map_update_elem(&tnd_lb_nat, &rk, &rv, BPF_NOEXIST))
			return port;
		old = bpf_map_lookup_elem(&tnd_lb_nat, &rk);
		if (old && old->port2 == rv.port2 && old->port == rv.port &&
		    !__builtin_memcmp(old->addr2, rv.addr2, TND_ADDR_LEN) &&
		    !__builtin_memcmp(old->addr, rv.addr, TND_ADDR_LEN))
			return port;
	}
	return 0;
}

/* A backend of this node: replies are rewritten by lxc.o where they leave it. */
static __always_inline void xdp_local_rev(const struct pkt *p, const struct tnd_lb_nat *n)
{
	struct tnd_lb_nat rv = {};
	struct tnd_ct_key rk;

	xdp_rev_key(&rk, p, n, p->tuple.saddr, p->tuple.sport);
	__builtin_memcpy(rv.addr, p->tuple.daddr, TND_ADDR_LEN);
	rv.port = p->tuple.dport;
	rv.backend_id = n->backend_id;
	rv.service_id = n->service_id;
	rv.family = p->tuple.family;
	rv.last_seen_ns = n->last_seen_ns;
	bpf_map_update_elem(&tnd_lb_nat, &rk, &rv, BPF_ANY);
}

static __always_inline int xdp_refuse(struct xdp_md *ctx, const struct pkt *p)
{
	int err;

	if (p->tuple.proto == IPPROTO_TCP) {
		/* Never answer a reset with a reset. */
		if (p->tcp_flags & TCP_F_RST)
			return xdp_stat(TND_XDP_REFUSED, XDP_DROP);
		err = refuse_tcp_rst(ctx, p);
	} else {
		err = refuse_udp_unreach(ctx, p);
	}
	if (err)
		return xdp_stat(TND_XDP_ERRORS, XDP_DROP);
	return xdp_stat(TND_XDP_REFUSED, XDP_TX);
}

/* The flow's translation: its FWD entry while its backend exists, else a new choice. */
static __always_inline int xdp_flow(const struct pkt *p, const struct tnd_lb_service *svc,
				    struct tnd_ct_key *fk, struct tnd_lb_nat *n, __u64 now)
{
	struct tnd_lb_affinity_key client = {};
	struct tnd_lb_backend *b;
	struct tnd_lb_nat *old;
	__u32 id = 0;

	old = bpf_map_lookup_elem(&tnd_lb_nat, fk);
	if (old && old->service_id == svc->service_id) {
		/* The backend is checked when last_seen_ns moves (once a second). */
		if (now - old->last_seen_ns < XDP_LB_TOUCH_NS) {
			__builtin_memcpy(n, old, sizeof(*n));
			return 0;
		}
		if (bpf_map_lookup_elem(&tnd_lb_backends, &old->backend_id)) {
			old->last_seen_ns = now;
			__builtin_memcpy(n, old, sizeof(*n));
			return 0;
		}
	}
	client.service_id = svc->service_id;
	client.family = p->tuple.family;
	__builtin_memcpy(client.client, p->tuple.saddr, TND_ADDR_LEN);
	b = lb_select(svc, &client, xdp_flow_hash(p, svc->service_id),
		      CONFIG.maglev_size, &id);
	if (!b || b->family != p->tuple.family)
		return -1;
	__builtin_memset(n, 0, sizeof(*n));
	__builtin_memcpy(n->addr, b->addr, TND_ADDR_LEN);
	n->port = b->port;
	n->backend_id = id;
	n->service_id = svc->service_id;
	n->family = p->tuple.family;
	if (svc->flags & TND_LB_F_DSR)
		n->flags = TND_LB_NAT_F_DSR;
	n->last_seen_ns = now;
	return 1;
}

static __always_inline int xdp_lb_frontend(struct xdp_md *ctx, struct pkt *p,
					   const struct tnd_lb_service *svc,
					   int nodeport)
{
	int v4 = p->tuple.family == TND_AF_INET;
	__u8 frontend[TND_ADDR_LEN];
	__u16 frontend_port = p->tuple.dport;
	__u64 now = clock_now();
	const struct xdp_nexthop *nh = NULL;
	/* The FWD key is the packet's tuple (dir and pad are 0: FWD), good
	 * until the packet is rewritten: every map write comes before. */
	struct tnd_ct_key *fk = &p->tuple;
	struct tnd_lb_nat n;
	__u32 opt_len = 0;
	int ret, created, dsr, unresolved;

	/* The stack answers an expiring TTL (ICMP time exceeded). */
	if (p->ttl <= 1)
		return xdp_stat(TND_XDP_PASSED, XDP_PASS);
	created = xdp_flow(p, svc, fk, &n, now);
	if (created < 0)
		return xdp_refuse(ctx, p);
	__builtin_memcpy(frontend, p->tuple.daddr, TND_ADDR_LEN);

	dsr = n.flags & TND_LB_NAT_F_DSR;
	if (dsr && (p->tuple.proto == IPPROTO_UDP || (p->tcp_flags & TCP_F_SYN)))
		opt_len = v4 ? DSR_OPT4_LEN : DSR_OPT6_LEN;

	ret = xdp_nexthop(ctx, p, n.addr, xdp_l3_len(p) + opt_len, now, &nh);
	if (!nh)
		ret = NH_ERROR;
	unresolved = ret == NH_UNRESOLVED;
	if (unresolved && !dsr) {
		/* Translated for the stack to forward (it resolves the next hop);
		 * no entries, so the flow's next packet is balanced here. SNAT
		 * cannot go this way: the stack drops a forwarded packet whose
		 * source is its own address. */
		if (nat_rewrite(ctx, p, NAT_DST, n.addr, n.port))
			return xdp_stat(TND_XDP_ERRORS, XDP_DROP);
		return xdp_stat(TND_XDP_TO_LOCAL, XDP_PASS);
	}
	if (ret == NH_ERROR)
		return xdp_stat(TND_XDP_ERRORS, XDP_PASS);

	if (ret == NH_LOCAL) {
		if (created) {
			xdp_local_rev(p, &n);
			bpf_map_update_elem(&tnd_lb_nat, fk, &n, BPF_ANY);
			lb_count_connection(n.backend_id);
		}
		if (nat_rewrite(ctx, p, NAT_DST, n.addr, n.port))
			return xdp_stat(TND_XDP_ERRORS, XDP_DROP);
		return xdp_stat(TND_XDP_TO_LOCAL, XDP_PASS);
	}

	if (!dsr) {
		if (created) {
			/* NodePort: the node address the client used; ExternalIP:
			 * the node's address toward the backend. */
			__builtin_memcpy(n.addr2, nodeport ? frontend : nh->src, TND_ADDR_LEN);
			n.port2 = xdp_snat_port(p, &n, n.addr2, xdp_flow_hash(p, ~svc->service_id));
			if (!n.port2)
				return xdp_stat(TND_XDP_ERRORS, XDP_DROP);
			n.flags |= TND_LB_NAT_F_SNAT;
		}
	}
	if (created) {
		bpf_map_update_elem(&tnd_lb_nat, fk, &n, BPF_ANY);
		lb_count_connection(n.backend_id);
	}
	ret = dsr ? nat_rewrite(ctx, p, NAT_DST, n.addr, n.port)
		  : nat_rewrite2(ctx, p, n.addr2, n.port2, n.addr, n.port);
	if (ret)
		return xdp_stat(TND_XDP_ERRORS, XDP_DROP);
	if (opt_len) {
		int err = v4 ? dsr_insert4(ctx, *(__u32 *)frontend, frontend_port)
			     : dsr_insert6(ctx, frontend, frontend_port);

		if (err)
			return xdp_stat(TND_XDP_ERRORS, XDP_DROP);
	}
	/* DSR with the next hop not resolved yet: whole (entries, option), for
	 * the stack to forward; the backend must see the option on the SYN. */
	if (unresolved)
		return xdp_stat(TND_XDP_TO_LOCAL, XDP_PASS);
	return xdp_forward(ctx, p, nh);
}

/* A remote backend's reply to a SNAT flow: back to the client as the frontend. */
static __always_inline int xdp_lb_snat_reply(struct xdp_md *ctx, struct pkt *p)
{
	const struct xdp_nexthop *nh = NULL;
	struct tnd_lb_nat *r, n;
	struct tnd_ct_key rk;
	int ret;

	__builtin_memcpy(&rk, &p->tuple, sizeof(rk));
	rk.dir = TND_LB_NAT_REV;
	rk.pad = 0;
	r = bpf_map_lookup_elem(&tnd_lb_nat, &rk);
	if (!r || (r->flags & (TND_LB_NAT_F_SNAT | TND_LB_NAT_F_AT_CLIENT)) != TND_LB_NAT_F_SNAT)
		return xdp_stat(TND_XDP_PASSED, XDP_PASS);
	__builtin_memcpy(&n, r, sizeof(n));
	if (p->ttl <= 1)
		return xdp_stat(TND_XDP_PASSED, XDP_PASS);
	ret = xdp_nexthop(ctx, p, n.addr2, xdp_l3_len(p), clock_now(), &nh);
	if (ret == NH_ERROR || !nh)
		return xdp_stat(TND_XDP_ERRORS, XDP_PASS);
	if (nat_rewrite2(ctx, p, n.addr, n.port, n.addr2, n.port2))
		return xdp_stat(TND_XDP_ERRORS, XDP_DROP);
	xdp_stat(TND_XDP_SNAT_REPLIES, 0);
	/* Not resolved yet, or the client is local: the stack delivers it. */
	if (ret != NH_REMOTE)
		return XDP_PASS;
	return xdp_forward(ctx, p, nh);
}

static __always_inline int xdp_lb_process(struct xdp_md *ctx)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct tnd_lb_service_key key = {};
	struct tnd_lb_service *svc;
	struct ethhdr *eth = data;
	struct pkt p = {};
	__u16 dport;

	if ((void *)(eth + 1) > data_end)
		return xdp_stat(TND_XDP_PASSED, XDP_PASS);
	p.len = ctx_len(ctx);
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		if (parse_ipv4(ctx, &p) || p.l4_off != ETH_HLEN + sizeof(struct iphdr))
			return xdp_stat(TND_XDP_PASSED, XDP_PASS);
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		if (parse_ipv6(ctx, &p) || p.l4_off != ETH_HLEN + sizeof(struct ipv6hdr))
			return xdp_stat(TND_XDP_PASSED, XDP_PASS);
	} else {
		return xdp_stat(TND_XDP_PASSED, XDP_PASS);
	}
	if (p.tuple.proto != IPPROTO_TCP && p.tuple.proto != IPPROTO_UDP)
		return xdp_stat(TND_XDP_PASSED, XDP_PASS);

	__builtin_memcpy(key.addr, p.tuple.daddr, TND_ADDR_LEN);
	key.port = p.tuple.dport;
	key.proto = p.tuple.proto;
	key.family = p.tuple.family;
	key.scope = TND_LB_SCOPE_XDP;
	svc = lb_service_lookup(&key);
	if (svc)
		return xdp_lb_frontend(ctx, &p, svc, svc->flags & TND_LB_F_NODEPORT);
	/* Only a SNAT port can be a reply to translate: its REV entry says so. */
	dport = bpf_ntohs(p.tuple.dport);
	if (dport >= TND_LB_SNAT_PORT_MIN && dport <= TND_LB_SNAT_PORT_MAX)
		return xdp_lb_snat_reply(ctx, &p);
	return xdp_stat(TND_XDP_PASSED, XDP_PASS);
}

#endif /* TND_LB_XDP_H */
