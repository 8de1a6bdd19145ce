// SPDX-License-Identifier: Apache-2.0
/*
 * Socket-level load balancing: cgroup sock_addr programs, attached through
 * links to a cgroup v2 directory holding the node's pods (the cgroup2 root
 * by default), acting only for sockets whose netns is one of this node's
 * pods (tnd_lb_netns).
 *   sock4_connect, sock6_connect  connect() of TCP and UDP to a cluster-scope
 *                                 frontend: the socket's peer becomes a
 *                                 backend; no backend: ECONNREFUSED
 *   sock4_sendmsg, sock6_sendmsg  sendto() of UDP: the same per datagram
 *   sock4_recvmsg, sock6_recvmsg  recvfrom() of UDP: a reply from a backend
 *                                 shows the frontend as its source
 *   sock4_getpeer, sock6_getpeer  getpeername(): a translated socket's peer
 *                                 is the frontend it asked for
 * An AF_INET6 socket addressing a v4-mapped address (::ffff:10.96.0.10)
 * balances over the IPv4 service and gets the v4-mapped backend.
 * Hairpin (a pod reaching a service whose backend is the pod itself) needs
 * nothing: the socket connects straight to the pod's own address, which its
 * netns delivers locally; no packet carries the frontend.
 * Load-time configuration: struct tnd_sock_config (M of the Maglev tables).
 */
#include "compiler.h"
#include "config.h"
#include "common.h"
#include "lb.h"
#include "lb_sock.h"

DECLARE_CONFIG(struct tnd_sock_config);
LB_TYPES_IN_BTF();

/* Not tnd_-named: a BTF anchor for the enum TypeScript reads the stats by. */
struct btf_sock_types {
	enum tnd_lb_sock_stat sock_stat;
};
const volatile struct btf_sock_types *const volatile btf_sock_types_anchor = 0;

static __always_inline int proto_balanced(__u32 proto)
{
	return proto == IPPROTO_TCP || proto == IPPROTO_UDP;
}

/* ::ffff:a.b.c.d, as the four words of user_ip6. */
static __always_inline int ipv6_is_v4mapped(const __u32 *w)
{
	return w[0] == 0 && w[1] == 0 && w[2] == bpf_htonl(0xffff);
}

static __always_inline int sock4_xlate(struct bpf_sock_addr *ctx, int datagram)
{
	struct tnd_lb_service_key key = {};
	struct tnd_lb_backend b;
	int ret;

	if (!proto_balanced(ctx->protocol))
		return SYS_PROCEED;
	*(__u32 *)key.addr = ctx->user_ip4;
	key.port = (__u16)ctx->user_port;
	key.proto = ctx->protocol;
	key.family = TND_AF_INET;
	key.scope = TND_LB_SCOPE_CLUSTER;
	ret = sock_lb_xlate(ctx, &key, datagram, CONFIG.maglev_size, &b);
	if (ret == SOCK_LB_REFUSE)
		return sock_lb_refuse();
	if (ret == SOCK_LB_DONE) {
		ctx->user_ip4 = *(__u32 *)b.addr;
		ctx->user_port = b.port;
	}
	return SYS_PROCEED;
}

