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
 * addresses), keeps its flow's backend (its FWD entry: a slot of
 * tnd_xdp_flows, slot_xdp.h, or, when another live flow holds that slot,
 * tnd_lb_nat) or gets one (lb_select). A TCP SYN always gets one, even on
 * a tuple with a FWD entry (a retransmission, or a port reused after its
 * connection ended): new connections go by the current Maglev table and
 * never to a terminating or removed backend. When the choice is the
 * entry's backend, the entry is refreshed in place and keeps its SNAT
 * port; a connection is counted when the entry is new, its backend
 * changes, or its earlier connection had ended (FIN or RST). The FIB says
 * where the backend is:
 *   - a local endpoint (or an address of the node): DNAT only, a REV entry
 *     in tnd_lb_nat for lxc.o to rewrite the replies where they leave the
 *     backend, and XDP_PASS: the stack delivers it through the endpoint's
 *     programs, so policy applies there;
 *   - a remote backend: SNAT (the node's address, a port of
 *     TND_LB_SNAT_PORT_MIN..MAX whose reply slot in tnd_xdp_snat is free)
 *     or DSR (the frontend in an IP option / destination option; the
 *     backend's node translates the replies), DNAT, MACs from the FIB,
 *     TTL-1, XDP_TX back out of the receiving device or XDP_REDIRECT out
 *     of another one;
 *   - a next hop not resolved yet: DNAT only and XDP_PASS, no entries, so
 *     the stack resolves it and the flow's next packet is balanced here.
 * The FIB's answer for a backend (device, MACs, source address, or local)
 * is cached per CPU and receiving device for XDP_NEXTHOP_TTL_NS
 * (xdp_nexthops): a route or neighbour change reaches established flows
 * within a second. An established flow's backend is checked when its
 * last_seen_ns moves, at most once a second: a removed backend's flows
 * move to another one within a second. Backends lb_select reads are
 * cached per CPU for XDP_BACKEND_TTL_NS (xdp_backends).
 * A FIN or RST marks the flow's slots closing: its SNAT port is free
 * again SLOT_CLOSING_NS later (slot_xdp.h has the idle timeouts).
 * No usable backend: a TCP reset or an ICMP port unreachable goes back.
 * A remote backend's SNAT reply (to a SNAT port whose slot holds its
 * flow) gets the slot's translation and goes back to the client. Anything
 * else passes untouched: IPv4 options, IPv6 extension headers, fragments,
 * other protocols, malformed packets.
 *
 * Cost: every helper call pays the CPU's return-stack mitigations (about
 * 20 ns here), and every hash lookup hashes its key. A packet that is not
 * for a frontend costs one hash lookup (the frontend's); an established
 * flow's, one hash lookup too (the FWD slot, clock, next hop and reply
 * slot are array entries, which the verifier inlines); a SYN's adds the
 * Maglev table's lookup (its backend comes from the per-CPU cache).
 * The verifier's budget shapes the code: the flow's translation, the
 * reply key and the FIB's answer live in a per-CPU scratch entry (the
 * stack is full), and the SNAT port's claim is a global function
 * (verified once, not once per path that reaches it).
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

/* lb_select's backend lookups go through this CPU's cache (below). */
static __always_inline struct tnd_lb_backend *xdp_backend_lookup(__u32 id);
#define lb_backend_lookup(id) xdp_backend_lookup(id)
#include "lb.h"
#include "mac.h"
#include "nat.h"
#include "parse.h"
#include "clock.h"
#include "fib.h"
#include "dsr_xdp.h"
#include "refuse_xdp.h"
#include "slot_xdp.h"

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

/*
 * The backends lb_select reads, as tnd_lb_backends had them at most
 * XDP_BACKEND_TTL_NS ago: a hash-map lookup costs about 40 ns here, and a
 * new connection's choice reads its backend every time. Per CPU,
 * direct-mapped by id (a collision only costs the lookup). A backend's
 * state or address reaches new connections within the TTL; that matters
 * only while a Maglev table still names it, since the agent rewrites the
 * tables when a backend leaves or terminates. Established flows check
 * their backend in tnd_lb_backends itself.
 */
