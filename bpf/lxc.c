// SPDX-License-Identifier: Apache-2.0
/*
 * Endpoint datapath: the two programs on the host side of a pod's veth.
 *   from_container  tc ingress: packets leaving the pod. Answers ARP, ND and
 *                   pings to the router in place; passes the pod's ARP
 *                   replies to the node; checks unicast (anti-spoofing,
 *                   conntrack, egress policy) and forwards it to local
 *                   endpoints (TTL, MAC rewrite), delivering it itself: the
 *                   destination's ingress conntrack, policy and trace, then
 *                   bpf_redirect_peer into its eth0. Other destinations go
 *                   to the node's stack, which routes them.
 *   to_container    tc egress: packets entering the pod from the node's stack.
 *                   The same ingress step: conntrack, policy, trace. The
 *                   replies from_container sends back to the pod pass.
 * Policy is looked up for new connections only (conntrack misses), and for
 * known ones again once after each policy change (tnd_policy_gen).
 * L7 (proxy.h): a new connection whose source's egress verdict or (local
 * destination) destination's ingress verdict is TND_POLICY_REDIRECT, and
 * neither denies, is steered into the node's L7 proxy at from_container: its
 * SYN gets the proxy's listener assigned, every packet of it the mark
 * TND_MARK_TO_PROXY, and it goes to the node's stack, never straight to the
 * destination; the source's egress entry carries TND_CT_F_TO_PROXY, the
 * destination gets no entry, tnd_proxy_flows tells the proxy who is talking.
 * The proxy's replies reach the pod through to_container as that entry's
 * replies. After a policy change such a flow stays only while the combined
 * verdict is still redirect. The proxy's own upstream connection to a pod
 * (TND_MARK_FROM_PROXY) is tracked at to_container (TND_CT_F_FROM_PROXY) but
 * not judged: the proxy judged the original flow. Redirects that cannot be
 * steered (IPv6, not TCP, entering from the node) are dropped.
 * One instance per endpoint, specialised by CONFIG (struct tnd_lxc_config)
 * before load; a disabled address family is pruned by the verifier. The
 * device is the packet's (ctx_ifindex()), not a constant, so the programs can
 * be loaded before the veth exists.
 */
#include "compiler.h"
#include "ctx.h"
#include "config.h"
#include "common.h"
#include "addr.h"
#include "pkt.h"
#include "drop.h"
#include "parse.h"
#include "metrics.h"
#include "events.h"
#include "endpoints.h"
#include "conntrack.h"
#include "ipcache.h"
#include "identity.h"
#include "policy.h"
#include "proxy.h"
#include "trace.h"
#include "mac.h"
#include "arp.h"
#include "ndisc.h"
#include "icmp.h"
#include "csum.h"
#include "lb.h"
#include "lb_nat.h"
#include "reject.h"
#include "wire.h"

#include <linux/stddef.h>

DECLARE_CONFIG(struct tnd_lxc_config);
WIRE_TYPES_IN_BTF();
LB_NAT_TYPES_IN_BTF();

#define IPV4_ENABLED CONFIG_HAS(TND_LXC_IPV4)
#define IPV6_ENABLED CONFIG_HAS(TND_LXC_IPV6)
#define TRACE_ALL CONFIG_HAS(TND_LXC_TRACE_ALL)

/*
 * "Not done yet, go on to forward()": lets the IPv4 and IPv6 paths
 * share one copy of the forwarding and conntrack code instead of two.
 */
#define CTX_CONTINUE 0x100

/*
 * "The policy redirects this new connection into the L7 proxy": from
 * policy_new() and ct_policy() (which then made no entry). Never a verdict
 * of a program: every caller turns it into steering or a drop.
 */
#define CTX_PROXY 0x200

/* Out of line: drops are the slow path, and there are many drop sites. */
static __noinline int drop_at(const struct pkt *p, __u32 reason, __u8 obs,
			      __u32 ifindex, __u32 endpoint_id)
{
	struct event_args a = {
		.ifindex = ifindex,
		.endpoint_id = endpoint_id,
		.obs_point = obs,
	};

	return send_drop(p, reason, &a);
}

/* A drop about this program's own endpoint, on the device it runs on. */
static __always_inline int drop(const struct __ctx_buff *ctx,
				const struct pkt *p, __u32 reason, __u8 obs)
{
	return drop_at(p, reason, obs, ctx_ifindex(ctx), CONFIG.endpoint_id);
}

/* A trace event about endpoint_id, whose host veth is ifindex. */
static __always_inline void trace_at(const struct pkt *p, __u8 obs,
				     __u32 ifindex, __u16 endpoint_id,
				     __u32 target_ifindex, __u8 ct_state)
{
	struct event_args a = {
		.ifindex = ifindex,
		.endpoint_id = endpoint_id,
	};

	send_trace(p, obs, target_ifindex, ct_state, &a);
}

/*
 * A reply built in place goes back out of the pod's own veth, marked so
 * that to_container lets it pass: it answers the pod, no policy applies.
 */
