/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: rewrite a parsed packet's source or destination (address and port)
 * in place, with the IPv4 header checksum and the TCP/UDP checksum
 * (pseudo-header included) kept right.
 *   nat_rewrite(ctx, p, which, addr, port)
 *       which: NAT_SRC or NAT_DST; addr: 4 (IPv4) or 16 bytes in network
 *       order; port: network order, 0 keeps the port. p is the packet's
 *       struct pkt (parse.h): its tuple is updated too. Returns 0, or
 *       -DROP_NAT_FAILED when the packet could not be written.
 * tc goes through the checksum helpers: they also keep skb->csum right
 * (CHECKSUM_COMPLETE) and update a CHECKSUM_PARTIAL packet's pseudo-header
 * sum the way the stack expects, which a plain RFC 1624 update would not.
 * Packet pointers are invalid after a tc call. XDP frames carry whole
 * checksums: RFC 1624 on the packet's words.
 * A UDP checksum of 0 (IPv4: none) stays 0.
 *   nat_rewrite2(ctx, p, saddr, sport, daddr, dport)
 *       XDP only: source and destination at once, each checksum updated
 *       once (what SNAT+DNAT costs in one pass).
 */
#ifndef TND_NAT_H
#define TND_NAT_H

#include "compiler.h"
#include "ctx.h"
#include "csum.h"
#include "drop.h"
#include "pkt.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

enum nat_which {
	NAT_SRC = 0,
	NAT_DST = 1,
};

/* Offset of the L4 checksum field from the L4 header, or 0: not TCP/UDP. */
static __always_inline __u32 nat_l4_csum_off(__u8 proto)
{
	if (proto == IPPROTO_TCP)
		return 16;
	if (proto == IPPROTO_UDP)
		return 6;
	return 0;
}

/* Where the address sits: IPv4 saddr at 12, daddr at 16; IPv6 at 8 and 24. */
static __always_inline __u32 nat_addr_off(__u8 family, enum nat_which which)
{
	if (family == TND_AF_INET)
		return ETH_HLEN + (which == NAT_SRC ? 12 : 16);
	return ETH_HLEN + (which == NAT_SRC ? 8 : 24);
}

static __always_inline void nat_update_tuple(struct pkt *p, enum nat_which which,
					     const __u8 *addr, __u16 port)
{
	__u8 *a = which == NAT_SRC ? p->tuple.saddr : p->tuple.daddr;

	if (p->tuple.family == TND_AF_INET)
		__builtin_memcpy(a, addr, 4);
	else
		__builtin_memcpy(a, addr, TND_ADDR_LEN);
	if (port) {
		if (which == NAT_SRC)
			p->tuple.sport = port;
		else
			p->tuple.dport = port;
	}
}

#ifdef TND_CTX_XDP

/* One's-complement sum of n 32-bit words of a, as 16-bit words. */
static __always_inline __u64 nat_sum32(const __u32 *a, int n)
{
	__u64 sum = 0;
	int i;

#pragma unroll
	for (i = 0; i < n; i++)
		sum += (a[i] & 0xffff) + (a[i] >> 16);
	return sum;
}

/* RFC 1624 for several changed words: ~HC + sum(~old) + sum(new). */
static __always_inline void nat_csum_update(__u16 *check, __u64 old_sum,
					    __u64 new_sum)
{
	__u64 sum = (__u16)~*check;

	/* ~old summed word by word equals (0xffff * words) - old_sum; adding
	 * the complement of the folded old sum is the same in one's complement. */
	sum += (__u16)~csum_fold(old_sum);
	sum += new_sum;
	*check = (__u16)~csum_fold(sum);
}

