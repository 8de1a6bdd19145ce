/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: the identity of any address, by longest prefix.
 *   tnd_ipcache                  LPM_TRIE tnd_ipcache_key -> tnd_ipcache_value,
 *                                node-wide, written by the agent (endpoints,
 *                                nodes, the CIDRs policies name)
 *   ipcache_lookup(family, addr) the identity of the longest prefix holding
 *                                addr (16 bytes, IPv4 in the first 4), or
 *                                TND_IDENTITY_WORLD when none does
 * An LPM lookup walks the trie in the kernel: keep it off the fast path.
 */
#ifndef TND_IPCACHE_H
#define TND_IPCACHE_H

#include "compiler.h"
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC); /* the kernel insists for LPM */
	__uint(max_entries, TND_IPCACHE_MAX);
	__type(key, struct tnd_ipcache_key);
	__type(value, struct tnd_ipcache_value);
} tnd_ipcache SEC(".maps");

static __always_inline __u32 ipcache_lookup(__u8 family, const __u8 *addr)
{
	struct tnd_ipcache_key key = {};
	struct tnd_ipcache_value *v;

	/* family and pad, then every address bit */
	key.prefixlen = 32 + (family == TND_AF_INET ? 32 : 128);
	key.family = family;
	__builtin_memcpy(key.addr, addr, TND_ADDR_LEN);
	v = bpf_map_lookup_elem(&tnd_ipcache, &key);
	return v ? v->identity : TND_IDENTITY_WORLD;
}

#endif /* TND_IPCACHE_H */
