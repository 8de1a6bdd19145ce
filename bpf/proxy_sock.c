// SPDX-License-Identifier: Apache-2.0
/*
 * Socket redirection for the L7 proxy's connections: the bytes a socket of
 * a steered flow sends go straight into its peer's receive queue, skipping
 * TCP, IP, the veth and both endpoints' tc programs. The proxy still reads
 * and judges every request; what is skipped is the kernel's work of moving
 * the bytes between two sockets of the same node (four legs per request).
 *
 *   proxy_sockops    cgroup sock_ops (the cgroup2 root, a pinned link, like
 *                    sock.o's): when a TCP connection is established, its
 *                    socket joins tnd_proxy_socks if it is one end of a
 *                    proxy leg:
 *                      - a client pod's socket, or the proxy's accepted
 *                        socket, of a flow the datapath steered to the proxy
 *                        (its client tuple is in tnd_proxy_flows);
 *                      - the proxy's upstream socket (mark
 *                        TND_MARK_FROM_PROXY, in the node's netns), and the
 *                        backend pod's socket it connected to (noted in
 *                        tnd_proxy_upstreams when the upstream joined: the
 *                        active side is established first).
 *   proxy_sk_msg     sk_msg, attached to tnd_proxy_socks: a message goes to
 *                    the peer socket's receive queue (the reversed tuple) or,
 *                    when there is none, the usual way.
 *
 * Order: a connection's bytes must arrive in the order sent. Bytes redirected
 * after bytes that took the usual way could overtake them (the other way
 * round cannot: a socket reads its redirected bytes first), so once a socket
 * has sent anything the usual way, it never redirects again (tnd_proxy_sk).
 *
 * Policy: the steering was judged on the SYN, and the proxy judges every
 * request. After a policy change anywhere on the node (tnd_policy_gen), the
 * next message of a client's leg asks again, as the endpoint programs do
 * (lxc.c proxy_recheck): a flow that is no longer a redirect goes the usual
 * way for good, where the endpoint programs cut it. The proxy's upstream
 * leg is never judged (as in the endpoint programs).
 *
 * What redirected bytes skip is not seen by the endpoint programs: their
 * packet counters and trace events, and the conntrack entry's last-seen time
 * (the connection's SYN and FIN still pass there).
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "compiler.h"
#include "config.h"
#include "common.h"
#include "endpoints.h"
#include "identity.h"
#include "policy.h"
#include "proxy.h"

DECLARE_CONFIG(struct tnd_proxy_sock_config);

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, TND_PROXY_FLOWS_MAX * 2);
	__type(key, struct tnd_proxy_sock_key);
	__type(value, __u64);
} tnd_proxy_socks SEC(".maps");

/* A joined socket's state. */
struct proxy_sk_state {
	struct tnd_ct_key flow;  /* a client leg's flow: its client's tuple */
	__u32 policy_gen;        /* tnd_policy_gen when the flow was last judged */
	__u16 client_endpoint;   /* a client leg's: the client's endpoint */
	__u8 client_leg;         /* between a client pod and the proxy (else the upstream leg) */
	__u8 usual_way;          /* it sent something the usual way: never redirects again */
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct proxy_sk_state);
} tnd_proxy_sk SEC(".maps");

/*
 * The proxy's upstream sockets that joined, until the backend's socket
 * they connected to joins too (sock_ops cannot look into a sockhash).
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TND_PROXY_FLOWS_MAX);
	__type(key, struct tnd_proxy_sock_key);
	__type(value, __u8);
} tnd_proxy_upstreams SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TND_PSOCK_STATS_MAX);
	__type(key, __u32);
	__type(value, __u64);
} tnd_proxy_sock_stats SEC(".maps");

/* Not tnd_-named: BTF anchors, for the enum TypeScript names and for the
 * policy map's inner value (libbpf sizes tnd_policy's template from it). */
const volatile enum tnd_proxy_sock_stat btf_proxy_sock_stat_anchor = 0;
const volatile struct tnd_policy_entry btf_policy_entry_anchor = {};

static __always_inline void count(__u32 stat)
{
	__u64 *n = bpf_map_lookup_elem(&tnd_proxy_sock_stats, &stat);

	if (n)
		*n += 1;
}

/*
 * The context's remote_port (network byte order, as the kernel writes it: a
 * 32-bit big-endian port) as a __u16 in network byte order. local_port is
 * in host byte order.
 */
static __always_inline __u16 remote_port(__u32 field)
{
	return bpf_htons((__u16)bpf_ntohl(field));
}

/*
 * An IPv4 connection: of an AF_INET socket, or of an AF_INET6 one whose
 * peer is IPv4-mapped (a dual-stack server's). Both carry the IPv4
 * addresses in the ip4 fields.
 */
static __always_inline int ipv4_connection(__u32 family, const __u32 *remote_ip6)
{
	if (family == 2 /* AF_INET */)
		return 1;
	return family == 10 /* AF_INET6 */ && remote_ip6[0] == 0 && remote_ip6[1] == 0 &&
	       remote_ip6[2] == bpf_htonl(0xffff);
}

/* A flow's key in tnd_proxy_flows: its client's tuple. */
static __always_inline void flow_key(struct tnd_ct_key *k, __u32 client, __u16 client_port,
				     __u32 server, __u16 server_port)
{
	__builtin_memset(k, 0, sizeof(*k));
	*(__u32 *)k->saddr = client;
	*(__u32 *)k->daddr = server;
	k->sport = client_port;
	k->dport = server_port;
	k->proto = IPPROTO_TCP;
	k->family = TND_AF_INET;
	k->dir = TND_CT_EGRESS;
}