static __always_inline int local_reply(struct __ctx_buff *ctx,
				       const struct pkt *p, __u8 obs)
{
	__u32 ifindex = ctx_ifindex(ctx);

	ctx_set_mark(ctx, TND_MARK_LOCAL_REPLY);
	metrics_add(TND_METRIC_LOCAL_REPLY, p->len);
	trace_at(p, obs, ifindex, CONFIG.endpoint_id, ifindex, 0);
	return ctx_redirect(ifindex);
}

/* Not looked up yet (struct flow_ids). */
#define IDENTITY_UNRESOLVED 0xffffffff

/*
 * The identities of a packet's source and destination, looked up when a
 * policy decision first needs them (new connections only) and kept for the
 * packet's second decision: leaving one endpoint, entering another.
 */
struct flow_ids {
	__u32 src;
	__u32 dst;
};

static __always_inline void flow_ids_resolve(struct flow_ids *ids,
					     const struct pkt *p)
{
	const struct addr16 *saddr = (const void *)p->tuple.saddr;
	const struct addr16 *daddr = (const void *)p->tuple.daddr;

	if (ids->src == IDENTITY_UNRESOLVED)
		ids->src = identity_of(p->tuple.family, saddr);
	if (ids->dst == IDENTITY_UNRESOLVED)
		ids->dst = identity_of(p->tuple.family, daddr);
}

/* The enums differ: conntrack's egress is 0, policy's ingress is. */
static __always_inline __u8 policy_dir(__u8 ct_dir)
{
	return ct_dir == TND_CT_EGRESS ? TND_POLICY_EGRESS : TND_POLICY_INGRESS;
}

/* Where an endpoint's step in a conntrack direction is observed. */
static __always_inline __u8 obs_of(__u8 ct_dir)
{
	return ct_dir == TND_CT_EGRESS ? TND_OBS_FROM_ENDPOINT :
					 TND_OBS_TO_ENDPOINT;
}

/*
 * A packet opening a connection in direction dir of endpoint endpoint_id
 * (host veth ifindex): the endpoint's policy decides, and a
 * TND_EVENT_POLICY event says how. CTX_OK, or the drop verdict. New
 * connections only; a global function, so the verifier checks it once
 * instead of once per path that reaches it (pointers may then be NULL).
 */
__noinline int policy_new(const struct pkt *p, __u8 dir, __u16 endpoint_id,
			  __u32 ifindex, struct flow_ids *ids)
{
	__u8 pdir = policy_dir(dir);
	struct event_args a = {};
	struct policy_result res;
	int reason;

	if (!p || !ids)
		return CTX_DROP;
	flow_ids_resolve(ids, p);
	reason = policy_check(endpoint_id, pdir,
			      pdir == TND_POLICY_EGRESS ? ids->dst : ids->src,
			      p->tuple.proto,
			      policy_dport(p->tuple.proto, p->tuple.dport), &res);
	a.ifindex = ifindex;
	a.endpoint_id = endpoint_id;
	a.obs_point = obs_of(dir);
	a.src_identity = ids->src;
	a.dst_identity = ids->dst;
	a.rule_id = res.rule_id;
	a.verdict = res.verdict;
	a.direction = pdir;
	send_policy(p, &a);
	if (reason == POLICY_REDIRECT)
		return CTX_PROXY;
	if (reason)
		return send_drop(p, reason, &a);
	return CTX_OK;
}

/*
 * A known connection (entry key k, of endpoint_id) whose policy changed since
 * it was allowed: the policy is asked again about the connection's original
 * direction. CTX_OK keeps it; else the entry is deleted and the packet
 * dropped. Once per connection and policy change; global, like policy_new().
 * A redirect verdict cuts it too: a connection that did not open through
 * the L7 proxy can never move into it (DROP_PROXY_NO_SOCKET).
 */
__noinline int ct_recheck(const struct pkt *p, const struct tnd_ct_key *k,
			  __u16 endpoint_id, __u32 ifindex, int reply)
{
	struct event_args a = {};
	struct policy_result res;
	__u32 src, dst;
	int reason;
	__u8 pdir;

	if (!p || !k)
		return CTX_DROP;
	pdir = policy_dir(k->dir);
	src = identity_of(k->family, (const void *)k->saddr);
	dst = identity_of(k->family, (const void *)k->daddr);
	reason = policy_check(endpoint_id, pdir,
			      pdir == TND_POLICY_EGRESS ? dst : src, k->proto,
			      policy_dport(k->proto, k->dport), &res);
	if (!reason)
		return CTX_OK;
	if (reason == POLICY_REDIRECT)
		reason = DROP_PROXY_NO_SOCKET;
	bpf_map_delete_elem(&tnd_ct, k);
	a.ifindex = ifindex;
	a.endpoint_id = endpoint_id;
	a.obs_point = obs_of(p->tuple.dir);
	/* The event is about this packet, and a reply runs from dst to src. */
	a.src_identity = reply ? dst : src;
	a.dst_identity = reply ? src : dst;
	a.rule_id = res.rule_id;
	a.verdict = res.verdict;
	a.direction = pdir;
	return send_drop(p, reason, &a);
}

