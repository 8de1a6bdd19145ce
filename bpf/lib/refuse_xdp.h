/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: XDP only. A frontend without a usable backend refuses the client
 * instead of black-holing it: the packet in hand becomes the answer, sent
 * back with XDP_TX by the caller.
 *   refuse_tcp_rst(ctx, p)     TCP: a reset (RFC 9293 3.10.7.1: with the
 *                              segment's ACK as sequence number, else RST+ACK
 *                              acknowledging it), no options, no payload
 *   refuse_udp_unreach(ctx, p) UDP: ICMP port unreachable (type 3 code 3) or
 *                              ICMPv6 port unreachable (type 1 code 4)
 *                              quoting the IP header and 8 bytes of UDP
 * Both swap MACs and addresses (the answer comes from the frontend address
 * the client used), TTL/hop limit 64, and return 0, or -1 when the packet
 * could not be rewritten. The caller parsed the packet: IPv4 without options
 * (l4 at 34) or IPv6 without extension headers (l4 at 54).
 */
#ifndef TND_REFUSE_XDP_H
#define TND_REFUSE_XDP_H

#include "compiler.h"
#include "csum.h"
#include "mac.h"
#include "pkt.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#define REFUSE_TTL 64
#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3
#define ICMPV6_DEST_UNREACH 1
#define ICMPV6_PORT_UNREACH 4
/* What an ICMP error quotes: the IPv4/IPv6 header and 8 bytes of UDP. */
#define QUOTE4_LEN (20 + 8)
#define QUOTE6_LEN (40 + 8)

static __always_inline void refuse_swap_eth(struct ethhdr *eth)
{
	__u32 lo = *(__u32 *)eth->h_dest;
	__u16 hi = *(__u16 *)(eth->h_dest + 4);

	mac_copy(eth->h_dest, eth->h_source);
	*(__u32 *)eth->h_source = lo;
	*(__u16 *)(eth->h_source + 4) = hi;
}

/* The one's-complement sum of the pseudo-header of an IPv4/IPv6 segment. */
static __always_inline __u64 refuse_pseudo4(__u32 saddr, __u32 daddr, __u8 proto, __u16 len)
{
	return (__u64)saddr + daddr + bpf_htons(proto) + bpf_htons(len);
}

static __always_inline __u64 refuse_pseudo6(const struct ipv6hdr *ip6, __u8 proto, __u32 len)
{
	const __u32 *s = (const __u32 *)&ip6->saddr, *d = (const __u32 *)&ip6->daddr;
	__u64 sum = bpf_htonl(len) + (__u64)bpf_htonl(proto);
	int i;

#pragma unroll
	for (i = 0; i < 4; i++)
		sum += (__u64)s[i] + d[i];
	return sum;
}

/* IPv4 header checksum from scratch (20 bytes). */
static __always_inline void refuse_ip4_check(struct iphdr *ip)
{
	ip->check = 0;
	ip->check = ~csum_fold(bpf_csum_diff(0, 0, (void *)ip, sizeof(*ip), 0) & 0xffffffffULL);
}

static __always_inline int refuse_tcp_rst(struct xdp_md *ctx, const struct pkt *p)
{
	int v4 = p->tuple.family == TND_AF_INET;
	__u32 l3len = v4 ? sizeof(struct iphdr) : sizeof(struct ipv6hdr);
	__u32 out_len = ETH_HLEN + l3len + 20, seg_len;
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	__u32 seq, ack, old_seq, old_ack;
	__u8 *tcp, flags;
	__u64 sum;

	tcp = data + p->l4_off;
	if ((void *)(tcp + 20) > data_end)
		return -1;
	flags = tcp[13];
	old_seq = bpf_ntohl(*(__u32 *)(tcp + 4));
	old_ack = bpf_ntohl(*(__u32 *)(tcp + 8));
	/* The segment's length in sequence space: payload, SYN and FIN. */
	seg_len = p->len - p->l4_off - (tcp[12] >> 4) * 4;
	if (flags & TCP_F_SYN)
		seg_len++;
	if (flags & TCP_F_FIN)
		seg_len++;
	if (flags & TCP_F_ACK) {
		seq = old_ack;
		ack = 0;
		flags = TCP_F_RST;
	} else {
		seq = 0;
		ack = old_seq + seg_len;
		flags = TCP_F_RST | TCP_F_ACK;
	}

	if (bpf_xdp_adjust_tail(ctx, (int)out_len - (int)p->len) < 0)
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + out_len > data_end)
		return -1;
	refuse_swap_eth(data);
	tcp = data + ETH_HLEN + l3len;
	if ((void *)(tcp + 20) > data_end)
		return -1;
	/* Ports swapped, then the new header from the sequence number on. */
	*(__u32 *)tcp = (*(__u32 *)tcp >> 16) | (*(__u32 *)tcp << 16);
	*(__u32 *)(tcp + 4) = bpf_htonl(seq);
	*(__u32 *)(tcp + 8) = bpf_htonl(ack);
	tcp[12] = 5 << 4;
	tcp[13] = flags;
	*(__u32 *)(tcp + 14) = 0; /* window 0, checksum 0 */
	*(__u16 *)(tcp + 18) = 0; /* urgent pointer */

	if (v4) {
		struct iphdr *ip = data + ETH_HLEN;
		__u32 a;

		if ((void *)(ip + 1) > data_end)
			return -1;
		a = ip->saddr;
		ip->saddr = ip->daddr;
		ip->daddr = a;
		ip->tos = 0;
		ip->tot_len = bpf_htons(40);
		ip->id = 0;
		ip->frag_off = bpf_htons(0x4000);
		ip->ttl = REFUSE_TTL;
		refuse_ip4_check(ip);
		sum = refuse_pseudo4(ip->saddr, ip->daddr, IPPROTO_TCP, 20);
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;
		struct in6_addr a;

		if ((void *)(ip6 + 1) > data_end)
			return -1;
		a = ip6->saddr;
		ip6->saddr = ip6->daddr;
		ip6->daddr = a;
		*(__u32 *)ip6 = bpf_htonl(0x60000000);
		ip6->payload_len = bpf_htons(20);
		ip6->hop_limit = REFUSE_TTL;
		sum = refuse_pseudo6(ip6, IPPROTO_TCP, 20);
	}
	sum += (__u32)bpf_csum_diff(0, 0, (void *)tcp, 20, 0);
	*(__u16 *)(tcp + 16) = ~csum_fold(sum);
	return 0;
}

