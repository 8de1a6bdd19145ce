/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: L3/L4 load balancing: services, backends, Maglev tables, affinity.
 * The maps are node-wide (pinned, written by src/datapath/lb-maps.ts) and
 * shared by every object that balances: sock.o now, lxc.o and xdp.o later.
 *   tnd_lb_services      HASH tnd_lb_service_key -> tnd_lb_service
 *   tnd_lb_backends      HASH __u32 backend id -> tnd_lb_backend
 *   tnd_lb_maglev        ARRAY_OF_MAPS __u32 table id -> ARRAY of one
 *                        value, __u32 backend ids[M]; the inner value size
 *                        (4 * M) is set when the map is created. Slot 0 is
 *                        never a table: an empty one there records M.
 *   tnd_lb_affinity      LRU tnd_lb_affinity_key -> tnd_lb_affinity
 *   tnd_lb_revnat        HASH tnd_lb_revnat_key -> tnd_lb_frontend
 *                        (per-packet path: replies by service id)
 *   tnd_lb_backend_conns PERCPU_HASH __u32 backend id -> __u64 connections;
 *                        the agent creates the entry with the backend
 *   tnd_lb_nat           LRU tnd_ct_key (dir: enum tnd_lb_nat_dir) ->
 *                        tnd_lb_nat: per-packet translations (common.h)
 *   tnd_lb_node_addrs    HASH tnd_lb_node_addr_key -> __u32 (unused, 1):
 *                        the node's addresses, for NodePort frontends
 *   lb_service_lookup(key)           the frontend's service, or NULL
 *   lb_select(svc, client, hash, m, &id)
 *                        a backend for a new connection (affinity first when
 *                        the service has it, else the Maglev slot hash % m;
 *                        a slot that is empty, names a missing backend or a
 *                        terminating one passes to the next slot, up to
 *                        LB_SELECT_TRIES slots), or NULL: refuse the connection
 *   lb_count_connection(id)          one more connection to backend id
 *   lb_hash64(x)                     a well-mixed 32-bit hash of x
 * Per-CPU counters, because many CPUs connecting to one popular backend
 * would otherwise bounce one cache line between them with atomic adds; the
 * agent reads them rarely and sums the CPUs.
 */
#ifndef TND_LB_H
#define TND_LB_H

#include "compiler.h"
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TND_LB_SERVICES_MAX);
	__type(key, struct tnd_lb_service_key);
	__type(value, struct tnd_lb_service);
} tnd_lb_services SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TND_LB_BACKENDS_MAX);
	__type(key, __u32);
	__type(value, struct tnd_lb_backend);
} tnd_lb_backends SEC(".maps");

/*
 * A Maglev table: one value of M backend ids. No BTF value type: the agent
 * resizes the value to its M before the map is created
 * (bpf_map__set_value_size on the inner map), and a BTF type would no
 * longer match.
 */
struct lb_maglev_inner {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32) * TND_LB_MAGLEV_SIZE_DEFAULT);
};

/*
 * Tables by id, in an array of maps rather than a hash map: the verifier
 * inlines both array lookups into a few instructions, where a hash lookup
 * is a call and a hash of the key (about 30 ns of a new flow's packet at
 * XDP). The agent builds each table whole in a new inner map and swaps it
 * in, so a reader never sees half a table.
 */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, TND_LB_MAGLEV_MAX);
	__type(key, __u32);
	__array(values, struct lb_maglev_inner);
} tnd_lb_maglev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TND_LB_AFFINITY_MAX);
	__type(key, struct tnd_lb_affinity_key);
	__type(value, struct tnd_lb_affinity);
} tnd_lb_affinity SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TND_LB_SERVICES_MAX);
	__type(key, struct tnd_lb_revnat_key);
	__type(value, struct tnd_lb_frontend);
} tnd_lb_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TND_LB_BACKENDS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tnd_lb_backend_conns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TND_LB_NAT_MAX);
	__type(key, struct tnd_ct_key);
	__type(value, struct tnd_lb_nat);
} tnd_lb_nat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, TND_LB_NODE_ADDRS_MAX);
	__type(key, struct tnd_lb_node_addr_key);
	__type(value, __u32);
} tnd_lb_node_addrs SEC(".maps");

/*
 * Slots tried before a connection is refused: a table may still name a
 * backend that is terminating (the agent rewrites the table next) or gone.
 */
#define LB_SELECT_TRIES 8

/* Not tnd_-named: it is a BTF anchor for the enums TypeScript names. */
struct btf_lb_types {
	enum tnd_lb_scope scope;
	enum tnd_lb_service_flags service_flags;
	enum tnd_lb_backend_state backend_state;
};

/* Once per object that includes lb.h without wire.h (see wire.h). */
#define LB_TYPES_IN_BTF() \
	const volatile struct btf_lb_types *const volatile btf_lb_types_anchor = 0