/*
 * ct_recheck() of a flow in the L7 proxy (a TND_CT_F_TO_PROXY entry, key k:
 * the source's egress entry; endpoint_id is the source). Both policies that
 * could have steered it are asked again, the destination's found anew: a
 * deny from either cuts the flow, a redirect from either keeps it (the proxy
 * applies its own new rules), and two allows cut it too, since a flow in
 * the proxy can never become direct (DROP_PROXY_WITHDRAWN). A cut deletes
 * the entry and the flow's tnd_proxy_flows entry.
 */
__noinline int proxy_recheck(const struct pkt *p, const struct tnd_ct_key *k,
			     __u16 endpoint_id, __u32 ifindex, int reply)
{
	struct tnd_endpoint_info *dst_info;
	struct event_args a = {};
	struct policy_result res, ires;
	__u32 src, dst;
	int reason, ireason = 0;

	if (!p || !k)
		return CTX_DROP;
	src = identity_of(k->family, (const void *)k->saddr);
	dst = identity_of(k->family, (const void *)k->daddr);
	reason = policy_check(endpoint_id, TND_POLICY_EGRESS, dst, k->proto,
			      policy_dport(k->proto, k->dport), &res);
	a.endpoint_id = endpoint_id;
	a.ifindex = ifindex;
	a.direction = TND_POLICY_EGRESS;
	dst_info = endpoint_lookup_addr(k->family, k->daddr);
	if (dst_info && reason != DROP_POLICY_DENIED && reason != DROP_NO_POLICY) {
		ireason = policy_check(dst_info->endpoint_id, TND_POLICY_INGRESS,
				       src, k->proto,
				       policy_dport(k->proto, k->dport), &ires);
		if (ireason == DROP_POLICY_DENIED || ireason == DROP_NO_POLICY ||
		    (ireason == POLICY_REDIRECT && !reason)) {
			/* The destination's verdict decides: report it. */
			reason = ireason;
			res = ires;
			a.endpoint_id = dst_info->endpoint_id;
			a.ifindex = dst_info->ifindex;
			a.direction = TND_POLICY_INGRESS;
		}
	}
	if (reason == POLICY_REDIRECT)
		return CTX_OK;
	if (!reason)
		reason = DROP_PROXY_WITHDRAWN;
	bpf_map_delete_elem(&tnd_ct, k);
	proxy_flow_forget(k);
	a.obs_point = obs_of(p->tuple.dir);
	a.src_identity = reply ? dst : src;
	a.dst_identity = reply ? src : dst;
	a.rule_id = res.rule_id;
	a.verdict = res.verdict;
	return send_drop(p, reason, &a);
}

/*
 * Conntrack and policy of one endpoint (endpoint_id, host veth ifindex) for
 * one direction of a packet. A packet of a known connection passes, after a
 * re-check when the policy generation moved since the connection was
 * allowed (one array load and a compare otherwise); a packet opening a
 * connection must pass the policy first, and only then gets an entry.
 * CTX_OK, CTX_DROP (constant, not the callees' return values: fewer
 * paths for the verifier), or CTX_PROXY: the policy redirects the new
 * connection into the L7 proxy and no entry was made (the caller steers it
 * or drops it). res->flags tells a known L7 flow (TND_CT_F_TO_PROXY). A
 * proxy upstream connection (TND_CT_F_FROM_PROXY) is never re-checked.
 * A new entry gets new_flags; with lb_rev, also TND_CT_F_LB when the packet
 * was load-balanced before it reached the endpoint (lb_rev_ct_flags()).
 */
static __always_inline int ct_policy(struct pkt *p, __u8 dir,
				     __u16 endpoint_id, __u32 ifindex,
				     struct flow_ids *ids, __u64 now,
				     __u32 gen, int reply_first, __u8 new_flags,
				     int lb_rev, struct ct_result *res)
{
	struct tnd_ct_key rkey;
	struct tnd_ct_entry *e;
	int reply, ret;

	e = ct_find(p, dir, now, reply_first, &rkey, &reply);
	if (likely(e)) {
		if (unlikely(e->policy_gen != gen)) {
			__u8 f = e->flags;

			if (f & TND_CT_F_TO_PROXY) {
				if (proxy_recheck(p, reply ? &rkey : &p->tuple,
						  e->endpoint_id, ifindex,
						  reply) != CTX_OK)
					return CTX_DROP;
			} else if (!(f & TND_CT_F_FROM_PROXY) &&
				   ct_recheck(p, reply ? &rkey : &p->tuple,
					      e->endpoint_id, ifindex,
					      reply) != CTX_OK) {
				return CTX_DROP;
			}
			e->policy_gen = gen;
		}
		ct_account(e, p, reply, now, res);
		return CTX_OK;
	}
	ret = policy_new(p, dir, endpoint_id, ifindex, ids);
	if (ret == CTX_PROXY)
		return CTX_PROXY;
	if (ret != CTX_OK)
		return CTX_DROP;
	if (lb_rev)
		new_flags |= lb_rev_ct_flags(p);
	ct_create(p, endpoint_id, now, gen, new_flags, res);
	return CTX_OK;
}

