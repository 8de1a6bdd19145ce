/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: 6-byte MAC moves as one 4-byte and one 2-byte access instead of six
 * byte copies (BPF targets allow unaligned packet and map access on the
 * machines we run on).
 *   mac_copy(dst, src)          packet or map memory
 *   mac_copy_cfg(dst, src)      src in the load-time config (.rodata)
 */
#ifndef TND_MAC_H
#define TND_MAC_H

#include "compiler.h"

static __always_inline void mac_copy(void *dst, const void *src)
{
	__u32 lo = *(const __u32 *)src;
	__u16 hi = *(const __u16 *)((const __u8 *)src + 4);

	*(__u32 *)dst = lo;
	*(__u16 *)((__u8 *)dst + 4) = hi;
}

static __always_inline void mac_copy_cfg(void *dst, const volatile __u8 *src)
{
	*(__u32 *)dst = *(const volatile __u32 *)src;
	*(__u16 *)((__u8 *)dst + 4) = *(const volatile __u16 *)(src + 4);
}

#endif /* TND_MAC_H */
