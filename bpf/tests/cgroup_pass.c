/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A cgroup sock_addr program that allows every connect() and changes
 * nothing, and one that refuses with ECONNREFUSED: what attachCgroup() is
 * tested with (src/bpf/attach.privileged.test.ts).
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include <asm-generic/errno.h>

SEC("cgroup/connect4")
int connect4_pass(struct bpf_sock_addr *ctx)
{
	return 1;
}

SEC("cgroup/connect4")
int connect4_refuse(struct bpf_sock_addr *ctx)
{
	bpf_set_retval(-ECONNREFUSED);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