/*
 * A packet entering an endpoint, wherever it comes from: conntrack and the
 * endpoint's ingress policy, metrics, the TND_OBS_TO_ENDPOINT trace. It runs
 * in the endpoint's own to_container for traffic from the node, and in a
 * local source's from_container on the destination's behalf
 * (deliver_local()): so everything about the destination comes from the
 * arguments (its policy by endpoint_id in the node-wide tnd_policy), never
 * from CONFIG. Returns CTX_OK to go on, CTX_PROXY (ct_policy()), or a
 * drop verdict; res tells the caller about the connection (a reply of a
 * load-balanced one needs its reverse translation).
 */
static __always_inline int endpoint_ingress(struct pkt *p, __u16 endpoint_id,
					    __u32 ifindex, int trace_all,
					    struct flow_ids *ids, __u64 now,
					    __u32 gen, int reply_first,
					    int lb_rev, struct ct_result *res)
{
	int ret;

	ret = ct_policy(p, TND_CT_INGRESS, endpoint_id, ifindex, ids, now, gen,
			reply_first, 0, lb_rev, res);
	if (ret != CTX_OK)
		return ret;
	metrics_add(TND_METRIC_DELIVERED, p->len);
	if (trace_wanted(res, trace_all))
		trace_at(p, TND_OBS_TO_ENDPOINT, ifindex, endpoint_id, 0,
			 res->state);
	return CTX_OK;
}

/*
 * Deliver to a local endpoint: its ingress processing; on CTX_OK the caller
 * sends the packet straight into its eth0 in its netns (bpf_redirect_peer:
 * no trip through the host veth's egress, where its to_container would run,
 * and no backlog queue).
 */
static __always_inline int deliver_local(struct pkt *p,
					 const struct tnd_endpoint_info *info,
					 struct flow_ids *ids, __u64 now,
					 __u32 gen, int reply_first,
					 struct ct_result *res)
{
	return endpoint_ingress(p, info->endpoint_id, info->ifindex,
				info->flags & TND_ENDPOINT_TRACE_ALL, ids, now,
				gen, reply_first, 0, res);
}

/*
 * Not a local endpoint (the router, another node, the world): the node's
 * stack routes it, TTL and all; the packet goes on unchanged.
 */
static __always_inline int to_stack(const struct __ctx_buff *ctx,
				    const struct pkt *p,
				    const struct ct_result *res)
{
	metrics_add(TND_METRIC_TO_STACK, p->len);
	if (trace_wanted(res, TRACE_ALL))
		trace_at(p, TND_OBS_FROM_ENDPOINT, ctx_ifindex(ctx),
			 CONFIG.endpoint_id, 0, res->state);
	return CTX_OK;
}

/* proxy_steer()'s pflags bit beyond enum tnd_proxy_flags: the flow was load-balanced. */
#define PROXY_LB 0x100

/*
 * A new connection the policy redirects into the L7 proxy (pflags: whose
 * policy did, enum tnd_proxy_flags; dst_endpoint: the destination endpoint
 * or 0): the listener is assigned to its SYN (proxy_assign()), the packet
 * marked TND_MARK_TO_PROXY and handed to the node's stack unchanged, the
 * flow recorded for the proxy, and the source's egress entry made with
 * TND_CT_F_TO_PROXY (and TND_CT_F_LB when pflags has PROXY_LB: a flow to
 * a service, whose replies from the proxy come back as the backend). No entry at the
 * destination: it only ever talks to the
 * proxy. Any failure drops (about the source endpoint, with the verdict).
 * CTX_OK or CTX_DROP; global (two call sites, slow path).
 */
__noinline int proxy_steer(struct __sk_buff *ctx, struct pkt *p,
			   const struct flow_ids *ids, __u32 dst_endpoint,
			   __u32 pflags)
{
	struct tnd_proxy_flow flow = {};
	struct event_args a = {};
	struct ct_result res;
	int reason;

	if (!ctx || !p || !ids)
		return CTX_DROP;
	reason = proxy_assign(ctx, p);
	if (reason) {
		a.ifindex = ctx_ifindex(ctx);
		a.endpoint_id = CONFIG.endpoint_id;
		a.obs_point = TND_OBS_FROM_ENDPOINT;
		a.src_identity = ids->src;
		a.dst_identity = ids->dst;
		a.verdict = TND_POLICY_REDIRECT;
		a.direction = (pflags & TND_PROXY_F_EGRESS) ?
				      TND_POLICY_EGRESS : TND_POLICY_INGRESS;
		return send_drop(p, reason, &a);
	}
	ctx_set_mark(ctx, TND_MARK_TO_PROXY);
	p->tuple.dir = TND_CT_EGRESS;
	flow.src_identity = ids->src;
	flow.dst_identity = ids->dst;
	flow.src_endpoint = CONFIG.endpoint_id;
	flow.dst_endpoint = dst_endpoint;
	flow.flags = pflags & ~PROXY_LB;
	proxy_flow_record(&p->tuple, &flow);
	ct_create(p, CONFIG.endpoint_id, ct_now(), policy_generation(),
		  TND_CT_F_TO_PROXY | ((pflags & PROXY_LB) ? TND_CT_F_LB : 0),
		  &res);
	metrics_add(TND_METRIC_TO_PROXY, p->len);
	trace_at(p, TND_OBS_FROM_ENDPOINT, ctx_ifindex(ctx), CONFIG.endpoint_id,
		 0, res.state);
	return CTX_OK;
}