/*
 * Room for an ICMP error in front of the frame in hand: `grow` bytes (the
 * new IP and ICMP headers) at its head and the whole cut to out_len, so the
 * original frame starts at `grow` and its IP header lands right where the
 * ICMP message quotes it. The frame's start, or NULL.
 */
static __always_inline void *refuse_icmp_frame(struct xdp_md *ctx, __u32 grow,
					       __u32 out_len)
{
	void *data, *data_end;

	if (bpf_xdp_adjust_head(ctx, -(int)grow) < 0)
		return NULL;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (bpf_xdp_adjust_tail(ctx, (int)out_len - (int)(data_end - data)) < 0)
		return NULL;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + out_len > data_end)
		return NULL;
	return data;
}

static __always_inline int refuse_udp_unreach4(struct xdp_md *ctx)
{
	const __u32 grow = sizeof(struct iphdr) + 8; /* new IP header + ICMP header */
	const __u32 out_len = ETH_HLEN + grow + QUOTE4_LEN;
	void *data;
	struct ethhdr *eth, *old_eth;
	struct iphdr *ip, *old_ip;
	__u8 *icmp;

	data = refuse_icmp_frame(ctx, grow, out_len);
	if (!data)
		return -1;
	eth = data;
	old_eth = data + grow;
	ip = data + ETH_HLEN;
	icmp = data + ETH_HLEN + sizeof(*ip);
	old_ip = data + grow + ETH_HLEN;
	mac_copy(eth->h_dest, old_eth->h_source);
	mac_copy(eth->h_source, old_eth->h_dest);
	eth->h_proto = bpf_htons(ETH_P_IP);
	*(__u16 *)ip = bpf_htons(0x4500);
	ip->tot_len = bpf_htons(sizeof(*ip) + 8 + QUOTE4_LEN);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = REFUSE_TTL;
	ip->protocol = IPPROTO_ICMP;
	ip->saddr = old_ip->daddr;
	ip->daddr = old_ip->saddr;
	refuse_ip4_check(ip);
	icmp[0] = ICMP_DEST_UNREACH;
	icmp[1] = ICMP_PORT_UNREACH;
	*(__u16 *)(icmp + 2) = 0;
	*(__u32 *)(icmp + 4) = 0;
	*(__u16 *)(icmp + 2) = ~csum_fold((__u32)bpf_csum_diff(0, 0, (void *)icmp, 8 + QUOTE4_LEN, 0));
	return 0;
}

static __always_inline int refuse_udp_unreach6(struct xdp_md *ctx)
{
	const __u32 grow = sizeof(struct ipv6hdr) + 8;
	const __u32 out_len = ETH_HLEN + grow + QUOTE6_LEN;
	void *data;
	struct ethhdr *eth, *old_eth;
	struct ipv6hdr *ip6, *old_ip6;
	__u8 *icmp;
	__u64 sum;

	data = refuse_icmp_frame(ctx, grow, out_len);
	if (!data)
		return -1;
	eth = data;
	old_eth = data + grow;
	ip6 = data + ETH_HLEN;
	icmp = data + ETH_HLEN + sizeof(*ip6);
	old_ip6 = data + grow + ETH_HLEN;
	mac_copy(eth->h_dest, old_eth->h_source);
	mac_copy(eth->h_source, old_eth->h_dest);
	eth->h_proto = bpf_htons(ETH_P_IPV6);
	*(__u32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(8 + QUOTE6_LEN);
	ip6->nexthdr = IPPROTO_ICMPV6;
	ip6->hop_limit = REFUSE_TTL;
	ip6->saddr = old_ip6->daddr;
	ip6->daddr = old_ip6->saddr;
	icmp[0] = ICMPV6_DEST_UNREACH;
	icmp[1] = ICMPV6_PORT_UNREACH;
	*(__u16 *)(icmp + 2) = 0;
	*(__u32 *)(icmp + 4) = 0;
	sum = refuse_pseudo6(ip6, IPPROTO_ICMPV6, 8 + QUOTE6_LEN);
	sum += (__u32)bpf_csum_diff(0, 0, (void *)icmp, 8 + QUOTE6_LEN, 0);
	*(__u16 *)(icmp + 2) = ~csum_fold(sum);
	return 0;
}

static __always_inline int refuse_udp_unreach(struct xdp_md *ctx, const struct pkt *p)
{
	return p->tuple.family == TND_AF_INET ? refuse_udp_unreach4(ctx) : refuse_udp_unreach6(ctx);
}

#endif /* TND_REFUSE_XDP_H */
