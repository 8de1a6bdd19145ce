/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: XDP only. Direct server return: the frontend (address and port the
 * client used) travels to the backend's node inside the packet, already
 * translated to the backend (common.h, struct tnd_dsr_opt4/6).
 *   dsr_insert4(ctx, addr, port)  an 8-byte IP option after the 20-byte
 *                                 IPv4 header: IHL 7, tot_len and header
 *                                 checksum updated
 *   dsr_insert6(ctx, addr, port)  a 24-byte Destination Options header right
 *                                 after the IPv6 header: nexthdr chained,
 *                                 payload_len updated
 * The L4 checksum does not cover either (the pseudo-header has the
 * addresses and the upper-layer length only). Both return 0 or -1. The
 * frame grows at its head (bpf_xdp_adjust_head) and the Ethernet and IP
 * headers move to the new start, so packet pointers are invalid after.
 */
#ifndef TND_DSR_XDP_H
#define TND_DSR_XDP_H

#include "compiler.h"
#include "common.h"
#include "csum.h"
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>

#define DSR_OPT4_LEN sizeof(struct tnd_dsr_opt4)
#define DSR_OPT6_LEN sizeof(struct tnd_dsr_opt6)

/*
 * Moves the first `len` bytes (Ethernet + IP header) from `grow` down to
 * the new start, in 16-bit words from the front: the destination is below
 * the source, so nothing is overwritten before it is read.
 */
#define DSR_MOVE_HEADERS(data, grow, len)                                  \
	do {                                                               \
		__u16 *_d = (__u16 *)(data);                               \
		int _i;                                                    \
		_Pragma("unroll") for (_i = 0; _i < (len) / 2; _i++)       \
			_d[_i] = _d[_i + (grow) / 2];                      \
	} while (0)

static __always_inline int dsr_insert4(struct xdp_md *ctx, __u32 addr, __u16 port)
{
	const __u32 hdrs = ETH_HLEN + sizeof(struct iphdr);
	void *data, *data_end;
	struct tnd_dsr_opt4 *opt;
	struct iphdr *ip;

	if (bpf_xdp_adjust_head(ctx, -(int)DSR_OPT4_LEN) < 0)
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + hdrs + DSR_OPT4_LEN > data_end)
		return -1;
	DSR_MOVE_HEADERS(data, DSR_OPT4_LEN, hdrs);
	ip = data + ETH_HLEN;
	opt = data + hdrs;
	opt->type = TND_DSR_OPT4_TYPE;
	opt->len = DSR_OPT4_LEN;
	opt->port = port;
	*(__u32 *)opt->addr = addr;
	ip->ihl = (sizeof(*ip) + DSR_OPT4_LEN) / 4;
	ip->tot_len = bpf_htons(bpf_ntohs(ip->tot_len) + DSR_OPT4_LEN);
	ip->check = 0;
	ip->check = ~csum_fold((__u32)bpf_csum_diff(0, 0, (void *)ip, sizeof(*ip) + DSR_OPT4_LEN, 0));
	return 0;
}

static __always_inline int dsr_insert6(struct xdp_md *ctx, const __u8 *addr, __u16 port)
{
	const __u32 hdrs = ETH_HLEN + sizeof(struct ipv6hdr);
	void *data, *data_end;
	struct tnd_dsr_opt6 *opt;
	struct ipv6hdr *ip6;

	if (bpf_xdp_adjust_head(ctx, -(int)DSR_OPT6_LEN) < 0)
		return -1;
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	if (data + hdrs + DSR_OPT6_LEN > data_end)
		return -1;
	DSR_MOVE_HEADERS(data, DSR_OPT6_LEN, hdrs);
	ip6 = data + ETH_HLEN;
	opt = data + hdrs;
	opt->nexthdr = ip6->nexthdr;
	opt->hdrlen = DSR_OPT6_LEN / 8 - 1;
	opt->type = TND_DSR_OPT6_TYPE;
	opt->len = DSR_OPT6_LEN - 6; /* what follows type and len, before the PadN */
	opt->port = port;
	__builtin_memcpy(opt->addr, addr, TND_ADDR_LEN);
	opt->padn_type = 1;
	opt->padn_len = 0;
	ip6->nexthdr = IPPROTO_DSTOPTS;
	ip6->payload_len = bpf_htons(bpf_ntohs(ip6->payload_len) + DSR_OPT6_LEN);
	return 0;
}

#endif /* TND_DSR_XDP_H */
