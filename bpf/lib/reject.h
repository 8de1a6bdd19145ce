/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: refuse a pod's new connection with the answer a closed port gives,
 * so the pod fails at once instead of waiting for timeouts.
 *   reject_reply(ctx, p, pod_mac, router_mac)
 *       turns the parsed packet in hand into its refusal, addressed back to
 *       the sender from the address and port it was sent to:
 *         TCP  a reset (RFC 9293 3.10.7.1: seq = the segment's ACK if it has
 *              one, else seq 0 and RST+ACK acknowledging the segment)
 *         UDP  ICMP port unreachable (type 3 code 3) / ICMPv6 destination
 *              unreachable, port unreachable (type 1 code 4), quoting the
 *              original IP header and the first 8 bytes of its payload
 *              (RFC 792; RFC 4443 allows more, the header is what a sender
 *              needs to find its socket)
 *       Returns 0, 1 when the packet gets no answer (a reset, IPv4 options,
 *       IPv6 extension headers, neither TCP nor UDP), or -DROP_WRITE_ERROR.
 *       Packet pointers are invalid afterwards.
 * The reply is built on the stack, checksums and all, then written over the
 * resized packet in one store.
 */
#ifndef TND_REJECT_H
#define TND_REJECT_H

#include "compiler.h"
#include "ctx.h"
#include "csum.h"
#include "drop.h"
#include "mac.h"
#include "pkt.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#define REJECT_TTL 64
#define REJECT_TOS 0xc0            /* IP precedence "internetwork control" (RFC 1812 4.3.2.5) */
#define ICMP_DEST_UNREACH 3
#define ICMP_PORT_UNREACH 3
#define ICMP6_DEST_UNREACH 1
#define ICMP6_PORT_UNREACH 4
#define REJECT_QUOTE_L4 8          /* bytes of the original payload quoted */

struct reject_tcp {
	__be16 sport;
	__be16 dport;
	__be32 seq;
	__be32 ack;
	__u8 doff;                 /* data offset << 4 */
	__u8 flags;
	__be16 window;
	__u16 check;
	__be16 urg;
};

struct reject_icmp {
	__u8 type;
	__u8 code;
	__u16 check;
	__u32 unused;
};

struct reject4_tcp {
	struct iphdr ip;
	struct reject_tcp tcp;
};

struct reject6_tcp {
	struct ipv6hdr ip6;
	struct reject_tcp tcp;
};

struct reject4_icmp {
	struct iphdr ip;
	struct reject_icmp icmp;
	__u8 quote[sizeof(struct iphdr) + REJECT_QUOTE_L4];
};

struct reject6_icmp {
	struct ipv6hdr ip6;
	struct reject_icmp icmp;
	__u8 quote[sizeof(struct ipv6hdr) + REJECT_QUOTE_L4];
};

/* The L4 pseudo-headers (RFC 9293 3.1, RFC 8200 8.1). */
struct reject_pseudo4 {
	__be32 saddr;
	__be32 daddr;
	__u8 zero;
	__u8 proto;
	__be16 len;
};

struct reject_pseudo6 {
	__u8 saddr[16];
	__u8 daddr[16];
	__be32 len;
	__u8 zero[3];
	__u8 proto;
};

/* ~fold(sum) of a buffer whose size is a multiple of 4, seeded. */
static __always_inline __u16 reject_csum(void *buf, __u32 size, __s64 seed)
{
	__s64 sum = bpf_csum_diff(NULL, 0, buf, size, seed);

	return (__u16)~csum_fold(sum < 0 ? 0 : sum);
}

static __always_inline __s64 reject_sum(void *buf, __u32 size)
{
	__s64 sum = bpf_csum_diff(NULL, 0, buf, size, 0);

	return sum < 0 ? 0 : sum;
}

