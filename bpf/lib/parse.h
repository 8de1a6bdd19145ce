/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: bounds-checked parsing of Ethernet/IPv4/IPv6 and the L4 header into a
 * flow tuple.
 *   (struct pkt, what these fill, is in pkt.h)
 *   parse_ipv4(ctx, p)         0, or -DROP_... for a malformed packet
 *   parse_ipv6(ctx, p)         same; walks up to IPV6_MAX_EXTHDR extension
 *                              headers, refuses fragments
 * The IP header always starts at ETH_HLEN (no VLANs on a pod's veth).
 */
#ifndef TND_PARSE_H
#define TND_PARSE_H

#include "compiler.h"
#include "ctx.h"
#include "common.h"
#include "drop.h"
#include "pkt.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

/* TCP, UDP, SCTP and ICMP headers share what we read in their first 8 bytes. */
#define SCTP_COMMON_HLEN 12

struct l4_head {
	__be16 sport;   /* ICMP: type, code */
	__be16 dport;   /* ICMP: checksum */
	__be16 w2;      /* ICMP echo: identifier */
	__be16 w3;
};

static __always_inline int parse_l4(void *data, void *data_end, struct pkt *p,
				    __u32 off, __u32 l4_len)
{
	struct l4_head *l4 = data + off;
	__u8 *tcp;
	__u32 doff;
	int v4;

	p->l4_off = off;

	switch (p->tuple.proto) {
	case IPPROTO_TCP:
		tcp = data + off;
		if ((void *)(tcp + 20) > data_end || l4_len < 20)
			return -DROP_TRUNCATED_L4;
		doff = (tcp[12] >> 4) * 4;
		if (doff < 20 || doff > l4_len)
			return -DROP_TRUNCATED_L4;
		p->tuple.sport = l4->sport;
		p->tuple.dport = l4->dport;
		p->tcp_flags = tcp[13];
		return 0;
	case IPPROTO_UDP:
		if ((void *)(l4 + 1) > data_end || l4_len < 8)
			return -DROP_TRUNCATED_L4;
		p->tuple.sport = l4->sport;
		p->tuple.dport = l4->dport;
		return 0;
	case IPPROTO_SCTP:
		/* The common header: ports, verification tag, checksum. */
		if ((void *)l4 + SCTP_COMMON_HLEN > data_end ||
		    l4_len < SCTP_COMMON_HLEN)
			return -DROP_TRUNCATED_L4;
		p->tuple.sport = l4->sport;
		p->tuple.dport = l4->dport;
		return 0;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		if ((void *)(l4 + 1) > data_end || l4_len < 8)
			return -DROP_TRUNCATED_L4;
		p->icmp_type = *(__u8 *)l4;
		/*
		 * Echo request and reply are one flow: the identifier is the
		 * "port" of the requester's side, so reversing the reply's tuple
		 * gives the request's. Other ICMP types use ports 0/0.
		 */
		v4 = p->tuple.proto == IPPROTO_ICMP;
		if (p->icmp_type == (v4 ? ICMP_ECHO_REQUEST : ICMP6_ECHO_REQUEST))
			p->tuple.sport = l4->w2;
		else if (p->icmp_type == (v4 ? ICMP_ECHO_REPLY : ICMP6_ECHO_REPLY))
			p->tuple.dport = l4->w2;
		return 0;
	default:
		return -DROP_UNSUPPORTED_L4;
	}
}

static __always_inline int parse_ipv4(struct __ctx_buff *ctx, struct pkt *p)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + ETH_HLEN;
	__u32 ihl, tot_len;

	if ((void *)(ip + 1) > data_end)
		return -DROP_TRUNCATED_IPV4;
	if (ip->version != 4)
		return -DROP_UNSUPPORTED_L3;
	ihl = ip->ihl * 4;
	tot_len = bpf_ntohs(ip->tot_len);
	if (ihl < sizeof(*ip) || tot_len < ihl || tot_len > p->len - ETH_HLEN)
		return -DROP_TRUNCATED_IPV4;

	p->tuple.family = TND_AF_INET;
	p->tuple.proto = ip->protocol;
	p->ttl = ip->ttl;
	*(__u32 *)p->tuple.saddr = ip->saddr;
	*(__u32 *)p->tuple.daddr = ip->daddr;
	if (ip->frag_off & bpf_htons(IPV4_FRAG_MASK))
		return -DROP_FRAG_UNSUPPORTED;
	return parse_l4(data, data_end, p, ETH_HLEN + ihl, tot_len - ihl);
}

static __always_inline int parse_ipv6(struct __ctx_buff *ctx, struct pkt *p)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct ipv6hdr *ip6 = data + ETH_HLEN;
	__u32 off = ETH_HLEN + sizeof(*ip6), plen, end;
	__u8 nh;
	int i;

	if ((void *)(ip6 + 1) > data_end)
		return -DROP_TRUNCATED_IPV6;
	if (ip6->version != 6)
		return -DROP_UNSUPPORTED_L3;
	plen = bpf_ntohs(ip6->payload_len);
	end = off + plen; /* first byte past the IPv6 payload */
	if (end > p->len)
		return -DROP_TRUNCATED_IPV6;

	p->tuple.family = TND_AF_INET6;
	p->ttl = ip6->hop_limit;
	__builtin_memcpy(p->tuple.saddr, &ip6->saddr, TND_ADDR_LEN);
	__builtin_memcpy(p->tuple.daddr, &ip6->daddr, TND_ADDR_LEN);
	nh = ip6->nexthdr;

	/* Extension headers are rare; the common case leaves at the first test. */
#pragma unroll
	for (i = 0; i < IPV6_MAX_EXTHDR; i++) {
		struct ipv6_opt_hdr *opt;

		if (nh != IPPROTO_HOPOPTS && nh != IPPROTO_ROUTING &&
		    nh != IPPROTO_DSTOPTS)
			break;
		opt = data + off;
		if ((void *)(opt + 1) > data_end)
			return -DROP_TRUNCATED_IPV6;
		nh = opt->nexthdr;
		off += (opt->hdrlen + 1) * 8;
	}
	p->tuple.proto = nh;
	if (nh == IPPROTO_FRAGMENT)
		return -DROP_FRAG_UNSUPPORTED;
	if (nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING ||
	    nh == IPPROTO_DSTOPTS)
		return -DROP_EXTHDR_LIMIT;
	if (off > end)
		return -DROP_TRUNCATED_IPV6;
	return parse_l4(data, data_end, p, off, end - off);
}

#endif /* TND_PARSE_H */
