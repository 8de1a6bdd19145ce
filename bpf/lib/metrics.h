/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: per-CPU packet/byte counters.
 *   tnd_metrics               PERCPU_ARRAY, __u32 slot -> struct tnd_metrics_value
 *                             (slots: enum tnd_metrics_slot, or a drop reason)
 *   metrics_add(slot, bytes)  count one packet; per-CPU, so no atomics.
 */
#ifndef TND_METRICS_H
#define TND_METRICS_H

#include "compiler.h"
#include "common.h"

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, TND_METRICS_MAX);
	__type(key, __u32);
	__type(value, struct tnd_metrics_value);
} tnd_metrics SEC(".maps");

static __always_inline void metrics_add(__u32 slot, __u32 bytes)
{
	struct tnd_metrics_value *m;

	m = bpf_map_lookup_elem(&tnd_metrics, &slot);
	if (m) {
		m->packets++;
		m->bytes += bytes;
	}
}

#endif /* TND_METRICS_H */
