/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bench-only XDP programs (bench/xdp-lb.ts):
 *
 * - xdp_tx: returns XDP_TX and nothing else. Timed through BPF_PROG_TEST_RUN
 *   it is the floor of any XDP load balancer (which ends in XDP_TX too); run
 *   with BPF_F_TEST_XDP_LIVE_FRAMES it is the packet generator: every frame
 *   goes out of the device named by the context's ingress_ifindex.
 * - xdp_count_drop: counts the frame in bench_count[0] (per CPU) and drops
 *   it: the receiving side's baseline, the cheapest thing a receiver can do.
 * - xdp_count_sink: the same in bench_count[1]: attached to the generator's
 *   own device, it counts frames a program under test sent back (XDP_TX).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} bench_count SEC(".maps");

static __always_inline int count(__u32 slot)
{
	__u64 *n = bpf_map_lookup_elem(&bench_count, &slot);

	if (n)
		*n += 1;
	return XDP_DROP;
}

SEC("xdp")
int xdp_tx(struct xdp_md *ctx)
{
	return XDP_TX;
}

SEC("xdp")
int xdp_count_drop(struct xdp_md *ctx)
{
	return count(0);
}

SEC("xdp")
int xdp_count_sink(struct xdp_md *ctx)
{
	return count(1);
}

char LICENSE[] SEC("license") = "GPL";
