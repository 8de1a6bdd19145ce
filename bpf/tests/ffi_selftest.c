/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Programs and maps that exercise the TypeScript libbpf binding (src/bpf):
 * load-time constants, every map operation, BPF_PROG_TEST_RUN, ring buffers,
 * attach points, and one program the verifier rejects. Not part of the datapath.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "common.h"

/* Load-time constants; the test sets them through BpfObject.open({ constants }). */
const volatile __u32 selftest_magic = 7;
const volatile __u8 selftest_mac[6] = { 0 };
const volatile enum tnd_ct_state selftest_state = TND_CT_NEW;

/* Keyed by an endpoint address: gives the codec generator tnd_ types to read. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct tnd_endpoint_key);
	__type(value, struct tnd_endpoint_info);
	__uint(max_entries, 256);
} selftest_endpoints SEC(".maps");

/* Plain counters for the map operation tests. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 1024);
} selftest_hash SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, 8);
} selftest_array SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 16);
} selftest_events SEC(".maps");

/* One ring-buffer record: which record of the run it is, and the packet length. */
struct selftest_record {
	__u32 seq;
	__u32 pkt_len;
	__u64 magic;
	struct tnd_event event;
};

/*
 * Returns the magic constant and writes the MAC constant over the packet's
 * destination MAC, so a test run shows both what the program saw and its output.
 */
SEC("tc")
int read_constants(struct __sk_buff *skb)
{
	__u8 mac[6];
	int i;

	/* Byte by byte through the volatile: a cast-away memcpy would fold to zeros. */
	for (i = 0; i < 6; i++)
		mac[i] = selftest_mac[i];
	if (bpf_skb_store_bytes(skb, 0, mac, sizeof(mac), 0))
		return -1;
	if (selftest_state != TND_CT_NEW)
		return selftest_magic + 1000;
	return selftest_magic;
}

/* Counts packets per length in selftest_hash and in selftest_array[0]. */
SEC("tc")
int count_packets(struct __sk_buff *skb)
{
	__u32 len = skb->len, zero = 0;
	__u64 one = 1, *v;

	v = bpf_map_lookup_elem(&selftest_hash, &len);
	if (v)
		__sync_fetch_and_add(v, 1);
	else
		bpf_map_update_elem(&selftest_hash, &len, &one, BPF_ANY);
	v = bpf_map_lookup_elem(&selftest_array, &zero);
	if (v)
		__sync_fetch_and_add(v, 1);
	return TC_ACT_OK;
}

/* Writes as many records as the first byte of the packet says (at most 16). */
SEC("tc")
int emit_events(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct selftest_record rec = {};
	__u32 n, i;

	if (data + 1 > data_end)
		return -1;
	n = *(__u8 *)data;
	if (n > 16)
		n = 16;
	for (i = 0; i < n; i++) {
		rec.seq = i;
		rec.pkt_len = skb->len;
		rec.magic = selftest_magic;
		rec.event.type = TND_EVENT_TRACE;
		if (bpf_ringbuf_output(&selftest_events, &rec, sizeof(rec), 0))
			return -2;
	}
	return n;
}

SEC("xdp")
int xdp_count(struct xdp_md *ctx)
{
	__u32 zero = 0;
	__u64 *v = bpf_map_lookup_elem(&selftest_array, &zero);

	if (v)
		__sync_fetch_and_add(v, 1);
	return XDP_PASS;
}

/*
 * Reads past the end of the packet without a bounds check: the verifier
 * rejects it. "?" keeps it out of a load unless a test asks for it.
 */
SEC("?tc")
int rejected(struct __sk_buff *skb)
{
	__u8 *data = (__u8 *)(long)skb->data;

	return data[64];
}

char LICENSE[] SEC("license") = "GPL";
