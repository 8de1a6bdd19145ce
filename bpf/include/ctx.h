/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: one packet context so lib/ compiles for tc and for XDP.
 *   struct __ctx_buff          the program's context (__sk_buff or xdp_md)
 *   CTX_OK, CTX_DROP, CTX_REDIRECT   verdicts of the attach point
 *   ctx_data(), ctx_data_end(), ctx_len(), ctx_ifindex(), ctx_change_tail(),
 *   ctx_redirect(), ctx_redirect_peer(), ctx_mark(), ctx_set_mark()
 * An object defines TND_CTX_XDP before including this to build for XDP; the
 * default is tc (TCX uses the same return codes as tc).
 */
#ifndef TND_CTX_H
#define TND_CTX_H

#include "compiler.h"
#include <linux/pkt_cls.h>

#ifdef TND_CTX_XDP
#define __ctx_buff xdp_md
#define CTX_OK XDP_PASS
#define CTX_DROP XDP_DROP
#define CTX_REDIRECT XDP_REDIRECT
#else
#define __ctx_buff __sk_buff
#define CTX_OK TC_ACT_OK
#define CTX_DROP TC_ACT_SHOT
#define CTX_REDIRECT TC_ACT_REDIRECT
#endif

static __always_inline void *ctx_data(const struct __ctx_buff *ctx)
{
	return (void *)(long)ctx->data;
}

static __always_inline void *ctx_data_end(const struct __ctx_buff *ctx)
{
	return (void *)(long)ctx->data_end;
}

/* Whole packet length, including what is not in the linear area (tc). */
static __always_inline __u32 ctx_len(const struct __ctx_buff *ctx)
{
#ifdef TND_CTX_XDP
	return ctx->data_end - ctx->data;
#else
	return ctx->len;
#endif
}

/*
 * The device the program runs on (tc: skb->dev, at ingress and at egress;
 * XDP: the receiving device). Under BPF_PROG_TEST_RUN it is the loopback (1)
 * unless the test passes a context naming another device.
 */
static __always_inline __u32 ctx_ifindex(const struct __ctx_buff *ctx)
{
#ifdef TND_CTX_XDP
	return ctx->ingress_ifindex;
#else
	return ctx->ifindex;
#endif
}

/* Grow or shrink the packet at its tail; packet pointers are invalid after. */
static __always_inline int ctx_change_tail(struct __ctx_buff *ctx, __u32 len)
{
#ifdef TND_CTX_XDP
	return bpf_xdp_adjust_tail(ctx, (int)len - (int)ctx_len(ctx));
#else
	return bpf_skb_change_tail(ctx, len, 0);
#endif
}

/* Send the packet out of ifindex (tc: its egress; XDP: its XDP tx). */
static __always_inline int ctx_redirect(__u32 ifindex)
{
	return bpf_redirect(ifindex, 0);
}

/*
 * tc ingress only: hand the packet to the peer of ifindex (the pod's eth0 of a
 * host-side veth) as if it had been received there, in the peer's netns,
 * without going out of ifindex's egress or through a backlog queue. Egress
 * programs of ifindex do not run. XDP has no peer redirect: plain redirect.
 */
static __always_inline int ctx_redirect_peer(__u32 ifindex)
{
#ifdef TND_CTX_XDP
	return bpf_redirect(ifindex, 0);
#else
	return bpf_redirect_peer(ifindex, 0);
#endif
}

/* skb->mark (tc); XDP frames have none: 0, and setting it does nothing. */
static __always_inline __u32 ctx_mark(const struct __ctx_buff *ctx)
{
#ifdef TND_CTX_XDP
	return 0;
#else
	return ctx->mark;
#endif
}

static __always_inline void ctx_set_mark(struct __ctx_buff *ctx, __u32 mark)
{
#ifndef TND_CTX_XDP
	ctx->mark = mark;
#endif
}

#endif /* TND_CTX_H */
