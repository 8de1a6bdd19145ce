// SPDX-License-Identifier: Apache-2.0
/*
 * Bench-only wrappers of the XDP load balancer (bench/xdp-lb.ts), so that
 * BPF_PROG_TEST_RUN with repeat=N times it on the same packet every time
 * (the kernel does not reset the packet between repeats): each wrapper
 * saves the frame's first BENCH_SAVE bytes, runs the load balancer's code
 * (lib/lb_xdp.h, the very code of xdp.c), checks its verdict and writes the
 * saved bytes back. Rows use SNAT-mode services, whose rewrite keeps the
 * frame's length.
 *   xdp_lb_bench       the load balancer as is: an established flow's
 *                      packet (its FWD entry is there from the first repeat
 *                      on), a passed one, or the same SYN again and again
 *                      (Katran's row: every repeat is a SYN, which chooses
 *                      its backend by Maglev and writes the flow's state:
 *                      FWD entry, SNAT port's slot)
 *   xdp_lb_bench_new   the same, then the flow's FWD slot and reply slot
 *                      are freed: every repeat is a flow never seen
 *                      (selection, SNAT port, both slots claimed and
 *                      filled, a connection counted, both freed)
 *   xdp_lb_bench_floor the wrapper alone (save, check, restore; no load
 *                      balancer): the floor beside them
 *   xdp_lb_bench_churn the wrapper claiming, filling and freeing a FWD
 *                      slot and a reply slot, no load balancer: the map
 *                      work inside the never-seen row (see
 *                      bench/xdp-lb.ts for why it frees them)
 *   xdp_restore_sink   live-frame bench, on the generator's device: counts
 *                      a frame the load balancer sent back (XDP_TX), writes
 *                      the generator's original bytes (bench_template) back
 *                      over it, drops it. veth hands the generator's pages
 *                      through without a copy, so the dropped page goes back
 *                      to the generator's pool and would otherwise be sent
 *                      again already translated.
 * bench_ctl[0] is the verdict every repeat must return; bench_ctl[1]
 * counts repeats that returned another (the bench requires 0).
 */
#define TND_CTX_XDP
#include "compiler.h"
#include "config.h"
#include "common.h"

DECLARE_CONFIG(struct tnd_xdp_config);

#include "lb_xdp.h"

#define BENCH_SAVE 128

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} bench_ctl SEC(".maps");

struct bench_frame {
	__u64 w[BENCH_SAVE / 8];
};

/* The saved bytes: a per-CPU slot, as the load balancer needs the stack. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_frame);
} bench_saved SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct bench_frame);
} bench_template SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} bench_sunk SEC(".maps");

static __always_inline struct bench_frame *bench_slot(void)
{
	__u32 k = 0;

	return bpf_map_lookup_elem(&bench_saved, &k);
}

/*
 * Copies the frame's first bytes (up to BENCH_SAVE) to or from the saved
 * slot: 8-byte words, then the 2-byte words of the tail (frames have an
 * even length here).
 */
#define BENCH_COPY(data, data_end, dst_is_pkt, f)                               \
	do {                                                                    \
		int _i, _j;                                                     \
		_Pragma("unroll") for (_i = 0; _i < BENCH_SAVE / 8; _i++) {     \
			if ((data) + (_i + 1) * 8 > (data_end)) {               \
				_Pragma("unroll") for (_j = 0; _j < 3; _j++) {  \
					__u16 *_p = (data) + _i * 8 + _j * 2;   \
					__u16 *_s = (__u16 *)&(f)->w[_i] + _j;  \
					if ((void *)(_p + 1) > (data_end))      \
						break;                          \
					if (dst_is_pkt)                         \
						*_p = *_s;                      \
					else                                    \
						*_s = *_p;                      \
				}                                               \
				break;                                          \
			}                                                       \
			if (dst_is_pkt)                                         \
				((__u64 *)(data))[_i] = (f)->w[_i];             \
			else                                                    \
				(f)->w[_i] = ((__u64 *)(data))[_i];             \
		}                                                               \
	} while (0)

static __always_inline void bench_save(struct xdp_md *ctx, struct bench_frame *f)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);

	BENCH_COPY(data, data_end, 0, f);
}

static __always_inline void bench_restore(struct xdp_md *ctx, struct bench_frame *f)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);

	BENCH_COPY(data, data_end, 1, f);
}

static __always_inline int bench_check(int verdict)
{
	__u32 k = 0;
	__u32 *expect = bpf_map_lookup_elem(&bench_ctl, &k);

	if (expect && *expect != (__u32)verdict) {
		k = 1;
		expect = bpf_map_lookup_elem(&bench_ctl, &k);
		if (expect)
			*expect += 1;
	}
	return verdict;
}

