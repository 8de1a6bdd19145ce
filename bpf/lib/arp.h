/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: ARP responder for a pod with a /32 address and an onlink default
 * route: every address the pod asks for (the router first of all) is behind
 * the router, so the answer is always the router's MAC.
 *   arp_respond(ctx, p, own_ip4, router_mac)
 *       0: the request was rewritten in place into the reply, ready to be
 *          redirected back out of the pod's veth;
 *       1: a reply from the pod about its own address (it answers the
 *          node's request): the node's stack's business, pass it on;
 *       -DROP_INVALID_SOURCE: a reply claiming another address (spoofing);
 *       -DROP_INVALID_ARP / -DROP_ARP_UNSUPPORTED otherwise (gratuitous
 *          ARP requests, questions about the pod's own address, other ops).
 *   p gets the sender (saddr) and target (daddr) IPv4 addresses for events.
 */
#ifndef TND_ARP_H
#define TND_ARP_H

#include "compiler.h"
#include "ctx.h"
#include "common.h"
#include "drop.h"
#include "pkt.h"
#include "mac.h"
#include <linux/if_ether.h>

#define ARP_HTYPE_ETHER 1
#define ARP_OP_REQUEST 1
#define ARP_OP_REPLY 2

/* RFC 826 for Ethernet hardware and IPv4 protocol addresses. */
struct arp_eth_ipv4 {
	__be16 htype;
	__be16 ptype;
	__u8 hlen;
	__u8 plen;
	__be16 op;
	__u8 sha[ETH_ALEN];
	__u8 spa[4];
	__u8 tha[ETH_ALEN];
	__u8 tpa[4];
} __attribute__((packed));

static __always_inline int arp_respond(struct __ctx_buff *ctx, struct pkt *p,
				       __u32 own_ip4,
				       const volatile __u8 *router_mac)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct ethhdr *eth = data;
	struct arp_eth_ipv4 *arp = data + ETH_HLEN;
	__u32 spa, tpa;

	if ((void *)(arp + 1) > data_end)
		return -DROP_INVALID_ARP;
	if (arp->htype != bpf_htons(ARP_HTYPE_ETHER) ||
	    arp->ptype != bpf_htons(ETH_P_IP) || arp->hlen != ETH_ALEN ||
	    arp->plen != 4)
		return -DROP_INVALID_ARP;

	spa = *(__u32 *)arp->spa;
	tpa = *(__u32 *)arp->tpa;
	p->tuple.family = TND_AF_INET;
	*(__u32 *)p->tuple.saddr = spa;
	*(__u32 *)p->tuple.daddr = tpa;
	if (arp->op == bpf_htons(ARP_OP_REPLY))
		return spa == own_ip4 ? 1 : -DROP_INVALID_SOURCE;
	if (arp->op != bpf_htons(ARP_OP_REQUEST) || tpa == own_ip4)
		return -DROP_ARP_UNSUPPORTED;

	/* The requester becomes the target; the router owns every address. */
	mac_copy(eth->h_dest, eth->h_source);
	mac_copy_cfg(eth->h_source, router_mac);
	arp->op = bpf_htons(ARP_OP_REPLY);
	mac_copy(arp->tha, arp->sha);
	*(__u32 *)arp->tpa = spa;
	mac_copy_cfg(arp->sha, router_mac);
	*(__u32 *)arp->spa = tpa;
	return 0;
}

#endif /* TND_ARP_H */