struct xdp_backend_slot {
	__u32 id;
	__u32 pad;
	__u64 expires_ns;
	struct tnd_lb_backend b;
};

#define XDP_BACKEND_BITS 10
#define XDP_BACKEND_TTL_NS NSEC_PER_SEC

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1 << XDP_BACKEND_BITS);
	__type(key, __u32);
	__type(value, struct xdp_backend_slot);
} xdp_backends SEC(".maps");

static __always_inline struct tnd_lb_backend *xdp_backend_lookup(__u32 id)
{
	__u32 idx = (id * 0x9e3779b1U) >> (32 - XDP_BACKEND_BITS);
	struct xdp_backend_slot *c = bpf_map_lookup_elem(&xdp_backends, &idx);
	struct tnd_lb_backend *b;
	__u64 now = clock_now();

	if (c && c->id == id && c->expires_ns > now)
		return &c->b;
	b = bpf_map_lookup_elem(&tnd_lb_backends, &id);
	if (!b || !c)
		return b;
	__builtin_memcpy(&c->b, b, sizeof(*b));
	c->id = id;
	c->expires_ns = now + XDP_BACKEND_TTL_NS;
	return &c->b;
}

/*
 * Room for a reply key and the flow's translation off the stack, which
 * the balancer's other locals and spills fill. Per CPU; valid while the
 * program runs.
 */
struct xdp_scratch {
	struct tnd_ct_key rk;     /* a reply key */
	struct tnd_lb_nat n;      /* the flow's translation */
	struct bpf_fib_lookup fib;
	struct tnd_lb_affinity_key client; /* written only for affinity */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xdp_scratch);
} xdp_scratch SEC(".maps");

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
	struct bpf_fib_lookup *fib;
	struct xdp_scratch *x;
	__u32 zero = 0;
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
		x = bpf_map_lookup_elem(&xdp_scratch, &zero);
		if (!x) {
			c->nh.expires_ns = 0;
			return NH_ERROR;
		}
		fib = &x->fib;
		ret = xdp_fib(ctx, p, p->tuple.saddr, dst, tot_len, BPF_FIB_LOOKUP_SRC, fib);
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
			c->nh.ifindex = fib->ifindex;
			__builtin_memcpy(c->nh.smac, fib->smac, ETH_ALEN);
			__builtin_memcpy(c->nh.dmac, fib->dmac, ETH_ALEN);
			__builtin_memset(c->nh.src, 0, TND_ADDR_LEN);
			if (p->tuple.family == TND_AF_INET)
				*(__u32 *)c->nh.src = fib->ipv4_src;
			else
				__builtin_memcpy(c->nh.src, fib->ipv6_src, TND_ADDR_LEN);
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

/* The slot s holds this client's flow of key rk (the same translation back). */
static __always_inline int xdp_snat_mine(const struct xdp_flow_slot *s, const struct tnd_ct_key *rk,
					 const struct pkt *p)
{
	const __u32 *a = (const __u32 *)s->nat.addr, *b = (const __u32 *)s->nat.addr2;
	const __u32 *f = (const __u32 *)p->tuple.daddr, *c = (const __u32 *)p->tuple.saddr;
	__u32 diff = 0;
	int i;

#pragma unroll
	for (i = 0; i < TND_ADDR_LEN / 4; i++)
		diff |= (a[i] ^ f[i]) | (b[i] ^ c[i]);
	return !diff && s->nat.port == p->tuple.dport && s->nat.port2 == p->tuple.sport &&
	       slot_key_eq(&s->key, rk);
}