static __always_inline int nat_rewrite(struct __ctx_buff *ctx, struct pkt *p,
				       enum nat_which which, const __u8 *addr,
				       __u16 port)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	int v4 = p->tuple.family == TND_AF_INET;
	__u32 csum_off = nat_l4_csum_off(p->tuple.proto);
	__u32 l4 = p->l4_off;
	__u64 old_sum, new_sum;
	__u32 naddr[4] = {};
	__u16 *l4_check, *l4_port;
	__u32 *a;

	if (!csum_off || l4 > 512)
		return -DROP_NAT_FAILED;
	/* The checksum is the last field read: the ports come before it. */
	if (data + l4 + csum_off + 2 > data_end)
		return -DROP_NAT_FAILED;
	l4_check = data + l4 + csum_off;
	l4_port = data + l4 + (which == NAT_SRC ? 0 : 2);
	if (v4) {
		struct iphdr *ip = data + ETH_HLEN;

		if ((void *)(ip + 1) > data_end)
			return -DROP_NAT_FAILED;
		a = which == NAT_SRC ? &ip->saddr : &ip->daddr;
		naddr[0] = *(const __u32 *)addr;
		old_sum = nat_sum32(a, 1);
		new_sum = nat_sum32(naddr, 1);
		nat_csum_update(&ip->check, old_sum, new_sum);
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			return -DROP_NAT_FAILED;
		a = (__u32 *)(which == NAT_SRC ? &ip6->saddr : &ip6->daddr);
		__builtin_memcpy(naddr, addr, TND_ADDR_LEN);
		old_sum = nat_sum32(a, 4);
		new_sum = nat_sum32(naddr, 4);
	}
	if (port) {
		old_sum += *l4_port;
		new_sum += port;
		*l4_port = port;
	}
	if (!(p->tuple.proto == IPPROTO_UDP && *l4_check == 0)) {
		nat_csum_update(l4_check, old_sum, new_sum);
		if (p->tuple.proto == IPPROTO_UDP && *l4_check == 0)
			*l4_check = 0xffff;
	}
	if (v4) {
		a[0] = naddr[0];
	} else {
		a[0] = naddr[0];
		a[1] = naddr[1];
		a[2] = naddr[2];
		a[3] = naddr[3];
	}
	nat_update_tuple(p, which, addr, port);
	return 0;
}

static __always_inline int nat_rewrite2(struct __ctx_buff *ctx, struct pkt *p,
					const __u8 *saddr, __u16 sport,
					const __u8 *daddr, __u16 dport)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	int v4 = p->tuple.family == TND_AF_INET;
	__u32 csum_off = nat_l4_csum_off(p->tuple.proto);
	__u32 l4 = p->l4_off;
	__u32 ns[4] = {}, nd[4] = {};
	__u64 old_sum, new_sum;
	__u16 *l4_check, *ports;
	__u32 *s, *d;

	if (!csum_off || l4 > 512)
		return -DROP_NAT_FAILED;
	if (data + l4 + csum_off + 2 > data_end)
		return -DROP_NAT_FAILED;
	l4_check = data + l4 + csum_off;
	ports = data + l4;
	if (v4) {
		struct iphdr *ip = data + ETH_HLEN;

		if ((void *)(ip + 1) > data_end)
			return -DROP_NAT_FAILED;
		s = &ip->saddr;
		d = &ip->daddr;
		ns[0] = *(const __u32 *)saddr;
		nd[0] = *(const __u32 *)daddr;
		old_sum = nat_sum32(s, 1) + nat_sum32(d, 1);
		new_sum = nat_sum32(ns, 1) + nat_sum32(nd, 1);
		nat_csum_update(&ip->check, old_sum, new_sum);
	} else {
		struct ipv6hdr *ip6 = data + ETH_HLEN;

		if ((void *)(ip6 + 1) > data_end)
			return -DROP_NAT_FAILED;
		s = (__u32 *)&ip6->saddr;
		d = (__u32 *)&ip6->daddr;
		__builtin_memcpy(ns, saddr, TND_ADDR_LEN);
		__builtin_memcpy(nd, daddr, TND_ADDR_LEN);
		old_sum = nat_sum32(s, 4) + nat_sum32(d, 4);
		new_sum = nat_sum32(ns, 4) + nat_sum32(nd, 4);
	}
	if (sport) {
		old_sum += ports[0];
		new_sum += sport;
		ports[0] = sport;
	}
	if (dport) {
		old_sum += ports[1];
		new_sum += dport;
		ports[1] = dport;
	}
	if (!(p->tuple.proto == IPPROTO_UDP && *l4_check == 0)) {
		nat_csum_update(l4_check, old_sum, new_sum);
		if (p->tuple.proto == IPPROTO_UDP && *l4_check == 0)
			*l4_check = 0xffff;
	}
	s[0] = ns[0];
	d[0] = nd[0];
	if (!v4) {
		s[1] = ns[1];
		s[2] = ns[2];
		s[3] = ns[3];
		d[1] = nd[1];
		d[2] = nd[2];
		d[3] = nd[3];
	}
	nat_update_tuple(p, NAT_SRC, saddr, sport);
	nat_update_tuple(p, NAT_DST, daddr, dport);
	return 0;
}

