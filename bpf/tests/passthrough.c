/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The cheapest programs that can be attached: they let every packet through.
 * Benchmarks use them as the floor against which the real datapath is measured.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

SEC("tc")
int tc_pass(struct __sk_buff *skb)
{
	return TC_ACT_OK;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
