/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: the parameters of a FIB lookup (bpf_fib_lookup) for a parsed packet,
 * for tc and XDP alike.
 *   fib_params(fib, p, ifindex, src, dst, tot_len)
 *       fib zeroed, then family, L4 protocol, the receiving device, source
 *       and destination (4 or 16 bytes by p's family) and the IP length the
 *       FIB checks against the route's MTU (0: no check)
 */
#ifndef TND_FIB_H
#define TND_FIB_H

#include "compiler.h"
#include "common.h"
#include "pkt.h"

/* The kernel's AF_* numbers, which bpf_fib_lookup() takes as family. */
#define FIB_AF_INET 2
#define FIB_AF_INET6 10

static __always_inline void fib_params(struct bpf_fib_lookup *fib, const struct pkt *p,
				       __u32 ifindex, const __u8 *src, const __u8 *dst,
				       __u16 tot_len)
{
	__builtin_memset(fib, 0, sizeof(*fib));
	fib->ifindex = ifindex;
	fib->l4_protocol = p->tuple.proto;
	fib->tot_len = tot_len;
	if (p->tuple.family == TND_AF_INET) {
		fib->family = FIB_AF_INET;
		fib->ipv4_src = *(const __u32 *)src;
		fib->ipv4_dst = *(const __u32 *)dst;
	} else {
		fib->family = FIB_AF_INET6;
		__builtin_memcpy(fib->ipv6_src, src, TND_ADDR_LEN);
		__builtin_memcpy(fib->ipv6_dst, dst, TND_ADDR_LEN);
	}
}

#endif /* TND_FIB_H */