/*
 * Whether the steered flow k is still a redirect, decided as lxc.c's
 * proxy_recheck decides it: the client endpoint's egress verdict, unless
 * the destination endpoint's ingress denies, or redirects what egress
 * allows.
 */
static __always_inline int still_redirected(const struct tnd_ct_key *k, __u16 client_endpoint)
{
	const struct tnd_endpoint_info *dst;
	struct policy_result res;
	int verdict, ingress;

	verdict = policy_check(client_endpoint, TND_POLICY_EGRESS, identity_of(k->family, (const void *)k->daddr),
			       IPPROTO_TCP, k->dport, &res);
	if (verdict == DROP_POLICY_DENIED || verdict == DROP_NO_POLICY)
		return 0;
	dst = endpoint_lookup_addr(k->family, k->daddr);
	if (dst) {
		ingress = policy_check(dst->endpoint_id, TND_POLICY_INGRESS,
				       identity_of(k->family, (const void *)k->saddr), IPPROTO_TCP, k->dport, &res);
		if (ingress == DROP_POLICY_DENIED || ingress == DROP_NO_POLICY)
			return 0;
		if (ingress == POLICY_REDIRECT && !verdict)
			verdict = ingress;
	}
	return verdict == POLICY_REDIRECT;
}

/* Joins the socket: its state, then the map. */
static __always_inline void join(struct bpf_sock_ops *ops, const struct tnd_proxy_sock_key *me,
				 const struct tnd_ct_key *flow, __u16 client_endpoint)
{
	struct proxy_sk_state *st;

	if (!ops->sk)
		return;
	st = bpf_sk_storage_get(&tnd_proxy_sk, ops->sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st)
		return;
	if (flow)
		__builtin_memcpy(&st->flow, flow, sizeof(*flow));
	st->client_leg = flow != NULL;
	st->client_endpoint = client_endpoint;
	st->policy_gen = policy_generation();
	st->usual_way = 0;
	if (!bpf_sock_hash_update(ops, &tnd_proxy_socks, (void *)me, BPF_ANY))
		count(TND_PSOCK_JOINED);
}

SEC("sockops")
int proxy_sockops(struct bpf_sock_ops *ops)
{
	struct tnd_proxy_sock_key me, peer;
	struct tnd_proxy_flow *f;
	struct tnd_ct_key flow;
	struct bpf_sock *sk;
	int active, in_node;
	__u8 one = 1;

	if (ops->op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && ops->op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;
	if (!ipv4_connection(ops->family, ops->remote_ip6))
		return 1;
	active = ops->op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB;
	in_node = bpf_get_netns_cookie(ops) == CONFIG.node_netns_cookie;
	me.local_addr = ops->local_ip4;
	me.remote_addr = ops->remote_ip4;
	me.local_port = bpf_htons((__u16)ops->local_port);
	me.remote_port = remote_port(ops->remote_port);

	/* A client leg: a client pod's socket (active, in its pod) or the proxy's accepted one. */
	if (active != in_node) {
		if (active)
			flow_key(&flow, me.local_addr, me.local_port, me.remote_addr, me.remote_port);
		else
			flow_key(&flow, me.remote_addr, me.remote_port, me.local_addr, me.local_port);
		f = bpf_map_lookup_elem(&tnd_proxy_flows, &flow);
		if (f && f->src_endpoint) {
			join(ops, &me, &flow, f->src_endpoint);
			return 1;
		}
	}
	sk = ops->sk;
	/* The upstream leg: the proxy's socket (marked, in the node)... */
	if (active && in_node) {
		if (!sk || (sk->mark & TND_MARK_PROXY_MASK) != TND_MARK_FROM_PROXY)
			return 1;
		bpf_map_update_elem(&tnd_proxy_upstreams, &me, &one, BPF_ANY);
		join(ops, &me, NULL, 0);
		return 1;
	}
	/* ... and the backend pod's socket it connected to. */
	if (!active && !in_node) {
		peer.local_addr = me.remote_addr;
		peer.remote_addr = me.local_addr;
		peer.local_port = me.remote_port;
		peer.remote_port = me.local_port;
		if (!bpf_map_lookup_elem(&tnd_proxy_upstreams, &peer))
			return 1;
		bpf_map_delete_elem(&tnd_proxy_upstreams, &peer);
		join(ops, &me, NULL, 0);
	}
	return 1;
}

SEC("sk_msg")
int proxy_sk_msg(struct sk_msg_md *msg)
{
	struct tnd_proxy_sock_key peer;
	struct proxy_sk_state *st;
	struct bpf_sock *sk = msg->sk;
	__u32 gen;

	if (!sk)
		return SK_PASS;
	st = bpf_sk_storage_get(&tnd_proxy_sk, sk, 0, 0);
	if (!st)
		return SK_PASS;
	if (st->usual_way || !ipv4_connection(msg->family, msg->remote_ip6))
		goto usual_way;
	if (st->client_leg && st->policy_gen != (gen = policy_generation())) {
		if (!still_redirected(&st->flow, st->client_endpoint))
			goto usual_way;
		st->policy_gen = gen;
	}
	peer.local_addr = msg->remote_ip4;
	peer.remote_addr = msg->local_ip4;
	peer.local_port = remote_port(msg->remote_port);
	peer.remote_port = bpf_htons((__u16)msg->local_port);
	/* Without a peer in the map, the helper says SK_DROP and redirects nothing. */
	if (bpf_msg_redirect_hash(msg, &tnd_proxy_socks, &peer, BPF_F_INGRESS) == SK_PASS) {
		count(TND_PSOCK_REDIRECTED);
		return SK_PASS;
	}
usual_way:
	st->usual_way = 1;
	count(TND_PSOCK_USUAL_WAY);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
