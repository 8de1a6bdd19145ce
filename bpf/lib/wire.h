/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: WIRE_TYPES_IN_BTF() puts every wire type of common.h and every enum the
 * TypeScript side names (drop reasons included) into the object's BTF, which
 * is where tools/gen-codecs.mjs reads them. clang emits BTF only for types a
 * global or a map uses, and drops enums used only in expressions; so one
 * 8-byte read-only global points at a struct that names them all. Use it once
 * per object, after including the headers that declare the types.
 */
#ifndef TND_WIRE_H
#define TND_WIRE_H

#include "common.h"
#include "drop.h"

/* Not tnd_-named: it is a BTF anchor, not a wire struct. */
struct btf_wire_types {
	enum tnd_family family;
	enum tnd_ct_dir ct_dir;
	enum tnd_ct_state ct_state;
	enum tnd_event_type event_type;
	enum tnd_obs_point obs_point;
	enum tnd_lxc_flags lxc_flags;
	enum tnd_endpoint_flags endpoint_flags;
	enum tnd_metrics_slot metrics_slot;
	enum tnd_drop_reason drop_reason;
	enum tnd_identity identity;
	enum tnd_mark mark;
	enum tnd_policy_dir policy_dir;
	enum tnd_policy_verdict policy_verdict;
	enum tnd_ct_flags ct_flags;
	enum tnd_proxy_flags proxy_flags;
	struct tnd_proxy_config proxy_config;
	struct tnd_proxy_flow proxy_flow;
	struct tnd_ipcache_key ipcache_key;
	struct tnd_ipcache_value ipcache_value;
	struct tnd_policy_key policy_key;
	struct tnd_policy_entry policy_entry;
	struct tnd_endpoint_key endpoint_key;
	struct tnd_endpoint_info endpoint_info;
	struct tnd_ct_key ct_key;
	struct tnd_ct_entry ct_entry;
	struct tnd_event event;
	struct tnd_lxc_config lxc_config;
	struct tnd_metrics_value metrics_value;
};

#define WIRE_TYPES_IN_BTF() \
	const volatile struct btf_wire_types *const volatile btf_wire_types_anchor = 0

#endif /* TND_WIRE_H */