#else /* tc */

static __always_inline int nat_rewrite(struct __ctx_buff *ctx, struct pkt *p,
				       enum nat_which which, const __u8 *addr,
				       __u16 port)
{
	__u32 words = p->tuple.family == TND_AF_INET ? 1 : 4;
	__u32 csum_off = nat_l4_csum_off(p->tuple.proto);
	__u32 aoff = nat_addr_off(p->tuple.family, which);
	__u32 check_at = p->l4_off + csum_off;
	__u64 l4_flags = BPF_F_PSEUDO_HDR;
	__u32 old[4] = {}, naddr[4] = {};
	__be16 old_port;
	__s64 diff;

	if (!csum_off)
		return -DROP_NAT_FAILED;
	if (p->tuple.proto == IPPROTO_UDP)
		l4_flags |= BPF_F_MARK_MANGLED_0;
	/*
	 * IPv6 has no header checksum to absorb the address change: without
	 * the flag the helper would also move a CHECKSUM_COMPLETE skb->csum,
	 * which the changed address and L4 checksum already cancel out.
	 */
	if (p->tuple.family == TND_AF_INET6)
		l4_flags |= BPF_F_IPV6;
	if (bpf_skb_load_bytes(ctx, aoff, old, words * 4) < 0)
		return -DROP_NAT_FAILED;
	/* Constant sizes: BPF has no memcpy of a variable length. */
	if (words == 1)
		__builtin_memcpy(naddr, addr, 4);
	else
		__builtin_memcpy(naddr, addr, TND_ADDR_LEN);
	diff = bpf_csum_diff(old, words * 4, naddr, words * 4, 0);
	if (diff < 0)
		return -DROP_NAT_FAILED;
	if (bpf_l4_csum_replace(ctx, check_at, 0, diff, l4_flags) < 0)
		return -DROP_NAT_FAILED;
	if (p->tuple.family == TND_AF_INET &&
	    bpf_l3_csum_replace(ctx, ETH_HLEN + 10, 0, diff, 0) < 0)
		return -DROP_NAT_FAILED;
	if (bpf_skb_store_bytes(ctx, aoff, naddr, words * 4, 0) < 0)
		return -DROP_NAT_FAILED;
	if (port) {
		__u32 port_at = p->l4_off + (which == NAT_SRC ? 0 : 2);

		if (bpf_skb_load_bytes(ctx, port_at, &old_port, 2) < 0)
			return -DROP_NAT_FAILED;
		if (bpf_l4_csum_replace(ctx, check_at, old_port, port,
					(p->tuple.proto == IPPROTO_UDP ? BPF_F_MARK_MANGLED_0 : 0) | 2) < 0)
			return -DROP_NAT_FAILED;
		if (bpf_skb_store_bytes(ctx, port_at, &port, 2, 0) < 0)
			return -DROP_NAT_FAILED;
	}
	nat_update_tuple(p, which, addr, port);
	return 0;
}

#endif

#endif /* TND_NAT_H */