/*
 * A packet of a flow in the L7 proxy (its TND_CT_F_TO_PROXY entry): marked
 * again, to the node's stack, which hands it to the proxy's socket.
 */
static __always_inline int to_proxy(struct __ctx_buff *ctx,
				    const struct pkt *p,
				    const struct ct_result *res)
{
	ctx_set_mark(ctx, TND_MARK_TO_PROXY);
	metrics_add(TND_METRIC_TO_PROXY, p->len);
	if (trace_wanted(res, TRACE_ALL))
		trace_at(p, TND_OBS_FROM_ENDPOINT, ctx_ifindex(ctx),
			 CONFIG.endpoint_id, 0, res->state);
	return CTX_OK;
}

/*
 * Per-packet load balancing (lb_nat.h), global functions: verified once,
 * and only packets of services reach them. They return 0 or -DROP_...,
 * and the caller reports the drop: a drop_at() call from inside them
 * would stack three frames on the program's own.
 */

/* The reverse translation of a load-balanced reply (lb_nat_rev()). */
__noinline int lb_reply_rev(struct __sk_buff *ctx, struct pkt *p, __u64 now)
{
	if (!ctx || !p)
		return -DROP_NAT_FAILED;
	return lb_nat_rev(ctx, p, now);
}

/* A translated reply of a backend leaving the node (lb_reply_exit_fib()). */
__noinline int lb_reply_exit(struct __sk_buff *ctx, const struct pkt *p)
{
	if (!ctx || !p)
		return CTX_OK;
	return lb_reply_exit_fib(ctx, p);
}

/* lb_reply_rev() and the drop it may end in, observed at obs. */
static __always_inline int lb_reply(struct __ctx_buff *ctx, struct pkt *p,
				    __u64 now, __u8 obs)
{
	int ret = lb_reply_rev(ctx, p, now);

	if (ret < 0)
		return drop(ctx, p, -ret, obs);
	return CTX_OK;
}

/*
 * The service has no backend for this new connection: the pod gets the
 * answer of a closed port at once (reject.h), from the frontend's address,
 * and a drop event says why. Packets that get no answer are just dropped.
 * Global, and called from the program itself: its reply buffers and
 * lb_from_pod()'s keys never share one stack.
 */
__noinline int lb_refuse(struct __sk_buff *ctx, struct pkt *p)
{
	int ret;

	if (!ctx || !p)
		return CTX_DROP;
	drop(ctx, p, DROP_NO_SERVICE_BACKEND, TND_OBS_FROM_ENDPOINT);
	ret = reject_reply(ctx, p, CONFIG.mac, CONFIG.router_mac);
	if (ret)
		return CTX_DROP;
	ctx_set_mark(ctx, TND_MARK_LOCAL_REPLY);
	return ctx_redirect(ctx_ifindex(ctx));
}

/*
 * A pod's packet to a cluster-scope frontend (svc): translated to its
 * flow's backend (lb_nat_fwd()); the caller goes on with the backend's
 * tuple. -DROP_NO_SERVICE_BACKEND: lb_refuse().
 */
__noinline int lb_from_pod(struct __sk_buff *ctx, struct pkt *p,
			   const struct tnd_lb_service *svc)
{
	if (!ctx || !p || !svc)
		return -DROP_NAT_FAILED;
	return lb_nat_fwd(ctx, p, svc, CONFIG.maglev_size, ct_now());
}

/*
 * to_container: a packet that may carry a DSR option (IPv4 options or an
 * IPv6 extension header): the option is read, removed and its REV entry
 * written (lb_dsr_recv()). 0, or -DROP_...
 */
__noinline int lb_dsr(struct __sk_buff *ctx, struct pkt *p, __u64 now)
{
	int ret;

	if (!ctx || !p)
		return -DROP_DSR_INVALID;
	ret = lb_dsr_recv(ctx, p, now);
	return ret < 0 ? ret : 0;
}

/*
 * Unicast leaving the pod, after the pod's conntrack and egress policy:
 * to a local endpoint (the established-flow fast path), to the stack, or
 * (L7 policy) into the proxy. lb_flags: TND_CT_F_LB when the packet was
 * just translated for a service (its tuple is the backend's), for the
 * entry a new connection gets. Per-packet LB replies are translated here:
 * a backend's reply of a flow balanced before the backend (REV without
 * AT_CLIENT) before it is routed, a reply into a local client of a flow
 * its from_container balanced before it is delivered.
 */
