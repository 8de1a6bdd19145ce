/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: address tests against packet bytes and load-time config, as whole
 * 32-bit words (reads of frozen .rodata are constants to the verifier).
 *   ipv4_eq_cfg(a, cfg)        a (raw __be32) equals the 4 config bytes
 *   ipv6_addr_is_zero(a)       :: (unspecified)
 *   ipv6_addr_eq_cfg(a, cfg)   16 bytes at a equal the 16 config bytes
 *   ipv6_addr_is_linklocal(a)  in fe80::/10
 */
#ifndef TND_ADDR_H
#define TND_ADDR_H

#include "compiler.h"

static __always_inline int ipv4_eq_cfg(__u32 a, const volatile __u8 *cfg)
{
	return a == *(const volatile __u32 *)cfg;
}

static __always_inline int ipv6_addr_is_zero(const __u32 *a)
{
	return (a[0] | a[1] | a[2] | a[3]) == 0;
}

static __always_inline int ipv6_addr_eq_cfg(const __u32 *a,
					    const volatile __u8 *cfg)
{
	const volatile __u32 *w = (const volatile __u32 *)cfg;

	return ((a[0] ^ w[0]) | (a[1] ^ w[1]) | (a[2] ^ w[2]) |
		(a[3] ^ w[3])) == 0;
}

static __always_inline int ipv6_addr_is_linklocal(const __u8 *a)
{
	return a[0] == 0xfe && (a[1] & 0xc0) == 0x80;
}

#endif /* TND_ADDR_H */
