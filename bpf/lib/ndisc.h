/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: IPv6 neighbour discovery for a pod with a /128 address: the router
 * (the host-side veth) answers for every address the pod asks about.
 *   ndisc_is_control(type)     ICMPv6 ND/MLD message types the pod's stack
 *                              sends on its own (RS, NS, NA, MLD ...)
 *   ndisc_respond(ctx, p, own_ip6, router_mac)
 *       0: the neighbour solicitation was rewritten in place into a solicited
 *          neighbour advertisement (router, solicited, override flags, target
 *          link-layer option = router_mac, checksum computed), ready to be
 *          redirected back to the pod;
 *       1: not ours to answer (DAD probe, the pod's own address, multicast
 *          target, hop limit not 255, extension headers): leave it to the
 *          stack;
 *       -DROP_...: malformed, or the packet could not be resized.
 */
#ifndef TND_NDISC_H
#define TND_NDISC_H

#include "compiler.h"
#include "addr.h"
#include "ctx.h"
#include "common.h"
#include "csum.h"
#include "drop.h"
#include "mac.h"
#include "pkt.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ipv6.h>

#define ND_ROUTER_SOLICIT 133
#define ND_ROUTER_ADVERT 134
#define ND_NEIGHBOR_SOLICIT 135
#define ND_NEIGHBOR_ADVERT 136
#define ND_REDIRECT 137
#define MLD_QUERY 130
#define MLD_REPORT 131
#define MLD_DONE 132
#define MLD2_REPORT 143

#define ND_OPT_TARGET_LLADDR 2
#define ND_NA_FLAGS 0xe0000000 /* router, solicited, override */
#define ND_HOP_LIMIT 255

/* NS and NA share this layout (RFC 4861 4.3, 4.4). */
struct nd_msg {
	__u8 type;
	__u8 code;
	__u16 check;
	__be32 flags;
	__u8 target[TND_ADDR_LEN];
};

struct nd_opt_lladdr {
	__u8 type;
	__u8 len; /* in units of 8 bytes */
	__u8 addr[ETH_ALEN];
};

#define NA_ICMP_LEN (sizeof(struct nd_msg) + sizeof(struct nd_opt_lladdr))
#define NA_PKT_LEN (ETH_HLEN + sizeof(struct ipv6hdr) + NA_ICMP_LEN)

static __always_inline int ndisc_is_control(__u8 type)
{
	return (type >= MLD_QUERY && type <= ND_REDIRECT) || type == MLD2_REPORT;
}

static __always_inline int ndisc_respond(struct __ctx_buff *ctx, struct pkt *p,
					 const volatile __u8 *own_ip6,
					 const volatile __u8 *router_mac)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	struct nd_msg *nd = (void *)(ip6 + 1);
	struct nd_opt_lladdr *opt;
	__u32 peer[4], *w;
	__u8 peer_mac[ETH_ALEN];
	__u64 sum;
	int i;

	if ((void *)(nd + 1) > data_end)
		return -DROP_INVALID_NDISC;
	if (bpf_ntohs(ip6->payload_len) < sizeof(*nd))
		return -DROP_INVALID_NDISC;
	if (ip6->nexthdr != IPPROTO_ICMPV6 || ip6->hop_limit != ND_HOP_LIMIT ||
	    nd->code != 0)
		return 1;
	__builtin_memcpy(peer, &ip6->saddr, sizeof(peer));
	if (ipv6_addr_is_zero(peer))
		return 1; /* duplicate address detection: no one may answer */
	if (nd->target[0] == 0xff ||
	    ipv6_addr_eq_cfg((const __u32 *)nd->target, own_ip6))
		return 1;
	mac_copy(peer_mac, eth->h_source);

	/* An NS may lack the source link-layer option or carry more options. */
	if (p->len != NA_PKT_LEN) {
		if (ctx_change_tail(ctx, NA_PKT_LEN))
			return -DROP_WRITE_ERROR;
		data = ctx_data(ctx);
		data_end = ctx_data_end(ctx);
		eth = data;
		ip6 = data + ETH_HLEN;
		nd = (void *)(ip6 + 1);
	}
	opt = (void *)(nd + 1);
	if ((void *)(opt + 1) > data_end)
		return -DROP_WRITE_ERROR;

	mac_copy(eth->h_dest, peer_mac);
	mac_copy_cfg(eth->h_source, router_mac);

	/* The advertisement comes from the address asked about, to the asker. */
	*(__be32 *)ip6 = bpf_htonl(0x60000000); /* version 6, no class/label */
	ip6->payload_len = bpf_htons(NA_ICMP_LEN);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = ND_HOP_LIMIT;
	__builtin_memcpy(&ip6->saddr, nd->target, TND_ADDR_LEN);
	__builtin_memcpy(&ip6->daddr, peer, TND_ADDR_LEN);

	nd->type = ND_NEIGHBOR_ADVERT;
	nd->code = 0;
	nd->check = 0;
	nd->flags = bpf_htonl(ND_NA_FLAGS);
	opt->type = ND_OPT_TARGET_LLADDR;
	opt->len = 1;
	mac_copy_cfg(opt->addr, router_mac);

	/* Pseudo-header (addresses, length, next header), then the message. */
	sum = bpf_htonl(NA_ICMP_LEN) + bpf_htonl(IPPROTO_ICMPV6);
	w = (__u32 *)&ip6->saddr;
#pragma unroll
	for (i = 0; i < 8; i++)
		sum += w[i];
	w = (__u32 *)nd;
#pragma unroll
	for (i = 0; i < NA_ICMP_LEN / 4; i++)
		sum += w[i];
	nd->check = (__u16)~csum_fold(sum);
	return 0;
}

#endif /* TND_NDISC_H */
