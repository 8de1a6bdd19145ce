/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: socket-level load balancing (cgroup sock_addr hooks): a pod's
 * connect() or sendto() to a cluster-scope frontend is sent to a backend
 * before any packet exists, so no packet is ever NATed and replies need no
 * reverse NAT on the wire.
 *   tnd_lb_netns        HASH __u64 netns cookie -> tnd_lb_netns: the pods of
 *                       this node. Every node on the machine attaches to the
 *                       same cgroup tree; each acts only for its own pods.
 *   tnd_lb_sock_revnat  LRU tnd_lb_sock_revnat_key -> tnd_lb_frontend: which
 *                       frontend a translated socket asked for, by its cookie
 *                       and the backend it got (recvmsg, getpeername)
 *   tnd_lb_sock_stats   PERCPU_ARRAY enum tnd_lb_sock_stat -> __u64
 *   sock_lb_xlate(ctx, key, datagram, m, out)
 *                       SOCK_LB_PASS (not our pod, or not a frontend: leave
 *                       the address), SOCK_LB_DONE (*out is the backend to
 *                       write into ctx), SOCK_LB_REFUSE (no backend: the
 *                       caller refuses with sock_lb_refuse())
 *   sock_lb_revnat(ctx, family, addr, port)
 *                       the frontend a translated socket's peer stands for,
 *                       or NULL
 *   sock_lb_refuse()    the verdict that makes the syscall fail with
 *                       ECONNREFUSED (bpf_set_retval, Linux >= 5.18)
 * The backend of a socket is chosen by a hash of its cookie and the service:
 * a socket keeps its backend for every datagram it sends to one frontend
 * while the service's table is unchanged, and a connected socket keeps it
 * for good (connect rewrote its peer once).
 */
#ifndef TND_LB_SOCK_H
#define TND_LB_SOCK_H

#include "compiler.h"
#include "common.h"
#include "lb.h"
#include <linux/in.h>
#include <asm-generic/errno.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, TND_LB_NETNS_MAX);
	__type(key, __u64);
	__type(value, struct tnd_lb_netns);
} tnd_lb_netns SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TND_LB_SOCK_REVNAT_MAX);
	__type(key, struct tnd_lb_sock_revnat_key);
	__type(value, struct tnd_lb_frontend);
} tnd_lb_sock_revnat SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TND_LB_SOCK_STATS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tnd_lb_sock_stats SEC(".maps");

/* Return values of sock_addr programs. */
#define SYS_REJECT 0
#define SYS_PROCEED 1

#define SOCK_LB_PASS 0
#define SOCK_LB_DONE 1
#define SOCK_LB_REFUSE 2

static __always_inline void sock_lb_stat(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&tnd_lb_sock_stats, &slot);

	if (n)
		*n += 1;
}

/*
 * The program's return value replaces the syscall's EPERM with our errno;
 * connect() and sendmsg() then fail at once with "Connection refused".
 */
static __always_inline int sock_lb_refuse(void)
{
	bpf_set_retval(-ECONNREFUSED);
	return SYS_REJECT;
}

/* The client's affinity key: the pod's address, else its netns cookie. */
static __always_inline void sock_lb_client(struct tnd_lb_affinity_key *c,
					   const struct tnd_lb_netns *pod,
					   __u8 family, __u64 netns)
{
	const __u32 *w = (const __u32 *)c->client;

	if (family == TND_AF_INET)
		__builtin_memcpy(c->client, pod->addr4, 4);
	else
		__builtin_memcpy(c->client, pod->addr6, TND_ADDR_LEN);
	if ((w[0] | w[1] | w[2] | w[3]) == 0)
		__builtin_memcpy(c->client, &netns, sizeof(netns));
	c->family = family;
}

/*
 * Remembers the frontend a socket asked for, keyed by the backend it got.
 * Returns whether the entry is new: the first datagram a socket sends to a
 * backend counts as a connection, the rest do not. connect() always writes:
 * a socket connected again may stand for another frontend now.
 */
static __always_inline int
sock_lb_remember(__u64 cookie, const struct tnd_lb_backend *b,
		 const struct tnd_lb_service_key *key, __u32 service_id,
		 int datagram)
{
	struct tnd_lb_sock_revnat_key rk = {};
	struct tnd_lb_frontend fe = {};

	rk.cookie = cookie;
	__builtin_memcpy(rk.addr, b->addr, TND_ADDR_LEN);
	rk.port = b->port;
	rk.family = b->family;
	/* The lookup also refreshes the entry's place in the LRU. */
	if (datagram && bpf_map_lookup_elem(&tnd_lb_sock_revnat, &rk))
		return 0;
	__builtin_memcpy(fe.addr, key->addr, TND_ADDR_LEN);
	fe.port = key->port;
	fe.family = key->family;
	fe.service_id = service_id;
	bpf_map_update_elem(&tnd_lb_sock_revnat, &rk, &fe, BPF_ANY);
	return 1;
}

static __always_inline int
sock_lb_xlate(void *ctx, const struct tnd_lb_service_key *key, int datagram,
	      __u32 m, struct tnd_lb_backend *out)
{
	struct tnd_lb_affinity_key client = {};
	struct tnd_lb_service *svc;
	struct tnd_lb_backend *b;
	struct tnd_lb_netns *pod;
	__u64 netns, cookie;
	__u32 id = 0;
	int fresh;

	netns = bpf_get_netns_cookie(ctx);
	pod = bpf_map_lookup_elem(&tnd_lb_netns, &netns);
	if (!pod)
		return SOCK_LB_PASS;
	svc = lb_service_lookup(key);
	if (!svc)
		return SOCK_LB_PASS;
	cookie = bpf_get_socket_cookie(ctx);
	client.service_id = svc->service_id;
	sock_lb_client(&client, pod, key->family, netns);
	b = lb_select(svc, &client,
		      lb_hash64(cookie ^ ((__u64)svc->service_id << 32)), m, &id);
	if (!b) {
		sock_lb_stat(svc->active_backends ? TND_LB_SOCK_NO_SLOT :
						    TND_LB_SOCK_NO_BACKENDS);
		return SOCK_LB_REFUSE;
	}
	if (b->family != key->family) {
		sock_lb_stat(TND_LB_SOCK_FAMILY);
		return SOCK_LB_REFUSE;
	}
	*out = *b;
	fresh = sock_lb_remember(cookie, b, key, svc->service_id, datagram);
	/* connect() is one connection; datagrams count once per socket and backend. */
	if (fresh)
		lb_count_connection(id);
	sock_lb_stat(TND_LB_SOCK_TRANSLATED);
	return SOCK_LB_DONE;
}

static __always_inline struct tnd_lb_frontend *
sock_lb_revnat(void *ctx, __u8 family, const __u8 *addr, __u16 port)
{
	struct tnd_lb_sock_revnat_key rk = {};
	struct tnd_lb_frontend *fe;

	rk.cookie = bpf_get_socket_cookie(ctx);
	__builtin_memcpy(rk.addr, addr, TND_ADDR_LEN);
	rk.port = port;
	rk.family = family;
	fe = bpf_map_lookup_elem(&tnd_lb_sock_revnat, &rk);
	if (fe)
		sock_lb_stat(TND_LB_SOCK_REVNAT);
	return fe;
}

#endif /* TND_LB_SOCK_H */
