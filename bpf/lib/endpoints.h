/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: the node's local endpoints, by address.
 *   tnd_endpoints                 HASH tnd_endpoint_key -> tnd_endpoint_info,
 *                                 one entry per address of every endpoint
 *   endpoint_lookup(tuple)        the endpoint owning tuple->daddr, or NULL
 *   endpoint_lookup_addr(family, addr)   the endpoint owning addr, or NULL
 */
#ifndef TND_ENDPOINTS_H
#define TND_ENDPOINTS_H

#include "compiler.h"
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TND_ENDPOINTS_MAX);
	__type(key, struct tnd_endpoint_key);
	__type(value, struct tnd_endpoint_info);
} tnd_endpoints SEC(".maps");

static __always_inline struct tnd_endpoint_info *
endpoint_lookup_addr(__u8 family, const __u8 *addr)
{
	struct tnd_endpoint_key key = {};

	__builtin_memcpy(key.addr, addr, TND_ADDR_LEN);
	key.family = family;
	return bpf_map_lookup_elem(&tnd_endpoints, &key);
}

static __always_inline struct tnd_endpoint_info *
endpoint_lookup(const struct tnd_ct_key *tuple)
{
	return endpoint_lookup_addr(tuple->family, tuple->daddr);
}

#endif /* TND_ENDPOINTS_H */