static __always_inline void reject_ipv4(struct iphdr *ip, const struct pkt *p,
					__u8 proto, __u16 len)
{
	ip->version = 4;
	ip->ihl = 5;
	ip->tos = proto == IPPROTO_ICMP ? REJECT_TOS : 0;
	ip->tot_len = bpf_htons(len);
	ip->frag_off = proto == IPPROTO_TCP ? bpf_htons(0x4000) : 0; /* DF, as Linux's resets */
	ip->ttl = REJECT_TTL;
	ip->protocol = proto;
	/* The refusal comes from where the packet went. */
	__builtin_memcpy(&ip->saddr, p->tuple.daddr, 4);
	__builtin_memcpy(&ip->daddr, p->tuple.saddr, 4);
	ip->check = reject_csum(ip, sizeof(*ip), 0);
}

static __always_inline void reject_ipv6(struct ipv6hdr *ip6, const struct pkt *p,
					__u8 nexthdr, __u16 payload_len)
{
	*(__be32 *)ip6 = bpf_htonl(0x60000000);
	ip6->payload_len = bpf_htons(payload_len);
	ip6->nexthdr = nexthdr;
	ip6->hop_limit = REJECT_TTL;
	__builtin_memcpy(&ip6->saddr, p->tuple.daddr, 16);
	__builtin_memcpy(&ip6->daddr, p->tuple.saddr, 16);
}

/* The segment's payload length: IP payload minus the TCP header. */
static __always_inline __u32 reject_tcp_payload(const struct __ctx_buff *ctx,
						const struct pkt *p, __u8 doff)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	__u32 end;

	if (p->tuple.family == TND_AF_INET) {
		struct iphdr *ip = data + ETH_HLEN;

		if ((void *)(ip + 1) > data_end)
			return 0;
		end = ETH_HLEN + bpf_ntohs(ip->tot_len);
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			return 0;
		end = ETH_HLEN + sizeof(*ip6) + bpf_ntohs(ip6->payload_len);
	}
	return end - p->l4_off - (doff >> 4) * 4;
}

/* The reset's TCP header, checksum left to the caller. */
static __always_inline int reject_tcp_head(const struct __ctx_buff *ctx,
					   const struct pkt *p,
					   struct reject_tcp *t)
{
	struct reject_tcp in;

	if (bpf_skb_load_bytes(ctx, p->l4_off, &in, sizeof(in)) < 0)
		return -DROP_WRITE_ERROR;
	if (in.flags & TCP_F_RST)
		return 1;
	t->sport = in.dport;
	t->dport = in.sport;
	t->doff = 5 << 4;
	if (in.flags & TCP_F_ACK) {
		t->seq = in.ack;
		t->flags = TCP_F_RST;
	} else {
		__u32 ack = bpf_ntohl(in.seq) + reject_tcp_payload(ctx, p, in.doff);

		if (in.flags & TCP_F_SYN)
			ack++;
		if (in.flags & TCP_F_FIN)
			ack++;
		t->ack = bpf_htonl(ack);
		t->flags = TCP_F_RST | TCP_F_ACK;
	}
	return 0;
}

/* The Ethernet header back to the pod, then the reply over the rest. */
static __always_inline int reject_write(struct __ctx_buff *ctx, void *reply,
					__u32 size,
					const volatile __u8 *pod_mac,
					const volatile __u8 *router_mac)
{
	void *data, *data_end;
	struct ethhdr *eth;

	if (ctx_change_tail(ctx, ETH_HLEN + size) < 0)
		return -DROP_WRITE_ERROR;
	if (bpf_skb_store_bytes(ctx, ETH_HLEN, reply, size, 0) < 0)
		return -DROP_WRITE_ERROR;
	data = ctx_data(ctx);
	data_end = ctx_data_end(ctx);
	eth = data;
	if ((void *)(eth + 1) > data_end)
		return -DROP_WRITE_ERROR;
	mac_copy_cfg(eth->h_dest, pod_mac);
	mac_copy_cfg(eth->h_source, router_mac);
	return 0;
}

