/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: transparent steering into the node's L7 proxy (TND_POLICY_REDIRECT).
 *   tnd_proxy_config    ARRAY[1] struct tnd_proxy_config, node-wide: the
 *                       proxy's port on 127.0.0.1 (0: no proxy)
 *   tnd_proxy_flows     LRU_HASH tnd_ct_key -> tnd_proxy_flow, node-wide: the
 *                       identities and endpoints of each steered flow, keyed
 *                       by the client's tuple as its SYN had it (dir
 *                       TND_CT_EGRESS), read by the proxy when it accepts
 *   proxy_assign(ctx, p)
 *                       a new flow's SYN: find the proxy's listener
 *                       (bpf_skc_lookup_tcp of 127.0.0.1:port in the node's
 *                       netns, the client's address and port for
 *                       SO_REUSEPORT's choice) and bpf_sk_assign it to the
 *                       packet. Returns 0, or the drop reason: not IPv4 or
 *                       not TCP or the assignment failed (this is not tc
 *                       ingress): DROP_PROXY_UNSUPPORTED; not a pure SYN:
 *                       DROP_PROXY_NO_SOCKET (a flow the proxy never saw
 *                       open, e.g. one that predates the L7 rule); no port
 *                       configured or no listener: DROP_PROXY_UNAVAILABLE.
 *   proxy_flow_record(key, flow)   write a flow's entry
 *   proxy_flow_forget(key)         delete it (the flow was cut)
 * The caller marks the packet TND_MARK_TO_PROXY and returns it to the
 * node's stack, whose fwmark rule routes it locally (src/link/
 * proxy-routing.ts): the assigned socket takes the SYN. Later packets of
 * the flow only need the mark: the stack finds the proxy's established
 * socket by the packet's own tuple. Every failure is a drop: a redirect
 * verdict never ends in direct delivery.
 */
#ifndef TND_PROXY_H
#define TND_PROXY_H

#include "compiler.h"
#include "ctx.h"
#include "common.h"
#include "drop.h"
#include "pkt.h"
#include <linux/in.h>

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct tnd_proxy_config);
} tnd_proxy_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, TND_PROXY_FLOWS_MAX);
	__type(key, struct tnd_ct_key);
	__type(value, struct tnd_proxy_flow);
} tnd_proxy_flows SEC(".maps");

#define PROXY_LISTEN_ADDR 0x7f000001 /* 127.0.0.1, host order */

static __always_inline __u16 proxy_port(void)
{
	struct tnd_proxy_config *cfg;
	__u32 zero = 0;

	cfg = bpf_map_lookup_elem(&tnd_proxy_config, &zero);
	return cfg ? cfg->port : 0;
}

static __always_inline int proxy_assign(struct __sk_buff *ctx,
					const struct pkt *p)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;
	__u16 port;
	long err;

	if (p->tuple.family != TND_AF_INET || p->tuple.proto != IPPROTO_TCP)
		return DROP_PROXY_UNSUPPORTED;
	if ((p->tcp_flags & (TCP_F_SYN | TCP_F_ACK | TCP_F_RST)) != TCP_F_SYN)
		return DROP_PROXY_NO_SOCKET;
	port = proxy_port();
	if (!port)
		return DROP_PROXY_UNAVAILABLE;
	t.ipv4.saddr = *(const __u32 *)p->tuple.saddr;
	t.ipv4.sport = p->tuple.sport;
	t.ipv4.daddr = bpf_htonl(PROXY_LISTEN_ADDR);
	t.ipv4.dport = bpf_htons(port);
	sk = bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return DROP_PROXY_UNAVAILABLE;
	if (sk->state != BPF_TCP_LISTEN) {
		bpf_sk_release(sk);
		return DROP_PROXY_UNAVAILABLE;
	}
	err = bpf_sk_assign(ctx, sk, 0);
	bpf_sk_release(sk);
	return err ? DROP_PROXY_UNSUPPORTED : 0;
}

static __always_inline void proxy_flow_record(const struct tnd_ct_key *key,
					      const struct tnd_proxy_flow *flow)
{
	/* Full map: LRU evicts the oldest flow, whose proxy connection is long open. */
	bpf_map_update_elem(&tnd_proxy_flows, key, flow, BPF_ANY);
}

static __always_inline void proxy_flow_forget(const struct tnd_ct_key *key)
{
	bpf_map_delete_elem(&tnd_proxy_flows, key);
}

#endif /* TND_PROXY_H */
