/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: the router answers pings to its own address, so a pod can check its
 * gateway without the node's stack.
 *   icmp4_echo_reply(ctx, router_mac)   turn the echo request in hand into
 *   icmp6_echo_reply(ctx, router_mac)   its reply in place: addresses and
 *                                       MACs swapped (router_mac as source),
 *                                       TTL/hop limit 64, type changed,
 *                                       checksums updated incrementally.
 *   Both return 0 when done, 1 when the packet has IPv4 options or IPv6
 *   extension headers (not answered; it goes the normal way).
 * The caller has parsed the packet (parse.h), so headers are in bounds of
 * the packet's length; these functions re-check the linear data.
 */
#ifndef TND_ICMP_H
#define TND_ICMP_H

#include "compiler.h"
#include "ctx.h"
#include "csum.h"
#include "mac.h"
#include "pkt.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#define ECHO_REPLY_TTL 64

/* Type and code, the first 16-bit word of an ICMP header. */
struct icmp_head {
	__u8 type;
	__u8 code;
	__u16 check;
};

static __always_inline void eth_reply(struct ethhdr *eth,
				      const volatile __u8 *router_mac)
{
	mac_copy(eth->h_dest, eth->h_source);
	mac_copy_cfg(eth->h_source, router_mac);
}

static __always_inline int icmp4_echo_reply(struct __ctx_buff *ctx,
					    const volatile __u8 *router_mac)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + ETH_HLEN;
	struct icmp_head *icmp = (void *)(ip + 1);
	__u16 old, *word;
	__u32 addr;

	if ((void *)(icmp + 1) > data_end)
		return 1;
	if (ip->ihl != 5)
		return 1;

	eth_reply(data, router_mac);
	addr = ip->saddr;
	ip->saddr = ip->daddr;
	ip->daddr = addr; /* a swap leaves the header checksum as it is */
	word = (__u16 *)&ip->ttl;
	old = *word;
	ip->ttl = ECHO_REPLY_TTL;
	csum_replace2(&ip->check, old, *word);

	old = *(__u16 *)icmp;
	icmp->type = ICMP_ECHO_REPLY;
	csum_replace2(&icmp->check, old, *(__u16 *)icmp);
	return 0;
}

static __always_inline int icmp6_echo_reply(struct __ctx_buff *ctx,
					    const volatile __u8 *router_mac)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	struct icmp_head *icmp = (void *)(ip6 + 1);
	struct in6_addr addr;
	__u16 old;

	if ((void *)(icmp + 1) > data_end)
		return 1;
	if (ip6->nexthdr != IPPROTO_ICMPV6)
		return 1;

	eth_reply(data, router_mac);
	/* Swapping the addresses leaves the pseudo-header sum unchanged. */
	addr = ip6->saddr;
	ip6->saddr = ip6->daddr;
	ip6->daddr = addr;
	ip6->hop_limit = ECHO_REPLY_TTL;

	old = *(__u16 *)icmp;
	icmp->type = ICMP6_ECHO_REPLY;
	csum_replace2(&icmp->check, old, *(__u16 *)icmp);
	return 0;
}

#endif /* TND_ICMP_H */
