/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: why a packet was dropped, and the notification that says so.
 *   enum tnd_drop_reason      stable codes from 130 (Cilium's convention); the
 *                             TypeScript names come from this enum's BTF
 *   send_drop(p, reason, a)   count the drop, emit a TND_EVENT_DROP event,
 *                             return CTX_DROP. Every drop goes through here;
 *                             an object wraps it in one __noinline function
 *                             so its many drop sites share one copy.
 * Library functions return a negative reason (-DROP_...) for the caller to
 * pass to send_drop(), so the drop is reported where the context is known.
 */
#ifndef TND_DROP_H
#define TND_DROP_H

#include "compiler.h"
#include "ctx.h"
#include "common.h"
#include "events.h"
#include "metrics.h"

enum tnd_drop_reason {
	DROP_INVALID_ETH = 130,      /* shorter than an Ethernet header */
	DROP_TRUNCATED_IPV4 = 131,   /* < 20 bytes, or IHL/tot_len inconsistent */
	DROP_TRUNCATED_IPV6 = 132,   /* < 40 bytes, payload_len or an extension header past the end */
	DROP_TRUNCATED_L4 = 133,     /* TCP/UDP/ICMP header past the end or data offset bad */
	DROP_UNSUPPORTED_L3 = 134,   /* EtherType not handled, or IP version mismatch */
	DROP_UNSUPPORTED_L4 = 135,   /* not TCP, UDP, SCTP, ICMP, ICMPv6 */
	DROP_INVALID_SOURCE = 136,   /* source address is not the endpoint's (anti-spoofing) */
	DROP_UNKNOWN_DEST = 137,     /* retired: such packets go to the stack */
	DROP_TTL_EXCEEDED = 138,     /* TTL or hop limit would reach 0 */
	DROP_FRAG_UNSUPPORTED = 139, /* IPv4 fragment or IPv6 fragment header */
	DROP_INVALID_ARP = 140,      /* ARP not Ethernet/IPv4, or truncated */
	DROP_ARP_UNSUPPORTED = 141,  /* ARP other than a request for another address or a reply for the own one */
	DROP_INVALID_NDISC = 142,    /* neighbour solicitation too short */
	DROP_EXTHDR_LIMIT = 143,     /* more IPv6 extension headers than we walk */
	DROP_WRITE_ERROR = 144,      /* resizing or rewriting the packet failed */
	DROP_FAMILY_DISABLED = 145,  /* IPv4 or IPv6 not enabled for this endpoint */
	DROP_POLICY_DENIED = 146,    /* the endpoint's policy denies the connection */
	DROP_NO_POLICY = 147,        /* the endpoint has no policy map (yet) */
	DROP_PROXY_UNAVAILABLE = 148, /* redirect: no proxy port configured, or no listener on it */
	DROP_PROXY_NO_SOCKET = 149,  /* redirect: a TCP packet other than a SYN opening the flow (no conntrack entry) */
	DROP_PROXY_UNSUPPORTED = 150, /* redirect where it cannot be done: IPv6, not TCP, or entering from the node (tc egress) */
	DROP_PROXY_WITHDRAWN = 151,  /* a proxied flow whose policy now allows it directly: it cannot leave the proxy */
	DROP_NAT_FAILED = 152,       /* a load-balancing translation could not be written into the packet */
	DROP_NO_SERVICE_BACKEND = 153, /* a service with no usable backend: refused (TCP reset / ICMP unreachable sent back) */
	DROP_NAT_NO_PORT = 154,      /* SNAT: no free source port for a new flow */
	DROP_DSR_INVALID = 155,      /* a DSR option that is malformed or not for this family */
};

static __always_inline int send_drop(const struct pkt *p, __u32 reason,
				     struct event_args *a)
{
	a->type = TND_EVENT_DROP;
	a->reason = reason;
	a->target_ifindex = 0;
	metrics_add(reason, p->len);
	event_emit(p, a);
	return CTX_DROP;
}

#endif /* TND_DROP_H */