static __always_inline int forward(struct __ctx_buff *ctx, struct pkt *p,
				   __u8 lb_flags)
{
	struct flow_ids ids = { IDENTITY_UNRESOLVED, IDENTITY_UNRESOLVED };
	struct tnd_endpoint_info *info;
	struct ct_result res, dres;
	struct ethhdr *eth;
	void *data, *data_end;
	__u64 now;
	__u32 gen;
	int ret;

	info = endpoint_lookup(&p->tuple);
	if (info) {
		if (p->ttl <= 1)
			return drop(ctx, p, DROP_TTL_EXCEEDED,
				    TND_OBS_FROM_ENDPOINT);
		ids.dst = info->identity;
	}

	now = ct_now();
	gen = policy_generation();
	ret = ct_policy(p, TND_CT_EGRESS, CONFIG.endpoint_id, ctx_ifindex(ctx),
			&ids, now, gen, 0, lb_flags, 0, &res);
	if (unlikely(ret != CTX_OK)) {
		__u32 pflags = TND_PROXY_F_EGRESS;

		if (ret != CTX_PROXY)
			return ret;
		/* The egress policy redirects: the destination may still deny. */
		if (info) {
			ret = policy_new(p, TND_CT_INGRESS, info->endpoint_id,
					 info->ifindex, &ids);
			if (ret == CTX_PROXY)
				pflags |= TND_PROXY_F_INGRESS;
			else if (ret != CTX_OK)
				return CTX_DROP;
		}
		return proxy_steer(ctx, p, &ids, info ? info->endpoint_id : 0,
				   pflags | (lb_flags ? PROXY_LB : 0));
	}
	if (unlikely(res.flags & TND_CT_F_TO_PROXY))
		return to_proxy(ctx, p, &res);
	if (unlikely((res.flags & TND_CT_F_LB) && res.reply)) {
		/* A backend answering as the service. */
		if (lb_reply(ctx, p, now, TND_OBS_FROM_ENDPOINT) != CTX_OK)
			return CTX_DROP;
		if (!info) {
			ret = to_stack(ctx, p, &res);
			return ret == CTX_OK ? lb_reply_exit(ctx, p) : ret;
		}
	}
	if (!info)
		return to_stack(ctx, p, &res);

	metrics_add(TND_METRIC_FORWARDED, p->len);
	if (trace_wanted(&res, TRACE_ALL))
		trace_at(p, TND_OBS_FROM_ENDPOINT, ctx_ifindex(ctx),
			 CONFIG.endpoint_id, info->ifindex, res.state);
	/*
	 * The destination's ingress step comes before the route rewrite: a
	 * redirect by its policy hands the packet to the stack unchanged.
	 * A reply out of here is most likely a reply into there too.
	 */
	ret = deliver_local(p, info, &ids, now, gen, res.reply, &dres);
	if (unlikely(ret != CTX_OK)) {
		if (ret == CTX_PROXY &&
		    proxy_steer(ctx, p, &ids, info->endpoint_id,
				TND_PROXY_F_INGRESS |
					(lb_flags ? PROXY_LB : 0)) == CTX_OK)
			return CTX_OK;
		/* Refused by the destination: the packet leaves no state behind. */
		if (res.created) {
			p->tuple.dir = TND_CT_EGRESS;
			bpf_map_delete_elem(&tnd_ct, &p->tuple);
		}
		return CTX_DROP;
	}
	if (unlikely((dres.flags & TND_CT_F_LB) && dres.reply) &&
	    lb_reply(ctx, p, now, TND_OBS_TO_ENDPOINT) != CTX_OK)
		return CTX_DROP;

	/* Route: the destination's MACs, TTL minus one (direct writes, no helper). */
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	if (p->tuple.family == TND_AF_INET) {
		struct iphdr *ip = data + ETH_HLEN;

		if ((void *)(ip + 1) > data_end)
			return drop(ctx, p, DROP_TRUNCATED_IPV4, TND_OBS_FROM_ENDPOINT);
		mac_copy(eth->h_dest, info->mac);
		mac_copy(eth->h_source, info->router_mac);
		ipv4_ttl_dec(ip);
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			return drop(ctx, p, DROP_TRUNCATED_IPV6, TND_OBS_FROM_ENDPOINT);
		mac_copy(eth->h_dest, info->mac);
		mac_copy(eth->h_source, info->router_mac);
		ip6->hop_limit--;
	}
	return ctx_redirect_peer(info->ifindex);
}

static __always_inline int from_container_arp(struct __ctx_buff *ctx,
					      struct pkt *p)
{
	int ret;