static __always_inline int reject4(struct __ctx_buff *ctx, const struct pkt *p,
				   const volatile __u8 *pod_mac,
				   const volatile __u8 *router_mac)
{
	struct reject_pseudo4 ph = {};
	int ret;

	if (p->l4_off != ETH_HLEN + sizeof(struct iphdr))
		return 1;
	if (p->tuple.proto == IPPROTO_TCP) {
		struct reject4_tcp r = {};

		ret = reject_tcp_head(ctx, p, &r.tcp);
		if (ret)
			return ret;
		reject_ipv4(&r.ip, p, IPPROTO_TCP, sizeof(r));
		ph.saddr = r.ip.saddr;
		ph.daddr = r.ip.daddr;
		ph.proto = IPPROTO_TCP;
		ph.len = bpf_htons(sizeof(r.tcp));
		r.tcp.check = reject_csum(&r.tcp, sizeof(r.tcp),
					  reject_sum(&ph, sizeof(ph)));
		return reject_write(ctx, &r, sizeof(r), pod_mac, router_mac);
	}
	if (p->tuple.proto == IPPROTO_UDP) {
		struct reject4_icmp r = {};

		if (bpf_skb_load_bytes(ctx, ETH_HLEN, r.quote, sizeof(r.quote)) < 0)
			return -DROP_WRITE_ERROR;
		reject_ipv4(&r.ip, p, IPPROTO_ICMP, sizeof(r));
		r.icmp.type = ICMP_DEST_UNREACH;
		r.icmp.code = ICMP_PORT_UNREACH;
		r.icmp.check = reject_csum(&r.icmp, sizeof(r) - sizeof(r.ip), 0);
		return reject_write(ctx, &r, sizeof(r), pod_mac, router_mac);
	}
	return 1;
}

static __always_inline int reject6(struct __ctx_buff *ctx, const struct pkt *p,
				   const volatile __u8 *pod_mac,
				   const volatile __u8 *router_mac)
{
	struct reject_pseudo6 ph = {};
	int ret;

	if (p->l4_off != ETH_HLEN + sizeof(struct ipv6hdr))
		return 1;
	__builtin_memcpy(ph.saddr, p->tuple.daddr, 16);
	__builtin_memcpy(ph.daddr, p->tuple.saddr, 16);
	if (p->tuple.proto == IPPROTO_TCP) {
		struct reject6_tcp r = {};

		ret = reject_tcp_head(ctx, p, &r.tcp);
		if (ret)
			return ret;
		reject_ipv6(&r.ip6, p, IPPROTO_TCP, sizeof(r.tcp));
		ph.proto = IPPROTO_TCP;
		ph.len = bpf_htonl(sizeof(r.tcp));
		r.tcp.check = reject_csum(&r.tcp, sizeof(r.tcp),
					  reject_sum(&ph, sizeof(ph)));
		return reject_write(ctx, &r, sizeof(r), pod_mac, router_mac);
	}
	if (p->tuple.proto == IPPROTO_UDP) {
		struct reject6_icmp r = {};
		__u32 len = sizeof(r) - sizeof(r.ip6);

		if (bpf_skb_load_bytes(ctx, ETH_HLEN, r.quote, sizeof(r.quote)) < 0)
			return -DROP_WRITE_ERROR;
		reject_ipv6(&r.ip6, p, IPPROTO_ICMPV6, len);
		r.icmp.type = ICMP6_DEST_UNREACH;
		r.icmp.code = ICMP6_PORT_UNREACH;
		ph.proto = IPPROTO_ICMPV6;
		ph.len = bpf_htonl(len);
		r.icmp.check = reject_csum(&r.icmp, len, reject_sum(&ph, sizeof(ph)));
		return reject_write(ctx, &r, sizeof(r), pod_mac, router_mac);
	}
	return 1;
}

static __always_inline int reject_reply(struct __ctx_buff *ctx,
					const struct pkt *p,
					const volatile __u8 *pod_mac,
					const volatile __u8 *router_mac)
{
	if (p->tuple.family == TND_AF_INET)
		return reject4(ctx, p, pod_mac, router_mac);
	return reject6(ctx, p, pod_mac, router_mac);
}

#endif /* TND_REJECT_H */