/* A claimed reply slot: the backend's replies go back to the client as the frontend. */
static __always_inline void xdp_snat_fill(struct xdp_flow_slot *s, const struct tnd_ct_key *rk,
					  const struct pkt *p, const struct tnd_lb_nat *n)
{
	__builtin_memcpy(&s->key, rk, sizeof(*rk));
	__builtin_memcpy(s->nat.addr, p->tuple.daddr, TND_ADDR_LEN);
	__builtin_memcpy(s->nat.addr2, p->tuple.saddr, TND_ADDR_LEN);
	s->nat.port = p->tuple.dport;
	s->nat.port2 = p->tuple.sport;
	s->nat.backend_id = n->backend_id;
	s->nat.service_id = n->service_id;
	s->nat.flags = TND_LB_NAT_F_SNAT;
	s->nat.family = p->tuple.family;
}

/*
 * Claims the reply slot of SNAT port `port` (network order) for the flow
 * of p to n's backend from n->addr2: 1 if the slot held this very flow
 * (same client and frontend), still open; 0 if it was free, expired or
 * its flow had ended; -1 if another live flow has it (or on a NULL).
 *
 * A global function: the verifier checks it once, not once for each way
 * the balancer reaches it (their product did not fit its budget). So its
 * arguments are pointers to whole structs it may see NULL, and it finds
 * the reply key's room itself.
 */
__attribute__((noinline)) int xdp_snat_try(const struct pkt *p, const struct tnd_lb_nat *n,
					   __u32 port, __u64 now)
{
	struct xdp_scratch *x;
	struct xdp_flow_slot *s;
	__u32 zero = 0;
	int ret;

	if (!p || !n)
		return -1;
	x = bpf_map_lookup_elem(&xdp_scratch, &zero);
	if (!x)
		return -1;
	xdp_rev_key(&x->rk, p, n, n->addr2, port);
	s = snat_slot(&x->rk);
	if (!s)
		return -1;
	ret = slot_take(s, xdp_snat_mine(s, &x->rk, p), now);
	if (ret >= 0)
		xdp_snat_fill(s, &x->rk, p, n);
	return ret;
}

/*
 * A SNAT port for a flow to a remote backend (n: its backend, and in addr2
 * the SNAT address): one whose reply slot is free, expired, or already
 * this client's (a SYN of the same tuple, or a flow whose FWD entry went,
 * keeps its port). `keep`, unless 0, is tried first: the port the flow
 * had. Returns the port (network order), or 0 when every try met another
 * live flow; *reused is 1 when the slot held this very flow, still open.
 */
static __always_inline __u16 xdp_snat_port(const struct pkt *p, const struct tnd_lb_nat *n,
					   __u32 hash, __u16 keep, __u64 now, int *reused)
{
	int i, ret;

#pragma clang loop unroll(disable)
	for (i = 0; i < XDP_LB_SNAT_TRIES; i++) {
		__u16 port = bpf_htons(TND_LB_SNAT_PORT_MIN + (hash + i * 2011) % XDP_LB_SNAT_RANGE);

		if (i == 0 && keep)
			port = keep;
		ret = xdp_snat_try(p, n, port, now);
		if (ret >= 0) {
			*reused = ret > 0;
			return port;
		}
	}
	return 0;
}