	ret = arp_respond(ctx, p, *(const volatile __u32 *)CONFIG.ip4,
			  CONFIG.router_mac);
	if (ret < 0)
		return drop(ctx, p, -ret, TND_OBS_FROM_ENDPOINT);
	if (ret == 1) {
		/* The pod answering the node's request: the node learns it. */
		metrics_add(TND_METRIC_PASSED, p->len);
		return CTX_OK;
	}
	return local_reply(ctx, p, TND_OBS_ARP_REPLY);
}

static __always_inline int from_container_ipv4(struct __ctx_buff *ctx,
					       struct pkt *p)
{
	__u32 daddr;
	int ret;

	ret = parse_ipv4(ctx, p);
	if (ret < 0)
		return drop(ctx, p, -ret, TND_OBS_FROM_ENDPOINT);
	if (!ipv4_eq_cfg(*(__u32 *)p->tuple.saddr, CONFIG.ip4))
		return drop(ctx, p, DROP_INVALID_SOURCE, TND_OBS_FROM_ENDPOINT);

	daddr = *(__u32 *)p->tuple.daddr;
	if (p->tuple.proto == IPPROTO_ICMP &&
	    p->icmp_type == ICMP_ECHO_REQUEST &&
	    ipv4_eq_cfg(daddr, CONFIG.router_ip4) &&
	    icmp4_echo_reply(ctx, CONFIG.router_mac) == 0)
		return local_reply(ctx, p, TND_OBS_ICMP_REPLY);
	return CTX_CONTINUE;
}

static __always_inline int from_container_ipv6(struct __ctx_buff *ctx,
					       struct pkt *p)
{
	int ret, own;

	ret = parse_ipv6(ctx, p);
	if (ret < 0)
		return drop(ctx, p, -ret, TND_OBS_FROM_ENDPOINT);

	/* ND/MLD come from link-local or unspecified sources: before anti-spoofing. */
	if (p->tuple.proto == IPPROTO_ICMPV6 && ndisc_is_control(p->icmp_type)) {
		if (p->icmp_type == ND_NEIGHBOR_SOLICIT) {
			ret = ndisc_respond(ctx, p, CONFIG.ip6, CONFIG.router_mac);
			if (ret < 0)
				return drop(ctx, p, -ret, TND_OBS_FROM_ENDPOINT);
			if (ret == 0)
				return local_reply(ctx, p, TND_OBS_NDISC_REPLY);
		}
		/* The pod's own RS, MLD, DAD: the stack's business, no event. */
		metrics_add(TND_METRIC_PASSED, p->len);
		return CTX_OK;
	}

	/*
	 * A ping to a link-local router comes from the pod's link-local address;
	 * the reply only goes back to the pod, so that source is fine here.
	 */
	own = ipv6_addr_eq_cfg((const __u32 *)p->tuple.saddr, CONFIG.ip6);
	if (p->tuple.proto == IPPROTO_ICMPV6 &&
	    p->icmp_type == ICMP6_ECHO_REQUEST &&
	    (own || ipv6_addr_is_linklocal(p->tuple.saddr)) &&
	    ipv6_addr_eq_cfg((const __u32 *)p->tuple.daddr, CONFIG.router_ip6) &&
	    icmp6_echo_reply(ctx, CONFIG.router_mac) == 0)
		return local_reply(ctx, p, TND_OBS_ICMP_REPLY);
	if (!own)
		return drop(ctx, p, DROP_INVALID_SOURCE, TND_OBS_FROM_ENDPOINT);
	return CTX_CONTINUE;
}

SEC("tc")
int from_container(struct __sk_buff *ctx)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct tnd_lb_service *svc;
	struct pkt p = {};
	__u8 lb = 0;
	int ret;

	p.len = ctx_len(ctx);
	if ((void *)(eth + 1) > data_end)
		return drop(ctx, &p, DROP_INVALID_ETH, TND_OBS_FROM_ENDPOINT);

	switch (eth->h_proto) {
	case bpf_htons(ETH_P_IP):
		if (!IPV4_ENABLED)
			goto disabled;
		ret = from_container_ipv4(ctx, &p);
		break;
	case bpf_htons(ETH_P_IPV6):
		if (!IPV6_ENABLED)
			goto disabled;
		ret = from_container_ipv6(ctx, &p);
		break;
	case bpf_htons(ETH_P_ARP):
		if (!IPV4_ENABLED)
			goto disabled;
		return from_container_arp(ctx, &p);
	default:
		return drop(ctx, &p, DROP_UNSUPPORTED_L3, TND_OBS_FROM_ENDPOINT);
	}
	if (ret != CTX_CONTINUE)
		return ret;
	/* A service's frontend: balanced first, then judged as the backend. */
	svc = lb_cluster_service(&p);
	if (unlikely(svc != NULL)) {
		ret = lb_from_pod(ctx, &p, svc);
		if (ret == -DROP_NO_SERVICE_BACKEND)
			return lb_refuse(ctx, &p);
		if (ret < 0)
			return drop(ctx, &p, -ret, TND_OBS_FROM_ENDPOINT);
		lb = TND_CT_F_LB;
	}
	return forward(ctx, &p, lb);
