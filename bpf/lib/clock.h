/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: the datapath's clock.
 *   tnd_clock      PERCPU_ARRAY[1], this object's clock cache
 *   clock_now()    CLOCK_MONOTONIC in ns at tick resolution (the coarse
 *                  clock, cached per tick); read it once per packet
 * Helper calls into the clock code cost about 20 ns here (every kernel call
 * and return pays for the CPU's return-stack mitigations), while
 * bpf_jiffies64() is inlined by the verifier into one load. So each CPU
 * keeps the coarse clock of the current tick and reads it again only when
 * jiffies moved: one clock call per tick per CPU, at most a tick more behind
 * than bpf_ktime_get_coarse_ns() itself. Per object, not node-wide: nothing
 * outside the program reads it.
 */
#ifndef TND_CLOCK_H
#define TND_CLOCK_H

#include "compiler.h"

struct clock_cache {
	__u64 jiffies;
	__u64 ns;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct clock_cache);
} tnd_clock SEC(".maps");

static __always_inline __u64 clock_now(void)
{
	__u64 j = bpf_jiffies64();
	struct clock_cache *c;
	__u32 zero = 0;

	c = bpf_map_lookup_elem(&tnd_clock, &zero);
	if (!c)
		return bpf_ktime_get_coarse_ns();
	if (c->jiffies != j) {
		c->ns = bpf_ktime_get_coarse_ns();
		c->jiffies = j;
	}
	return c->ns;
}

#endif /* TND_CLOCK_H */
