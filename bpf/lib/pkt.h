/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: struct pkt, what a program knows about the packet in hand: its flow
 * tuple (already a struct tnd_ct_key, so conntrack and events use it without
 * copying), whole length, TCP flags, ICMP type and the TTL/hop limit as
 * received. Zero-initialise it; parse.h fills it; fields not reached stay 0.
 * Also the protocol constants the library shares.
 */
#ifndef TND_PKT_H
#define TND_PKT_H

#include <linux/types.h>
#include "common.h"

/* TCP header flag bits (byte 13 of the header). */
#define TCP_F_FIN 0x01
#define TCP_F_SYN 0x02
#define TCP_F_RST 0x04
#define TCP_F_ACK 0x10

#define ICMP_ECHO_REPLY 0
#define ICMP_ECHO_REQUEST 8
#define ICMP6_ECHO_REQUEST 128
#define ICMP6_ECHO_REPLY 129

#define IPV6_MAX_EXTHDR 4
#define IPV4_FRAG_MASK 0x3fff /* MF flag and fragment offset */

struct pkt {
	struct tnd_ct_key tuple; /* dir is set by conntrack */
	__u32 len;               /* whole packet, for counters and events */
	__u8 tcp_flags;
	__u8 icmp_type;
	__u8 ttl;                /* TTL or hop limit as received */
	__u8 pad;
	__u16 l4_off;            /* where the L4 header starts (from the Ethernet header) */
	__u16 pad2;
};

#endif /* TND_PKT_H */