disabled:
	return drop(ctx, &p, DROP_FAMILY_DISABLED, TND_OBS_FROM_ENDPOINT);
}

/*
 * The L7 proxy's upstream connection into this pod (its socket's SO_MARK is
 * TND_MARK_FROM_PROXY; only a process of the node's netns can set it, and a
 * pod's marks are scrubbed on the way out of its netns, so a pod cannot
 * forge it): tracked, with TND_CT_F_FROM_PROXY, but not judged by the pod's
 * ingress policy, because the proxy judged the original flow at L3/L4 and
 * L7. The pod's replies pass its from_container as the entry's replies,
 * also after policy changes (never re-checked).
 */
static __always_inline int from_proxy(struct __ctx_buff *ctx, struct pkt *p)
{
	struct tnd_ct_key rkey;
	struct tnd_ct_entry *e;
	struct ct_result res;
	__u64 now = ct_now();
	int reply;

	ctx_set_mark(ctx, 0);
	e = ct_find(p, TND_CT_INGRESS, now, 0, &rkey, &reply);
	if (e)
		ct_account(e, p, reply, now, &res);
	else
		ct_create(p, CONFIG.endpoint_id, now, policy_generation(),
			  TND_CT_F_FROM_PROXY, &res);
	metrics_add(TND_METRIC_DELIVERED, p->len);
	if (trace_wanted(&res, TRACE_ALL))
		trace_at(p, TND_OBS_TO_ENDPOINT, ctx_ifindex(ctx),
			 CONFIG.endpoint_id, 0, res.state);
	return CTX_OK;
}

SEC("tc")
int to_container(struct __sk_buff *ctx)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct ct_result res;
	struct flow_ids ids;
	struct pkt p = {};
	__u32 mark = ctx_mark(ctx);
	__u64 now;
	int ret;

	if (mark == TND_MARK_LOCAL_REPLY) {
		/* Our own ARP/ND/echo reply (local_reply()), counted there. */
		ctx_set_mark(ctx, 0);
		return CTX_OK;
	}

	p.len = ctx_len(ctx);
	if ((void *)(eth + 1) > data_end)
		return drop(ctx, &p, DROP_INVALID_ETH, TND_OBS_TO_ENDPOINT);

	switch (eth->h_proto) {
	case bpf_htons(ETH_P_IP):
		if (!IPV4_ENABLED)
			goto disabled;
		ret = parse_ipv4(ctx, &p);
		break;
	case bpf_htons(ETH_P_IPV6):
		if (!IPV6_ENABLED)
			goto disabled;
		ret = parse_ipv6(ctx, &p);
		/* The node's ND/MLD towards the pod (and our own replies). */
		if (ret == 0 && p.tuple.proto == IPPROTO_ICMPV6 &&
		    ndisc_is_control(p.icmp_type)) {
			metrics_add(TND_METRIC_PASSED, p.len);
			return CTX_OK;
		}
		break;
	case bpf_htons(ETH_P_ARP):
		/* The node resolving the pod, or our own ARP reply. */
		metrics_add(TND_METRIC_PASSED, p.len);
		return CTX_OK;
	default:
		return drop(ctx, &p, DROP_UNSUPPORTED_L3, TND_OBS_TO_ENDPOINT);
	}
	if (ret < 0)
		return drop(ctx, &p, -ret, TND_OBS_TO_ENDPOINT);
	if (unlikely(mark == TND_MARK_FROM_PROXY))
		return from_proxy(ctx, &p);
	now = ct_now();
	/* Options or extension headers: maybe a DSR flow's frontend. */
	if (unlikely(p.l4_off > (p.tuple.family == TND_AF_INET ?
					 LB_IPV4_OPT_OFF : LB_IPV6_EXT_OFF))) {
		ret = lb_dsr(ctx, &p, now);
		if (ret < 0)
			return drop(ctx, &p, -ret, TND_OBS_TO_ENDPOINT);
	}
	ids.src = IDENTITY_UNRESOLVED;
	ids.dst = IDENTITY_UNRESOLVED;
	ret = endpoint_ingress(&p, CONFIG.endpoint_id, ctx_ifindex(ctx),
			       TRACE_ALL, &ids, now, policy_generation(), 0, 1,
			       &res);
	/*
	 * A redirect entering from the node's stack: tc egress cannot assign
	 * the proxy's socket, and the flow must not arrive directly.
	 */
	if (unlikely(ret == CTX_PROXY))
		return drop(ctx, &p, DROP_PROXY_UNSUPPORTED, TND_OBS_TO_ENDPOINT);
	/* The reply of a service's flow this pod opened: back to the frontend. */
	if (ret == CTX_OK && unlikely((res.flags & TND_CT_F_LB) && res.reply))
		return lb_reply(ctx, &p, now, TND_OBS_TO_ENDPOINT);
	return ret;
disabled:
	return drop(ctx, &p, DROP_FAMILY_DISABLED, TND_OBS_TO_ENDPOINT);
}

char LICENSE[] SEC("license") = "GPL";