/* The output is a SNAT'd IPv4 packet: its reverse is the reply slot's key; the saved input, the FWD key. */
static __always_inline void bench_forget(struct xdp_md *ctx, const struct bench_frame *in)
{
	void *data = ctx_data(ctx), *data_end = ctx_data_end(ctx);
	struct iphdr *ip = data + ETH_HLEN;
	const __u8 *b = (const __u8 *)in->w;
	struct tnd_ct_key k __attribute__((aligned(8))) = {};
	struct xdp_flow_slot *s;
	__u16 *ports;

	if ((void *)(ip + 1) + 4 > data_end)
		return;
	ports = (void *)(ip + 1);
	*(__u32 *)k.saddr = ip->daddr;
	*(__u32 *)k.daddr = ip->saddr;
	k.sport = ports[1];
	k.dport = ports[0];
	k.proto = ip->protocol;
	k.family = TND_AF_INET;
	k.dir = TND_LB_NAT_REV;
	s = snat_slot(&k);
	if (s)
		slot_release(s, &k);
	__builtin_memset(&k, 0, sizeof(k));
	__builtin_memcpy(k.saddr, b + ETH_HLEN + 12, 4);
	__builtin_memcpy(k.daddr, b + ETH_HLEN + 16, 4);
	__builtin_memcpy(&k.sport, b + ETH_HLEN + 20, 2);
	__builtin_memcpy(&k.dport, b + ETH_HLEN + 22, 2);
	k.proto = b[ETH_HLEN + 9];
	k.family = TND_AF_INET;
	k.dir = TND_LB_NAT_FWD;
	s = flow_slot(&k);
	if (s)
		slot_release(s, &k);
}

SEC("xdp")
int xdp_lb_bench(struct xdp_md *ctx)
{
	struct bench_frame *f = bench_slot();
	int verdict;

	if (!f)
		return XDP_ABORTED;
	bench_save(ctx, f);
	verdict = bench_check(xdp_lb_process(ctx));
	bench_restore(ctx, f);
	return verdict;
}

SEC("xdp")
int xdp_lb_bench_new(struct xdp_md *ctx)
{
	struct bench_frame *f = bench_slot();
	int verdict;

	if (!f)
		return XDP_ABORTED;
	bench_save(ctx, f);
	verdict = bench_check(xdp_lb_process(ctx));
	bench_forget(ctx, f);
	bench_restore(ctx, f);
	return verdict;
}

SEC("xdp")
int xdp_lb_bench_floor(struct xdp_md *ctx)
{
	struct bench_frame *f = bench_slot();
	int verdict;

	if (!f)
		return XDP_ABORTED;
	bench_save(ctx, f);
	verdict = bench_check(XDP_TX);
	bench_restore(ctx, f);
	return verdict;
}

/*
 * The map work a never-seen SNAT flow implies, alone: the wrapper claims
 * and fills a FWD slot and a reply slot the way the load balancer does,
 * then frees both as xdp_lb_bench_new's clean-up does. Keys no flow of the
 * bench uses.
 */
SEC("xdp")
int xdp_lb_bench_churn(struct xdp_md *ctx)
{
	struct bench_frame *f = bench_slot();
	struct tnd_ct_key k __attribute__((aligned(8))) = {};
	struct tnd_lb_nat v = {};
	struct xdp_flow_slot *s;
	int verdict = XDP_TX, dir;
	__u64 now = clock_now();

	if (!f)
		return XDP_ABORTED;
	bench_save(ctx, f);
	k.family = TND_AF_INET;
	k.proto = IPPROTO_TCP;
	k.sport = bpf_htons(1);
	for (dir = TND_LB_NAT_FWD; dir <= TND_LB_NAT_REV; dir++) {
		k.dir = dir;
		s = dir == TND_LB_NAT_FWD ? flow_slot(&k) : snat_slot(&k);
		if (!s || slot_take(s, slot_key_eq(&s->key, &k), now) < 0) {
			verdict = XDP_DROP;
			continue;
		}
		slot_fill(s, &k, &v);
	}
	for (dir = TND_LB_NAT_FWD; dir <= TND_LB_NAT_REV; dir++) {
		k.dir = dir;
		s = dir == TND_LB_NAT_FWD ? flow_slot(&k) : snat_slot(&k);
		if (s)
			slot_release(s, &k);
	}
	verdict = bench_check(verdict);
	bench_restore(ctx, f);
	return verdict;
}

SEC("xdp")
int xdp_restore_sink(struct xdp_md *ctx)
{
	struct bench_frame *f;
	__u32 k = 0;
	__u64 *n;

	n = bpf_map_lookup_elem(&bench_sunk, &k);
	if (n)
		*n += 1;
	f = bpf_map_lookup_elem(&bench_template, &k);
	if (f)
		bench_restore(ctx, f);
	return XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
