/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: Internet checksum arithmetic, inline (RFC 1071, RFC 1624).
 *   csum_fold(sum)                    fold a 64-bit accumulator to 16 bits
 *   csum_replace2(&check, old, new)   update a stored checksum after one
 *                                     16-bit word changed from old to new
 *   ipv4_ttl_dec(ip)                  TTL minus one and the header checksum
 *                                     fixed (the kernel's ip_decrease_ttl)
 * Words are used as they sit in memory (network order loaded natively); the
 * one's-complement sum does not care about byte order as long as the result
 * is stored back the same way. Used for packets built in BPF (ARP/ND/echo
 * replies), where a helper call would also invalidate packet pointers.
 */
#ifndef TND_CSUM_H
#define TND_CSUM_H

#include "compiler.h"
#include <linux/ip.h>

static __always_inline __u16 csum_fold(__u64 sum)
{
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* RFC 1624, eqn. 3: HC' = ~(~HC + ~m + m') */
static __always_inline void csum_replace2(__u16 *check, __u16 old, __u16 new)
{
	__u64 sum = (__u16)~*check;

	sum += (__u16)~old;
	sum += new;
	*check = (__u16)~csum_fold(sum);
}

/*
 * The TTL is the high byte of its checksum word: the word drops by 0x0100, so
 * the one's-complement checksum grows by it, with the end-around carry.
 */
static __always_inline void ipv4_ttl_dec(struct iphdr *ip)
{
	__u32 check = ip->check;

	check += bpf_htons(0x0100);
	ip->check = (__u16)(check + (check >= 0xffff));
	ip->ttl--;
}

#endif /* TND_CSUM_H */
