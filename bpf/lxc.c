// SPDX-License-Identifier: Apache-2.0
/*
 * Endpoint datapath: the two programs on the host side of a pod's veth.
 *   from_container  tc ingress: packets leaving the pod. Answers ARP, ND and
 *                   pings to the router in place; passes the pod's ARP
 *                   replies to the node; forwards unicast to local endpoints
 *                   (anti-spoofing, conntrack, TTL, MAC rewrite) and
 *                   delivers them itself: the destination's ingress
 *                   conntrack and trace, then bpf_redirect_peer into its eth0.
 *   to_container    tc egress: packets entering the pod from the node's stack
 *                   (and the replies from_container sends back to the pod).
 *                   The same ingress step: conntrack, trace.
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
#include "trace.h"
#include "mac.h"
#include "arp.h"
#include "ndisc.h"
#include "icmp.h"
#include "csum.h"
#include "wire.h"

#include <linux/stddef.h>

DECLARE_CONFIG(struct tnd_lxc_config);
WIRE_TYPES_IN_BTF();

#define IPV4_ENABLED CONFIG_HAS(TND_LXC_IPV4)
#define IPV6_ENABLED CONFIG_HAS(TND_LXC_IPV6)
#define TRACE_ALL CONFIG_HAS(TND_LXC_TRACE_ALL)

/*
 * "Not done yet, go on to forward()": lets the IPv4 and IPv6 paths
 * share one copy of the forwarding and conntrack code instead of two.
 */
#define CTX_CONTINUE 0x100

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

/* A reply built in place goes back out of the pod's own veth. */
static __always_inline int local_reply(const struct __ctx_buff *ctx,
				       const struct pkt *p, __u8 obs)
{
	__u32 ifindex = ctx_ifindex(ctx);

	metrics_add(TND_METRIC_LOCAL_REPLY, p->len);
	trace_at(p, obs, ifindex, CONFIG.endpoint_id, ifindex, 0);
	return ctx_redirect(ifindex);
}

/*
 * A packet entering an endpoint, wherever it comes from: conntrack in the
 * endpoint's ingress direction, metrics, the TND_OBS_TO_ENDPOINT trace (and,
 * when its issue comes, the endpoint's ingress policy, looked up by
 * endpoint_id in a node-wide map). It runs in the endpoint's own
 * to_container for traffic from the node, and in a local source's
 * from_container on the destination's behalf (deliver_local()): so
 * everything about the destination comes from the arguments, never from
 * CONFIG. Returns CTX_OK to go on, or a drop verdict.
 */
static __always_inline int endpoint_ingress(struct pkt *p, __u16 endpoint_id,
					    __u32 ifindex, int trace_all,
					    __u64 now, int reply_first)
{
	struct ct_result res;

	ct_process(p, TND_CT_INGRESS, endpoint_id, now, reply_first, &res);
	metrics_add(TND_METRIC_DELIVERED, p->len);
	if (trace_wanted(&res, trace_all))
		trace_at(p, TND_OBS_TO_ENDPOINT, ifindex, endpoint_id, 0,
			 res.state);
	return CTX_OK;
}

/*
 * Deliver to a local endpoint: its ingress processing, then straight into its
 * eth0 in its netns (bpf_redirect_peer: no trip through the host veth's
 * egress, where its to_container would run, and no backlog queue).
 */
static __always_inline int deliver_local(struct pkt *p,
					 const struct tnd_endpoint_info *info,
					 __u64 now, int reply_first)
{
	int ret;

	ret = endpoint_ingress(p, info->endpoint_id, info->ifindex,
			       info->flags & TND_ENDPOINT_TRACE_ALL, now,
			       reply_first);
	if (ret != CTX_OK)
		return ret;
	return ctx_redirect_peer(info->ifindex);
}

/* Unicast to a local endpoint: the established-flow fast path. */
static __always_inline int forward(struct __ctx_buff *ctx, struct pkt *p)
{
	struct tnd_endpoint_info *info;
	struct ct_result res;
	struct ethhdr *eth;
	void *data, *data_end;
	__u64 now;

	info = endpoint_lookup(&p->tuple);
	if (!info)
		return drop(ctx, p, DROP_UNKNOWN_DEST, TND_OBS_FROM_ENDPOINT);
	if (p->ttl <= 1)
		return drop(ctx, p, DROP_TTL_EXCEEDED, TND_OBS_FROM_ENDPOINT);

	now = ct_now();
	ct_process(p, TND_CT_EGRESS, CONFIG.endpoint_id, now, 0, &res);

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

	metrics_add(TND_METRIC_FORWARDED, p->len);
	if (trace_wanted(&res, TRACE_ALL))
		trace_at(p, TND_OBS_FROM_ENDPOINT, ctx_ifindex(ctx),
			 CONFIG.endpoint_id, info->ifindex, res.state);
	/* A reply out of here is most likely a reply into there too. */
	return deliver_local(p, info, now, res.reply);
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
	struct pkt p = {};
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
	if (ret == CTX_CONTINUE)
		return forward(ctx, &p);
	return ret;
disabled:
	return drop(ctx, &p, DROP_FAMILY_DISABLED, TND_OBS_FROM_ENDPOINT);
}

SEC("tc")
int to_container(struct __sk_buff *ctx)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct pkt p = {};
	int ret;

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
	return endpoint_ingress(&p, CONFIG.endpoint_id, ctx_ifindex(ctx),
				TRACE_ALL, ct_now(), 0);
disabled:
	return drop(ctx, &p, DROP_FAMILY_DISABLED, TND_OBS_TO_ENDPOINT);
}

char LICENSE[] SEC("license") = "GPL";
