// SPDX-License-Identifier: Apache-2.0
/*
 * The XDP load balancer of NodePort and ExternalIP frontends: xdp_lb,
 * attached in native mode to the node's external interfaces (through a
 * pinned bpf_link, src/datapath/xdp-lb.ts). What it does is in
 * lib/lb_xdp.h; the maps are the node's LB maps (lb.h), its endpoints
 * (endpoints.h) and tnd_xdp_stats.
 * Load-time configuration: struct tnd_xdp_config (M of the Maglev tables).
 */
#define TND_CTX_XDP
#include "compiler.h"
#include "config.h"
#include "common.h"

DECLARE_CONFIG(struct tnd_xdp_config);

#include "lb_xdp.h"

LB_TYPES_IN_BTF();

/* Not tnd_-named: a BTF anchor for the enums TypeScript names. */
struct btf_xdp_types {
	enum tnd_xdp_stat xdp_stat;
	enum tnd_lb_nat_dir nat_dir;
	enum tnd_lb_nat_flags nat_flags;
};
const volatile struct btf_xdp_types *const volatile btf_xdp_types_anchor = 0;

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	return xdp_lb_process(ctx);
}

char LICENSE[] SEC("license") = "GPL";
