/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: trace events for packets that go on, with aggregation.
 *   trace_wanted(res, trace_all)  established traffic stays cheap: a trace is
 *                                 sent when the CT entry is created or changes
 *                                 state, when a TCP flag shows up for the first
 *                                 time in a direction, or when the entry's last
 *                                 report is over a second old (conntrack.h
 *                                 decides, in res->report);
 *                                 every packet when trace_all is set.
 *   send_trace(p, obs, target, ct_state, a)   emit a TND_EVENT_TRACE event.
 */
#ifndef TND_TRACE_H
#define TND_TRACE_H

#include "compiler.h"
#include "common.h"
#include "events.h"
#include "conntrack.h"

static __always_inline int trace_wanted(const struct ct_result *res,
					int trace_all)
{
	return trace_all || res->report;
}

static __always_inline void send_trace(const struct pkt *p, __u8 obs_point,
				       __u32 target_ifindex, __u8 ct_state,
				       struct event_args *a)
{
	a->type = TND_EVENT_TRACE;
	a->obs_point = obs_point;
	a->reason = 0;
	a->target_ifindex = target_ifindex;
	a->ct_state = ct_state;
	event_emit(p, a);
}

#endif /* TND_TRACE_H */