static __always_inline int sock6_xlate(struct bpf_sock_addr *ctx, int datagram)
{
	struct tnd_lb_service_key key = {};
	struct tnd_lb_backend b;
	__u32 w[4];
	int mapped, ret;

	if (!proto_balanced(ctx->protocol))
		return SYS_PROCEED;
	w[0] = ctx->user_ip6[0];
	w[1] = ctx->user_ip6[1];
	w[2] = ctx->user_ip6[2];
	w[3] = ctx->user_ip6[3];
	mapped = ipv6_is_v4mapped(w);
	if (mapped) {
		*(__u32 *)key.addr = w[3];
		key.family = TND_AF_INET;
	} else {
		__builtin_memcpy(key.addr, w, TND_ADDR_LEN);
		key.family = TND_AF_INET6;
	}
	key.port = (__u16)ctx->user_port;
	key.proto = ctx->protocol;
	key.scope = TND_LB_SCOPE_CLUSTER;
	ret = sock_lb_xlate(ctx, &key, datagram, CONFIG.maglev_size, &b);
	if (ret == SOCK_LB_REFUSE)
		return sock_lb_refuse();
	if (ret != SOCK_LB_DONE)
		return SYS_PROCEED;
	if (mapped) {
		/* user_ip6[0..2] already read ::ffff: */
		ctx->user_ip6[3] = *(__u32 *)b.addr;
	} else {
		const __u32 *a = (const __u32 *)b.addr;

		ctx->user_ip6[0] = a[0];
		ctx->user_ip6[1] = a[1];
		ctx->user_ip6[2] = a[2];
		ctx->user_ip6[3] = a[3];
	}
	ctx->user_port = b.port;
	return SYS_PROCEED;
}

/* recvmsg and getpeername: a backend's address back to the frontend. */
static __always_inline void sock4_revnat(struct bpf_sock_addr *ctx)
{
	struct tnd_lb_frontend *fe;
	__u32 addr[4] = {};

	addr[0] = ctx->user_ip4;
	fe = sock_lb_revnat(ctx, TND_AF_INET, (const __u8 *)addr,
			    (__u16)ctx->user_port);
	if (!fe)
		return;
	ctx->user_ip4 = *(__u32 *)fe->addr;
	ctx->user_port = fe->port;
}

static __always_inline void sock6_revnat(struct bpf_sock_addr *ctx)
{
	struct tnd_lb_frontend *fe;
	__u32 w[4];
	int mapped;

	w[0] = ctx->user_ip6[0];
	w[1] = ctx->user_ip6[1];
	w[2] = ctx->user_ip6[2];
	w[3] = ctx->user_ip6[3];
	mapped = ipv6_is_v4mapped(w);
	if (mapped) {
		/* The revnat key of a v4 backend: its 4 bytes, zeros after. */
		w[0] = w[3];
		w[1] = 0;
		w[2] = 0;
		w[3] = 0;
	}
	fe = sock_lb_revnat(ctx, mapped ? TND_AF_INET : TND_AF_INET6,
			    (const __u8 *)w, (__u16)ctx->user_port);
	if (!fe)
		return;
	if (mapped) {
		ctx->user_ip6[3] = *(__u32 *)fe->addr;
	} else {
		const __u32 *a = (const __u32 *)fe->addr;

		ctx->user_ip6[0] = a[0];
		ctx->user_ip6[1] = a[1];
		ctx->user_ip6[2] = a[2];
		ctx->user_ip6[3] = a[3];
	}
	ctx->user_port = fe->port;
}

SEC("cgroup/connect4")
int sock4_connect(struct bpf_sock_addr *ctx)
{
	return sock4_xlate(ctx, 0);
}

SEC("cgroup/connect6")
int sock6_connect(struct bpf_sock_addr *ctx)
{
	return sock6_xlate(ctx, 0);
}

SEC("cgroup/sendmsg4")
int sock4_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock4_xlate(ctx, 1);
}

SEC("cgroup/sendmsg6")
int sock6_sendmsg(struct bpf_sock_addr *ctx)
{
	return sock6_xlate(ctx, 1);
}

/* recvmsg and getpeername may not refuse: they must return SYS_PROCEED. */
SEC("cgroup/recvmsg4")
int sock4_recvmsg(struct bpf_sock_addr *ctx)
{
	sock4_revnat(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/recvmsg6")
int sock6_recvmsg(struct bpf_sock_addr *ctx)
{
	sock6_revnat(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername4")
int sock4_getpeer(struct bpf_sock_addr *ctx)
{
	sock4_revnat(ctx);
	return SYS_PROCEED;
}

SEC("cgroup/getpeername6")
int sock6_getpeer(struct bpf_sock_addr *ctx)
{
	sock6_revnat(ctx);
	return SYS_PROCEED;
}

char LICENSE[] SEC("license") = "GPL";
