/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: security identities of packets' peers (numbers: enum tnd_identity).
 *   identity_class(id)          the class value a policy lookup tries after
 *                               the exact identity, or TND_IDENTITY_ANY when
 *                               id belongs to no class
 *   identity_of(family, addr)   a local endpoint's identity (tnd_endpoints),
 *                               else the ipcache's: up to two map lookups, so
 *                               for new connections only
 */
#ifndef TND_IDENTITY_H
#define TND_IDENTITY_H

#include "compiler.h"
#include "common.h"
#include "ipcache.h"
#include "endpoints.h"

/* An address as a sized type, as a global function's argument must be. */
struct addr16 {
	__u8 b[TND_ADDR_LEN];
};

static __always_inline __u32 identity_class(__u32 id)
{
	if (id >= TND_IDENTITY_ENDPOINT_MIN && id <= TND_IDENTITY_ENDPOINT_MAX)
		return TND_IDENTITY_CLASS_ENDPOINTS;
	if (id == TND_IDENTITY_WORLD ||
	    (id >= TND_IDENTITY_CIDR_MIN && id <= TND_IDENTITY_CIDR_MAX))
		return TND_IDENTITY_CLASS_WORLD;
	return TND_IDENTITY_ANY;
}

/*
 * tnd_endpoints first: it holds the identity the agent gave the endpoint
 * even before (or without) an ipcache entry for its address. A global
 * function, so the verifier checks it once for all its callers.
 */
__noinline __u32 identity_of(__u8 family, const struct addr16 *addr)
{
	struct tnd_endpoint_info *info;

	if (!addr)
		return TND_IDENTITY_WORLD;
	info = endpoint_lookup_addr(family, addr->b);
	if (info)
		return info->identity;
	return ipcache_lookup(family, addr->b);
}

#endif /* TND_IDENTITY_H */