/* The reply slot of a SNAT flow, from its FWD value. */
static __always_inline struct xdp_flow_slot *
xdp_snat_slot_of(const struct pkt *p, const struct tnd_lb_nat *n, struct tnd_ct_key *rk)
{
	xdp_rev_key(rk, p, n, n->addr2, n->port2);
	return snat_slot(rk);
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

enum xdp_flow_kind {
	FLOW_KEPT = 0,            /* the FWD entry as it is */
	FLOW_TOUCHED = 1,         /* the FWD entry, last_seen_ns moved (its backend checked) */
	FLOW_NEW = 2,             /* a new choice: entries to write */
	FLOW_RESYN = 3,           /* a SYN chose the backend its FWD entry has: kept in place */
};

static __always_inline int xdp_is_syn(const struct pkt *p)
{
	return p->tuple.proto == IPPROTO_TCP &&
	       (p->tcp_flags & (TCP_F_SYN | TCP_F_ACK)) == TCP_F_SYN;
}

/*
 * The flow's translation. A packet of a flow with a FWD entry keeps its
 * backend while the backend exists. A SYN is a new connection, even on a
 * tuple seen before (a retransmission, or a port reused after the
 * connection ended), so it always chooses (lb_select): a terminating or
 * removed backend gets no new connection, and the table's current choice
 * applies. When that choice is the entry's backend, *old is the entry to
 * refresh in place and n keeps its SNAT address and port.
 */
static __always_inline int xdp_flow(const struct pkt *p, const struct tnd_lb_service *svc,
				    struct tnd_ct_key *fk, struct tnd_lb_nat *n, __u64 now,
				    struct tnd_lb_nat **oldp, struct xdp_flow_slot *fs, int *held,
				    struct tnd_lb_affinity_key *client)
{
	struct tnd_lb_backend *b;
	struct tnd_lb_nat *old = NULL;
	__u32 id = 0;

	/* Its slot; else tnd_lb_nat, where a flow goes whose slot another live
	 * flow had. Not looked up while the slot is free: a flow there whose
	 * slot has since freed chooses again, and keeps its backend and SNAT
	 * port while the table still chooses that backend. */
	*held = fs && slot_holds(fs, fk);
	if (*held)
		old = &fs->nat;
	else if (fs && fs->nat.last_seen_ns && !slot_expired(fs, fs->nat.last_seen_ns, now))
		old = bpf_map_lookup_elem(&tnd_lb_nat, fk);

	if (old && old->service_id != svc->service_id)
		old = NULL;
	*oldp = old;
	if (old && !xdp_is_syn(p)) {
		/* The backend is checked when last_seen_ns moves (once a second). */
		if (now - old->last_seen_ns < XDP_LB_TOUCH_NS) {
			__builtin_memcpy(n, old, sizeof(*n));
			return FLOW_KEPT;
		}
		if (bpf_map_lookup_elem(&tnd_lb_backends, &old->backend_id)) {
			old->last_seen_ns = now;
			__builtin_memcpy(n, old, sizeof(*n));
			return FLOW_TOUCHED;
		}
	}
	/* Only affinity reads the client's key (it lives off the stack). */
	if (svc->flags & TND_LB_F_AFFINITY) {
		__builtin_memset(client, 0, sizeof(*client));
		client->service_id = svc->service_id;
		client->family = p->tuple.family;
		__builtin_memcpy(client->client, p->tuple.saddr, TND_ADDR_LEN);
	}
	b = lb_select(svc, client, xdp_flow_hash(p, svc->service_id),
		      CONFIG.maglev_size, &id);
	if (!b || b->family != p->tuple.family)
		return -1;
	if (old && old->backend_id == id && old->port == b->port &&
	    !__builtin_memcmp(old->addr, b->addr, TND_ADDR_LEN)) {
		__builtin_memcpy(n, old, sizeof(*n));
		n->last_seen_ns = now;
		return FLOW_RESYN;
	}
	__builtin_memset(n, 0, sizeof(*n));
	__builtin_memcpy(n->addr, b->addr, TND_ADDR_LEN);
	n->port = b->port;
	n->backend_id = id;
	n->service_id = svc->service_id;
	n->family = p->tuple.family;
	if (svc->flags & TND_LB_F_DSR)
		n->flags = TND_LB_NAT_F_DSR;
	n->last_seen_ns = now;
	return FLOW_NEW;
}

/*
 * The SNAT address and port of a flow to a remote backend without DSR
 * (NodePort: the node address the client used; ExternalIP: the node's
 * address toward the backend), whose reply slot translates the backend's
 * replies. A SYN that kept its backend keeps its port if it can. Returns
 * the kind (a kept SYN whose port changed becomes FLOW_NEW), or -1 when no
 * port is free.
 */
static __always_inline int xdp_snat_flow(const struct pkt *p, struct tnd_lb_nat *n,
					 const struct tnd_lb_nat *old, int kind,
					 const __u8 *snat_addr, __u32 hash, __u64 now,
					 int *reused)
{
	__u16 keep = 0, port;

	if (kind == FLOW_RESYN && (old->flags & TND_LB_NAT_F_SNAT) &&
	    !__builtin_memcmp(old->addr2, snat_addr, TND_ADDR_LEN))
		keep = old->port2;
	else
		kind = FLOW_NEW;
	__builtin_memcpy(n->addr2, snat_addr, TND_ADDR_LEN);
	port = xdp_snat_port(p, n, hash, keep, now, reused);
	if (!port)
		return -1;
	if (port != keep)
		kind = FLOW_NEW;
	n->port2 = port;
	n->flags |= TND_LB_NAT_F_SNAT;
	return kind;
}

/*
 * A SYN that kept its backend, SNAT address and port (n, from its FWD slot
 * fs): when the port's reply slot still holds this flow open, refreshing
 * it is the whole claim. Everything compared is in the slots, none of it
 * on the stack (reads of the packet's tuple here multiplied the paths the
 * verifier walks). 1: done; 0: claim it (xdp_snat_flow).
 */
static __always_inline int xdp_snat_still_mine(const struct xdp_flow_slot *fs,
					       const struct tnd_lb_nat *n,
					       struct tnd_ct_key *rk, __u64 now)
{
	const __u32 *a = (const __u32 *)fs->key.saddr, *d = (const __u32 *)fs->key.daddr;
	struct xdp_flow_slot *s;
	const __u32 *x, *y;
	__u32 diff = 0;
	int i;

	__builtin_memset(rk, 0, sizeof(*rk));
	__builtin_memcpy(rk->saddr, n->addr, TND_ADDR_LEN);
	__builtin_memcpy(rk->daddr, n->addr2, TND_ADDR_LEN);
	rk->sport = n->port;
	rk->dport = n->port2;
	rk->proto = fs->key.proto;
	rk->family = fs->key.family;
	rk->dir = TND_LB_NAT_REV;
	s = snat_slot(rk);
	if (!s || !slot_holds(s, rk) || (s->nat.flags & TND_LB_NAT_F_CLOSING))
		return 0;
	x = (const __u32 *)s->nat.addr;
	y = (const __u32 *)s->nat.addr2;
#pragma unroll
	for (i = 0; i < TND_ADDR_LEN / 4; i++)
		diff |= (x[i] ^ d[i]) | (y[i] ^ a[i]);
	if (diff || s->nat.port != fs->key.dport || s->nat.port2 != fs->key.sport)
		return 0;
	s->nat.last_seen_ns = now;
	return 1;
}

/*
 * Frees the reply slot of old's SNAT port if it is still this client's
 * flow's (a global function, like xdp_snat_try: it reads the packet's
 * tuple).
 */
__attribute__((noinline)) int xdp_snat_release(const struct pkt *p, const struct tnd_lb_nat *old)
{
	struct xdp_scratch *x;
	struct xdp_flow_slot *s;
	__u32 zero = 0;

	if (!p || !old)
		return 0;
	x = bpf_map_lookup_elem(&xdp_scratch, &zero);
	if (!x)
		return 0;
	xdp_rev_key(&x->rk, p, old, old->addr2, old->port2);
	s = snat_slot(&x->rk);
	if (!s || !xdp_snat_mine(s, &x->rk, p))
		return 0;
	slot_release(s, &x->rk);
	return 1;
}

/* A flow that leaves its SNAT port (a new backend or port): the port is free. */
static __always_inline void xdp_snat_leave(const struct pkt *p, const struct tnd_lb_nat *old,
					   const struct tnd_lb_nat *n)
{
	if (!old || !(old->flags & TND_LB_NAT_F_SNAT))
		return;
	if ((n->flags & TND_LB_NAT_F_SNAT) && old->port2 == n->port2 &&
	    old->backend_id == n->backend_id &&
	    !__builtin_memcmp(old->addr2, n->addr2, TND_ADDR_LEN))
		return;
	xdp_snat_release(p, old);
}

/*
 * A new FWD entry: in the flow's slot unless another live flow has it, or
 * the flow already lives in tnd_lb_nat; else there.
 */
static __always_inline void xdp_fwd_write(struct xdp_flow_slot *fs, const struct tnd_ct_key *fk,
					  const struct tnd_lb_nat *n, const struct tnd_lb_nat *old,
					  int held, __u64 now)
{
	if (fs && (!old || held) && slot_take(fs, held, now) >= 0) {
		slot_fill(fs, fk, n);
		return;
	}
	bpf_map_update_elem(&tnd_lb_nat, fk, n, BPF_ANY);
}

/* frontend: the packet's destination as it came (the service key's copy). */
static __always_inline int xdp_lb_frontend(struct xdp_md *ctx, struct pkt *p,
					   const struct tnd_lb_service *svc,
					   const __u8 *frontend, int nodeport)
{
	int v4 = p->tuple.family == TND_AF_INET;
	__u16 frontend_port = p->tuple.dport;
	__u64 now = clock_now();
	const struct xdp_nexthop *nh = NULL;
	/* The FWD key is the packet's tuple (dir and pad are 0: FWD), good
	 * until the packet is rewritten: every map write comes before. */
	struct tnd_ct_key *fk = &p->tuple;
	struct xdp_flow_slot *fs = flow_slot(fk);
	struct xdp_scratch *x;
	struct tnd_ct_key *rk;
	struct tnd_lb_nat *n, *old = NULL;
	__u32 opt_len = 0;
	int ret, kind, dsr, unresolved, reused = 0, held = 0;

	__u32 zero = 0;

	/* The stack answers an expiring TTL (ICMP time exceeded). */
	if (p->ttl <= 1)
		return xdp_stat(TND_XDP_PASSED, XDP_PASS);
	x = bpf_map_lookup_elem(&xdp_scratch, &zero);
	if (!x)
		return xdp_stat(TND_XDP_ERRORS, XDP_PASS);
	rk = &x->rk;
	n = &x->n;
	kind = xdp_flow(p, svc, fk, n, now, &old, fs, &held, &x->client);
	if (kind < 0)
		return xdp_refuse(ctx, p);

	dsr = n->flags & TND_LB_NAT_F_DSR;
	if (dsr && (p->tuple.proto == IPPROTO_UDP || (p->tcp_flags & TCP_F_SYN)))
		opt_len = v4 ? DSR_OPT4_LEN : DSR_OPT6_LEN;

	ret = xdp_nexthop(ctx, p, n->addr, xdp_l3_len(p) + opt_len, now, &nh);
	if (!nh)
		ret = NH_ERROR;
	unresolved = ret == NH_UNRESOLVED;
	if (unresolved && !dsr) {
		/* Translated for the stack to forward (it resolves the next hop);
		 * no entries, so the flow's next packet is balanced here. SNAT
		 * cannot go this way: the stack drops a forwarded packet whose
		 * source is its own address. */
		if (nat_rewrite(ctx, p, NAT_DST, n->addr, n->port))
			return xdp_stat(TND_XDP_ERRORS, XDP_DROP);
		return xdp_stat(TND_XDP_TO_LOCAL, XDP_PASS);
	}
	if (ret == NH_ERROR)
		return xdp_stat(TND_XDP_ERRORS, XDP_PASS);

	if (ret == NH_LOCAL) {
		n->flags &= ~TND_LB_NAT_F_SNAT;
		if (kind == FLOW_RESYN && (old->flags & TND_LB_NAT_F_SNAT))
			kind = FLOW_NEW;
		if (kind == FLOW_NEW)
			xdp_local_rev(p, n);
	} else if (!dsr && kind == FLOW_RESYN && held && (n->flags & TND_LB_NAT_F_SNAT) &&
		   !__builtin_memcmp(n->addr2, nodeport ? frontend : nh->src, TND_ADDR_LEN) &&
		   xdp_snat_still_mine(fs, n, rk, now)) {
		reused = 1;
	} else if (!dsr && kind >= FLOW_NEW) {
		kind = xdp_snat_flow(p, n, old, kind, nodeport ? frontend : nh->src,
				     xdp_flow_hash(p, ~svc->service_id), now, &reused);
		if (kind < 0)
			return xdp_stat(TND_XDP_ERRORS, XDP_DROP);
	} else if ((n->flags & TND_LB_NAT_F_SNAT) &&
		   (kind == FLOW_TOUCHED || (p->tcp_flags & (TCP_F_FIN | TCP_F_RST)))) {
		/* Its reply slot lives while the flow does; a FIN or RST ends it. */
		struct xdp_flow_slot *s = xdp_snat_slot_of(p, n, rk);

		if (s && slot_holds(s, rk))
			slot_touch(s, p->tcp_flags, now);
	}
	if (kind == FLOW_NEW) {
		xdp_snat_leave(p, old, n);
		xdp_fwd_write(fs, fk, n, old, held, now);
		lb_count_connection(n->backend_id);
	} else if (kind == FLOW_RESYN) {
		/* The same backend (and SNAT port): the entry stays, refreshed in
		 * place. A tuple whose connection had ended is a new connection. */
		if (old->flags & TND_LB_NAT_F_CLOSING) {
			old->flags &= ~TND_LB_NAT_F_CLOSING;
			reused = 0;
		} else if (dsr || ret == NH_LOCAL) {
			reused = 1;
		}
		old->last_seen_ns = now;
		if (!reused)
			lb_count_connection(n->backend_id);
	} else if ((p->tcp_flags & (TCP_F_FIN | TCP_F_RST)) && old) {
		old->flags |= TND_LB_NAT_F_CLOSING;
	}
	if (ret == NH_LOCAL) {
		if (nat_rewrite(ctx, p, NAT_DST, n->addr, n->port))
			return xdp_stat(TND_XDP_ERRORS, XDP_DROP);
		return xdp_stat(TND_XDP_TO_LOCAL, XDP_PASS);
	}
	ret = dsr ? nat_rewrite(ctx, p, NAT_DST, n->addr, n->port)
		  : nat_rewrite2(ctx, p, n->addr2, n->port2, n->addr, n->port);
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
	struct xdp_scratch *x;
	struct xdp_flow_slot *s;
	struct tnd_ct_key *rk;
	struct tnd_lb_nat *n;
	__u32 zero = 0;
	__u64 now;
	int ret;

	x = bpf_map_lookup_elem(&xdp_scratch, &zero);
	if (!x)
		return xdp_stat(TND_XDP_ERRORS, XDP_PASS);
	rk = &x->rk;
	n = &x->n;
	__builtin_memcpy(rk, &p->tuple, sizeof(*rk));
	rk->dir = TND_LB_NAT_REV;
	rk->pad = 0;
	s = snat_slot(rk);
	if (!s || !slot_holds(s, rk))
		return xdp_stat(TND_XDP_PASSED, XDP_PASS);
	if (p->ttl <= 1)
		return xdp_stat(TND_XDP_PASSED, XDP_PASS);
	now = clock_now();
	slot_touch(s, p->tcp_flags, now);
	__builtin_memcpy(n, &s->nat, sizeof(*n));
	ret = xdp_nexthop(ctx, p, n->addr2, xdp_l3_len(p), now, &nh);
	if (ret == NH_ERROR || !nh)
		return xdp_stat(TND_XDP_ERRORS, XDP_PASS);
	if (nat_rewrite2(ctx, p, n->addr, n->port, n->addr2, n->port2))
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
		return xdp_lb_frontend(ctx, &p, svc, key.addr, svc->flags & TND_LB_F_NODEPORT);
	/* Only a SNAT port can be a reply to translate: its REV entry says so. */
	dport = bpf_ntohs(p.tuple.dport);
	if (dport >= TND_LB_SNAT_PORT_MIN && dport <= TND_LB_SNAT_PORT_MAX)
		return xdp_lb_snat_reply(ctx, &p);
	return xdp_stat(TND_XDP_PASSED, XDP_PASS);
}

#endif /* TND_LB_XDP_H */
