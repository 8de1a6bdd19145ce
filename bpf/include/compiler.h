/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: compiler attributes and the libbpf helper declarations every object
 * needs. Include this first.
 *   __always_inline, likely(x), unlikely(x), SEC(name), bpf_htons() & co.
 */
#ifndef TND_COMPILER_H
#define TND_COMPILER_H

#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#ifndef likely
#define likely(x) __builtin_expect(!!(x), 1)
#endif
#ifndef unlikely
#define unlikely(x) __builtin_expect(!!(x), 0)
#endif

#define NSEC_PER_SEC 1000000000ULL

#endif /* TND_COMPILER_H */