/* murmur3's 64-bit finaliser: every input bit moves every output bit. */
static __always_inline __u32 lb_hash64(__u64 x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return (__u32)x;
}

static __always_inline struct tnd_lb_service *
lb_service_lookup(const struct tnd_lb_service_key *key)
{
	return bpf_map_lookup_elem(&tnd_lb_services, key);
}

/*
 * The backend of an id: tnd_lb_backends, unless the includer defined
 * lb_backend_lookup first (xdp.o: a per-CPU cache in front of it).
 */
#ifndef lb_backend_lookup
#define lb_backend_lookup(id) ((struct tnd_lb_backend *)bpf_map_lookup_elem(&tnd_lb_backends, &(id)))
#endif

/* A backend that may take a new connection, or NULL. */
static __always_inline struct tnd_lb_backend *lb_backend_usable(__u32 id)
{
	struct tnd_lb_backend *b;

	if (!id)
		return NULL;
	b = lb_backend_lookup(id);
	if (!b || b->state != TND_LB_BACKEND_ACTIVE)
		return NULL;
	return b;
}

/*
 * Hides v's value from the compiler, so a test the compiler would prove
 * redundant (slot < m after slot = hash % m) stays for the verifier, which
 * does not track the range of a modulo.
 */
#define lb_opaque(v) asm volatile("" : "+r"(v))

/*
 * The Maglev table's choice. m is the table's M, a load-time constant the
 * map's value size matches; the explicit bound tells the verifier that the
 * slot stays inside the value.
 */
static __always_inline struct tnd_lb_backend *
lb_maglev_pick(const struct tnd_lb_service *svc, __u32 hash, __u32 m, __u32 *id)
{
	struct tnd_lb_backend *b;
	__u32 key = svc->maglev_id, zero = 0;
	__u32 *table, slot;
	void *inner;
	int i;

	if (!m)
		return NULL;
	inner = bpf_map_lookup_elem(&tnd_lb_maglev, &key);
	if (!inner)
		return NULL;
	table = bpf_map_lookup_elem(inner, &zero);
	if (!table)
		return NULL;
	slot = hash % m;
#pragma unroll
	for (i = 0; i < LB_SELECT_TRIES; i++) {
		lb_opaque(slot);
		if (slot >= m)
			return NULL;
		*id = table[slot];
		b = lb_backend_usable(*id);
		if (b)
			return b;
		/* The next slot: Maglev interleaves backends, so it is usually another. */
		slot = slot + 1 == m ? 0 : slot + 1;
	}
	return NULL;
}

/*
 * Affinity: the client's backend for this service while it was used within
 * the timeout, is still usable and came from the service's current table (a
 * new table id means a new backend set: the old choice may have left it).
 */
static __always_inline struct tnd_lb_backend *
lb_affinity_get(const struct tnd_lb_service *svc,
		const struct tnd_lb_affinity_key *key, __u64 now, __u32 *id)
{
	struct tnd_lb_affinity *a;
	struct tnd_lb_backend *b;

	a = bpf_map_lookup_elem(&tnd_lb_affinity, key);
	if (!a || a->maglev_id != svc->maglev_id)
		return NULL;
	if (now - a->last_used_ns > (__u64)svc->affinity_timeout_s * NSEC_PER_SEC)
		return NULL;
	b = lb_backend_usable(a->backend_id);
	if (!b)
		return NULL;
	a->last_used_ns = now;
	*id = a->backend_id;
	return b;
}

/*
 * A backend for a new connection from `client` (family + address: the
 * affinity key's), hash deciding the Maglev slot. NULL: refuse.
 */
static __always_inline struct tnd_lb_backend *
lb_select(const struct tnd_lb_service *svc,
	  const struct tnd_lb_affinity_key *client, __u32 hash, __u32 m,
	  __u32 *id)
{
	struct tnd_lb_affinity a = {};
	struct tnd_lb_backend *b;
	__u64 now;

	if (!svc->active_backends)
		return NULL;
	if (!(svc->flags & TND_LB_F_AFFINITY))
		return lb_maglev_pick(svc, hash, m, id);
	now = bpf_ktime_get_ns();
	b = lb_affinity_get(svc, client, now, id);
	if (b)
		return b;
	b = lb_maglev_pick(svc, hash, m, id);
	if (!b)
		return NULL;
	a.backend_id = *id;
	a.maglev_id = svc->maglev_id;
	a.last_used_ns = now;
	bpf_map_update_elem(&tnd_lb_affinity, client, &a, BPF_ANY);
	return b;
}

static __always_inline void lb_count_connection(__u32 id)
{
	__u64 *n = bpf_map_lookup_elem(&tnd_lb_backend_conns, &id);

	if (n)
		*n += 1;
}

#endif /* TND_LB_H */
