/* SPDX-License-Identifier: Apache-2.0 */
/*
 * API: every structure that crosses the kernel/user boundary: map keys and
 * values, ring-buffer events and load-time configuration. This file is the one
 * declaration of each; the TypeScript codecs in src/bpf/generated/ are generated
 * from the BTF of the built objects (tools/gen-codecs.mjs), so the two sides
 * cannot drift. Names starting with "tnd_" are exported to TypeScript.
 *
 * Rules: fixed-width types only, explicit padding, no bitfields, sizes a
 * multiple of 8 where a struct holds a __u64.
 */
#ifndef TND_COMMON_H
#define TND_COMMON_H

#include <linux/types.h>

#define TND_ADDR_LEN 16
#define TND_MAC_LEN 6

#define TND_ENDPOINTS_MAX 65536
#define TND_CT_MAX 262144
#define TND_EVENTS_BYTES (1 << 22)
#define TND_IPCACHE_MAX 524288
/* Flows steered into the L7 proxy that the proxy may still ask about. */
#define TND_PROXY_FLOWS_MAX 65536
/* One endpoint's policy: the size of every inner map of tnd_policy. */
#define TND_POLICY_ENTRIES_MAX 65536

/*
 * skb->mark values. TND_MARK_LOCAL_REPLY: a reply built in BPF and sent back
 * into its own pod (ARP, ND, echo); to_container passes it without conntrack
 * or policy. TND_MARK_TO_PROXY: a packet from_container steered into the
 * node's L7 proxy (the node routes it locally: `ip rule fwmark
 * 0x7e500000/0xffff0000 lookup <table>` + `local default dev lo table
 * <table>`, src/link/proxy-routing.ts). TND_MARK_FROM_PROXY: set by the
 * proxy's upstream sockets (SO_MARK); to_container tracks such a connection
 * without judging it (the proxy did). None of them crosses a netns boundary:
 * veth transmission into another netns scrubs the mark, so a pod can neither
 * receive nor forge one.
 */
enum tnd_mark {
	TND_MARK_LOCAL_REPLY = 0x7e4d0000,
	TND_MARK_TO_PROXY = 0x7e500000,
	TND_MARK_FROM_PROXY = 0x7e510000,
};

/* The bits of skb->mark the proxy marks are matched on (the ip rule's mask). */
#define TND_MARK_PROXY_MASK 0xffff0000

/* Address families as they appear in keys (the kernel's AF_* values). */
enum tnd_family {
	TND_AF_INET = 2,
	TND_AF_INET6 = 10,
};

/*
 * Security identities (src/common/identity.ts has the same numbers; a test
 * checks they agree). Policy keys also use the two class values, each of which
 * stands for a whole range of identities.
 */
enum tnd_identity {
	TND_IDENTITY_ANY = 0,              /* no identity; in a policy key: any */
	TND_IDENTITY_HOST = 1,
	TND_IDENTITY_WORLD = 2,
	TND_IDENTITY_UNMANAGED = 3,
	TND_IDENTITY_HEALTH = 4,
	TND_IDENTITY_INIT = 5,
	TND_IDENTITY_REMOTE_NODE = 6,
	TND_IDENTITY_KUBE_APISERVER = 7,
	TND_IDENTITY_INGRESS = 8,
	TND_IDENTITY_ENDPOINT_MIN = 256,
	TND_IDENTITY_ENDPOINT_MAX = (1 << 24) - 1,
	TND_IDENTITY_CIDR_MIN = 1 << 24,
	TND_IDENTITY_CIDR_MAX = 0x7effffff,
	TND_IDENTITY_CLASS_ENDPOINTS = 0x7fff0001, /* every endpoint identity */
	TND_IDENTITY_CLASS_WORLD = 0x7fff0002,     /* world and every CIDR identity */
};

/* An IPv4 or IPv6 address: IPv4 uses the first 4 bytes, the rest is zero. */
struct tnd_endpoint_key {
	__u8 addr[TND_ADDR_LEN];
	__u8 family;
	__u8 pad[3];
};

/* Bits of tnd_endpoint_info.flags. */
enum tnd_endpoint_flags {
	/*
	 * A trace event for every packet entering this endpoint (the node-wide
	 * twin of its TND_LXC_TRACE_ALL: another endpoint's program delivers to
	 * it and cannot read its CONFIG).
	 */
	TND_ENDPOINT_TRACE_ALL = 1 << 0,
};

/* A local endpoint, found by any of its addresses. */
struct tnd_endpoint_info {
	__u32 ifindex;       /* host-side veth in the node netns */
	__u32 identity;      /* security identity (policy issue) */
	__u16 endpoint_id;
	__u16 flags;         /* enum tnd_endpoint_flags */
	__u8 mac[TND_MAC_LEN];        /* the pod's eth0 */
	__u8 router_mac[TND_MAC_LEN]; /* host-side veth, the pod's gateway MAC */
	__u8 pad[4];
};

/*
 * The identity of every address the node knows (tnd_ipcache, an LPM trie):
 * longest prefix wins. prefixlen counts the 32 bits of family and pad (always
 * matched) plus the address bits: 10.1.0.0/16 is prefixlen 48.
 */
struct tnd_ipcache_key {
	__u32 prefixlen;
	__u8 family;  /* enum tnd_family */
	__u8 pad[3];
	__u8 addr[TND_ADDR_LEN];
};

struct tnd_ipcache_value {
	__u32 identity;
	__u32 pad;
};

/*
 * One endpoint's policy (an inner LPM trie of tnd_policy). prefixlen counts
 * the bits after itself: 32 identity + 8 direction for an L3-only entry, + 8
 * protocol + the port's prefix bits for an L4 one (48 = the protocol, any
 * port; 64 = one port). Lookups use the full 64 bits.
 */
enum tnd_policy_dir {
	TND_POLICY_INGRESS = 0,
	TND_POLICY_EGRESS = 1,
};

enum tnd_policy_verdict {
	TND_POLICY_ALLOW = 1,
	TND_POLICY_DENY = 2,
	/* Allowed at L3/L4, but only through the node's L7 proxy (proxy.h). */
	TND_POLICY_REDIRECT = 3,
};

struct tnd_policy_key {
	__u32 prefixlen;
	__u32 identity;  /* exact, a class value, or TND_IDENTITY_ANY */
	__u8 direction;  /* enum tnd_policy_dir */
	__u8 proto;
	__u16 dport;     /* network byte order: its prefix is its leading bits */
};

struct tnd_policy_entry {
	__u8 verdict;    /* enum tnd_policy_verdict */
	__u8 pad[3];
	__u32 rule_id;   /* the agent's rule; 0 = none (default allow) */
};

/* Connection tracking: one entry per (tuple, direction of the endpoint). */
enum tnd_ct_dir {
	TND_CT_EGRESS = 0,  /* seen leaving an endpoint (from-container) */
	TND_CT_INGRESS = 1, /* seen entering an endpoint (to-container, or a local
	                     * endpoint's from-container delivering to it) */
};

struct tnd_ct_key {
	__u8 saddr[TND_ADDR_LEN]; /* of the connection's first packet */
	__u8 daddr[TND_ADDR_LEN];
	__u16 sport;  /* network byte order; ICMP echo: the identifier */
	__u16 dport;  /* network byte order; ICMP echo: 0 */
	__u8 proto;
	__u8 family;
	__u8 dir;     /* enum tnd_ct_dir */
	__u8 pad;
};

enum tnd_ct_state {
	TND_CT_NEW = 0,         /* first packet seen, no reply yet */
	TND_CT_ESTABLISHED = 1, /* a reply was seen */
	TND_CT_CLOSING = 2,     /* FIN seen in one direction */
	TND_CT_CLOSED = 3,      /* RST, or FIN in both directions */
};

/* Bits of tnd_ct_entry.flags. */
enum tnd_ct_flags {
	/*
	 * The source's egress entry of a flow steered into the L7 proxy: its
	 * packets are marked TND_MARK_TO_PROXY and go to the node's stack,
	 * never straight to the destination.
	 */
	TND_CT_F_TO_PROXY = 1 << 0,
	/*
	 * The destination's ingress entry of a proxy upstream connection
	 * (TND_MARK_FROM_PROXY): tracked, never judged by policy.
	 */
	TND_CT_F_FROM_PROXY = 1 << 1,
	/*
	 * A per-packet load-balanced flow (lb_nat.h): its replies get their
	 * reverse translation from tnd_lb_nat (the REV entry of the reply's
	 * tuple) at this entry's endpoint. Set on the client's egress entry of
	 * a flow lxc.o translated, and on the backend's ingress entry of a flow
	 * translated before it reached the endpoint (XDP NodePort, DSR).
	 */
	TND_CT_F_LB = 1 << 2,
};

struct tnd_ct_entry {
	__u64 created_ns;    /* bpf_ktime_get_ns() */
	__u64 last_seen_ns;
	__u64 expires_ns;    /* entry is dead after this, whatever the map says */
	__u64 packets_fwd;   /* in the direction of the first packet */
	__u64 bytes_fwd;
	__u64 packets_rev;   /* replies */
	__u64 bytes_rev;
	__u64 last_report_ns; /* trace aggregation: last trace event sent */
	__u16 endpoint_id;
	__u8 state;          /* enum tnd_ct_state */
	__u8 tcp_flags_fwd;  /* union of TCP flags seen in each direction */
	__u8 tcp_flags_rev;
	__u8 flags;          /* enum tnd_ct_flags */
	__u8 pad[2];
	__u32 policy_gen;    /* tnd_policy_gen when the policy last allowed it */
	__u32 pad2;
};

/*
 * The node's L7 proxy (tnd_proxy_config, an ARRAY[1]): where flows with a
 * TND_POLICY_REDIRECT verdict go. Its listeners are IP_TRANSPARENT sockets on
 * 127.0.0.1:port in the node's netns (SO_REUSEPORT across its processes).
 */
struct tnd_proxy_config {
	__u16 port;   /* host byte order; 0 = no proxy: redirected flows drop */
	__u16 pad;
	__u32 pad2;
};

/* Bits of tnd_proxy_flow.flags: whose policy steered the flow into the proxy. */
enum tnd_proxy_flags {
	TND_PROXY_F_EGRESS = 1 << 0,  /* the source endpoint's egress policy */
	TND_PROXY_F_INGRESS = 1 << 1, /* the destination endpoint's ingress policy */
};

/*
 * What the datapath tells the proxy about a flow it steered (tnd_proxy_flows,
 * LRU_HASH keyed by struct tnd_ct_key: the client's tuple as its SYN had it,
 * dir TND_CT_EGRESS, proto TCP), written on the SYN.
 */
struct tnd_proxy_flow {
	__u32 src_identity;
	__u32 dst_identity;
	__u16 src_endpoint; /* 0: not a local endpoint */
	__u16 dst_endpoint; /* 0: not a local endpoint */
	__u8 flags;         /* enum tnd_proxy_flags */
	__u8 pad[3];
};

/* Events on the ring buffer. One layout for every type keeps decoding simple. */
enum tnd_event_type {
	TND_EVENT_TRACE = 1,
	TND_EVENT_DROP = 2,
	TND_EVENT_POLICY = 3, /* the policy's verdict on a new connection */
};

/* Where a trace event was observed. */
enum tnd_obs_point {
	TND_OBS_FROM_ENDPOINT = 1, /* tc ingress of the host veth: leaving the pod */
	TND_OBS_TO_ENDPOINT = 2,   /* entering the pod: at tc egress of its host veth
	                            * (from the node), or at the source pod's tc
	                            * ingress on its behalf (pod to pod) */
	TND_OBS_ARP_REPLY = 3,     /* answered an ARP request in BPF */
	TND_OBS_NDISC_REPLY = 4,   /* answered a neighbour solicitation in BPF */
	TND_OBS_ICMP_REPLY = 5,    /* answered an echo request to the router */
};

struct tnd_event {
	__u64 timestamp_ns;
	__u8 type;          /* enum tnd_event_type */
	__u8 obs_point;     /* enum tnd_obs_point */
	__u16 reason;       /* enum tnd_drop_reason for drops, 0 otherwise */
	__u16 endpoint_id;  /* the endpoint the event is about (to-endpoint: the destination) */
	__u8 ct_state;      /* enum tnd_ct_state after this packet */
	__u8 tcp_flags;
	__u32 ifindex;      /* that endpoint's host veth */
	__u32 target_ifindex; /* redirect target, 0 if none */
	__u32 pkt_len;
	__u8 family;
	__u8 proto;
	__u16 sport;        /* network byte order */
	__u16 dport;        /* network byte order */
	__u16 pad;
	__u8 saddr[TND_ADDR_LEN];
	__u8 daddr[TND_ADDR_LEN];
	/* Policy events and policy drops; 0 otherwise. */
	__u32 src_identity; /* of saddr */
	__u32 dst_identity; /* of daddr */
	__u32 rule_id;
	__u8 verdict;       /* enum tnd_policy_verdict */
	__u8 direction;     /* enum tnd_policy_dir of the endpoint's policy */
	__u8 pad2[6];       /* explicit tail: the struct is 88 bytes */
};

/*
 * Per-CPU counters (tnd_metrics, a PERCPU_ARRAY keyed by __u32 slot). Slots
 * below TND_METRICS_DROP_BASE count verdicts; a drop is counted at the slot
 * equal to its enum tnd_drop_reason value.
 */
#define TND_METRICS_MAX 256
#define TND_METRICS_DROP_BASE 128

enum tnd_metrics_slot {
	TND_METRIC_FORWARDED = 1,   /* from-container, redirected to an endpoint */
	TND_METRIC_DELIVERED = 2,   /* to-container, passed into the pod */
	TND_METRIC_LOCAL_REPLY = 3, /* ARP, ND or echo request answered in BPF */
	TND_METRIC_PASSED = 4,      /* control traffic handed to the node's stack */
	TND_METRIC_TO_STACK = 5,    /* from-container, not for a local endpoint:
	                             * routed by the node's stack */
	TND_METRIC_TO_PROXY = 6,    /* from-container, steered into the L7 proxy */
};

struct tnd_metrics_value {
	__u64 packets;
	__u64 bytes;
};

/*
 * Load balancing (lb.h). A service's frontend is found by address, port,
 * protocol and scope; its value names the Maglev table that picks a backend
 * id and the reverse-NAT id replies are rewritten by. Sizes are for 100,000
 * services: the hash maps are not preallocated (BPF_F_NO_PREALLOC), so only
 * what is written takes memory.
 */
#define TND_LB_SERVICES_MAX 262144   /* frontends: cluster, nodeport, external, both families */
#define TND_LB_BACKENDS_MAX 524288
#define TND_LB_MAGLEV_MAX 65536      /* tables are shared by services with the same backends */
#define TND_LB_AFFINITY_MAX 131072
#define TND_LB_SOCK_REVNAT_MAX 262144
#define TND_LB_NAT_MAX 262144        /* per-packet translations: two entries a flow */
#define TND_LB_NODE_ADDRS_MAX 256
/* Source ports the XDP load balancer gives SNAT flows (host order), outside
 * Linux's default ephemeral range (32768-60999) so they never meet the
 * node's own connections. */
#define TND_LB_SNAT_PORT_MIN 61000
#define TND_LB_SNAT_PORT_MAX 65535
#define TND_LB_NETNS_MAX TND_ENDPOINTS_MAX
/* The default M (slots of a Maglev table): a prime; the agent chooses it. */
#define TND_LB_MAGLEV_SIZE_DEFAULT 16381

/* Who reaches a frontend (src/common/lb.ts FrontendScope). */
enum tnd_lb_scope {
	TND_LB_SCOPE_CLUSTER = 0,  /* the node's pods (socket LB, from-container) */
	TND_LB_SCOPE_NODEPORT = 1, /* any node address at that port, from outside */
	TND_LB_SCOPE_EXTERNAL = 2, /* an external IP routed to the node */
	/*
	 * What the XDP load balancer answers, found in one lookup: each
	 * EXTERNAL frontend again, and each NODEPORT one at every node address
	 * (flag TND_LB_F_NODEPORT); an external IP wins over a node address.
	 * Derived by the agent (src/datapath/lb-maps.ts) from the two above.
	 */
	TND_LB_SCOPE_XDP = 3,
};

struct tnd_lb_service_key {
	__u8 addr[TND_ADDR_LEN];  /* nodeport scope: all zero (any node address) */
	__u16 port;               /* network byte order */
	__u8 proto;               /* IPPROTO_TCP, IPPROTO_UDP */
	__u8 family;              /* enum tnd_family */
	__u8 scope;               /* enum tnd_lb_scope */
	__u8 pad[3];
};

/* Bits of tnd_lb_service.flags. */
enum tnd_lb_service_flags {
	TND_LB_F_AFFINITY = 1 << 0, /* client-IP affinity (affinity_timeout_s) */
	TND_LB_F_DSR = 1 << 1,      /* direct server return (per-packet path) */
	TND_LB_F_NODEPORT = 1 << 2, /* scope XDP: a NodePort frontend at a node address */
};

struct tnd_lb_service {
	__u32 service_id;         /* also the reverse-NAT id (tnd_lb_revnat) */
	__u32 maglev_id;          /* the key of its table in tnd_lb_maglev */
	__u16 active_backends;    /* 0: refuse new connections */
	__u16 flags;              /* enum tnd_lb_service_flags */
	__u32 affinity_timeout_s;
};

enum tnd_lb_backend_state {
	TND_LB_BACKEND_ACTIVE = 0,
	TND_LB_BACKEND_TERMINATING = 1, /* keeps its connections, gets no new ones */
};

/* tnd_lb_backends: __u32 backend id (1..2^32-1) -> this. */
struct tnd_lb_backend {
	__u8 addr[TND_ADDR_LEN];
	__u16 port;               /* network byte order */
	__u8 proto;
	__u8 family;
	__u8 state;               /* enum tnd_lb_backend_state */
	__u8 pad[3];
};

/*
 * tnd_lb_maglev: __u32 table id -> a map whose one value is __u32
 * backend_ids[M], M set by the agent (the inner maps' value size, and
 * CONFIG.maglev_size of the programs that read it). A slot of 0 is "no
 * backend". No struct: M is not a compile-time size.
 */

/* Client-IP affinity (LRU): a client's last backend per service. */
struct tnd_lb_affinity_key {
	__u32 service_id;
	__u8 family;
	__u8 pad[3];
	__u8 client[TND_ADDR_LEN];
};

struct tnd_lb_affinity {
	__u32 backend_id;
	__u32 maglev_id;          /* the service's table when chosen: stale once it changes */
	__u64 last_used_ns;       /* bpf_ktime_get_ns() */
};

/*
 * tnd_lb_revnat: what replies of a service are rewritten back to, for the
 * per-packet path (the socket path has tnd_lb_sock_revnat). Cluster-scope
 * frontends only: a nodeport reply gets the node address it came in on.
 */
struct tnd_lb_revnat_key {
	__u32 service_id;
	__u8 family;
	__u8 pad[3];
};

struct tnd_lb_frontend {
	__u8 addr[TND_ADDR_LEN];
	__u16 port;               /* network byte order */
	__u8 family;
	__u8 pad;
	__u32 service_id;
};

/* What the socket LB did (tnd_lb_sock_stats, PERCPU_ARRAY of __u64). */
enum tnd_lb_sock_stat {
	TND_LB_SOCK_TRANSLATED = 0,   /* connect/sendmsg sent to a backend */
	TND_LB_SOCK_NO_BACKENDS = 1,  /* refused: the service has no active backend */
	TND_LB_SOCK_NO_SLOT = 2,      /* refused: table missing, or its slots tried
	                               * name no usable backend */
	TND_LB_SOCK_FAMILY = 3,       /* refused: a v4-mapped socket's backend is IPv6 */
	TND_LB_SOCK_REVNAT = 4,       /* recvmsg/getpeername shown the frontend */
	TND_LB_SOCK_STATS_MAX = 8,
};

/*
 * tnd_lb_sock_revnat (LRU): a socket the socket LB translated, by its cookie
 * and the backend it was sent to -> the frontend it asked for. recvmsg
 * rewrites a reply's source with it, getpeername the peer.
 */
struct tnd_lb_sock_revnat_key {
	__u64 cookie;             /* bpf_get_socket_cookie() */
	__u8 addr[TND_ADDR_LEN];  /* the backend's */
	__u16 port;               /* network byte order */
	__u8 family;
	__u8 pad[5];
};

/*
 * tnd_lb_netns: the pods of THIS node by netns cookie (several nodes may
 * share one machine and one cgroup tree): the socket LB acts only for them.
 * The addresses are the client's for affinity.
 */
struct tnd_lb_netns {
	__u32 endpoint_id;
	__u8 addr4[4];
	__u8 addr6[TND_ADDR_LEN];
};

/*
 * Per-packet load balancing (lxc.o for pods' packets to a frontend, xdp.o
 * for NodePort/ExternalIP traffic from outside): tnd_lb_nat, LRU_HASH
 * keyed by struct tnd_ct_key with dir = enum tnd_lb_nat_dir.
 *   FWD  key: the client's packet as it was sent (saddr client, daddr
 *        frontend, dport frontend port). Value: addr/port = the backend (the
 *        new daddr/dport); with TND_LB_NAT_F_SNAT, addr2/port2 = the new
 *        saddr/sport. Later packets of the flow keep their backend by it.
 *   REV  key: the backend's reply as the backend sends it (saddr backend,
 *        sport backend port, daddr/dport the client or, with SNAT, the
 *        SNAT address/port). Value: addr/port = the frontend (the new
 *        saddr/sport); with TND_LB_NAT_F_SNAT, addr2/port2 = the client
 *        (the new daddr/dport).
 * A DSR flow has its FWD entry on the balancing node and its REV entry on
 * the backend's node, written by lxc.o from the DSR option.
 * xdp.o keeps its flows in slots instead (tnd_xdp_flows, tnd_xdp_snat,
 * below); here only the REV entries of its local backends (for lxc.o) and
 * FWD entries whose slot another live flow holds.
 */
enum tnd_lb_nat_dir {
	TND_LB_NAT_FWD = 0,
	TND_LB_NAT_REV = 1,
};

enum tnd_lb_nat_flags {
	TND_LB_NAT_F_SNAT = 1 << 0,      /* addr2/port2 are in use */
	TND_LB_NAT_F_DSR = 1 << 1,       /* the backend answers the client itself */
	/*
	 * REV only: the reply is translated where it reaches the client
	 * endpoint (the client is a local pod whose packet lxc.o translated).
	 * Without it, where it leaves the backend endpoint (or at XDP, when a
	 * remote backend's SNAT reply comes back in).
	 */
	TND_LB_NAT_F_AT_CLIENT = 1 << 2,
	/* XDP flow slots only (tnd_xdp_flows, tnd_xdp_snat): the flow saw a FIN or a RST. */
	TND_LB_NAT_F_CLOSING = 1 << 3,
};

struct tnd_lb_nat {
	__u8 addr[TND_ADDR_LEN];
	__u8 addr2[TND_ADDR_LEN];
	__u16 port;               /* network byte order, with addr */
	__u16 port2;              /* network byte order, with addr2 */
	__u32 backend_id;
	__u32 service_id;
	__u8 flags;               /* enum tnd_lb_nat_flags */
	__u8 family;              /* enum tnd_family */
	__u8 pad[2];
	__u64 last_seen_ns;       /* bpf_ktime_get_ns() of the flow's last packet (at most 1 s behind) */
};

/*
 * DSR: the frontend travels to the backend's node in the first packets of
 * the flow (TCP: the SYN; UDP: every packet), already translated to the
 * backend. IPv4: an IP option (number 30, the experimental one of RFC 4727,
 * with the copied bit), 8 bytes: type, length, port, address. IPv6: a
 * Destination Options header right after the IPv6 header holding one
 * option of type 0x1e (RFC 4727's experimental, "skip if unknown"), then
 * a PadN, 24 bytes. lxc.o reads and removes it before the pod sees the
 * packet.
 */
#define TND_DSR_OPT4_TYPE 0x9e
#define TND_DSR_OPT6_TYPE 0x1e

struct tnd_dsr_opt4 {
	__u8 type;                /* TND_DSR_OPT4_TYPE */
	__u8 len;                 /* 8 */
	__u16 port;               /* network byte order */
	__u8 addr[4];
};

struct tnd_dsr_opt6 {
	__u8 nexthdr;             /* the header after this one */
	__u8 hdrlen;              /* 2: (2 + 1) * 8 = 24 bytes */
	__u8 type;                /* TND_DSR_OPT6_TYPE */
	__u8 len;                 /* 18 */
	__u16 port;               /* network byte order */
	__u8 addr[TND_ADDR_LEN];
	__u8 padn_type;           /* 1 (PadN) */
	__u8 padn_len;            /* 0 */
};

/*
 * tnd_lb_node_addrs: the node's own addresses (HASH, written by the agent):
 * a NodePort frontend (address all zero) answers only packets sent to one
 * of them.
 */
struct tnd_lb_node_addr_key {
	__u8 addr[TND_ADDR_LEN];
	__u8 family;
	__u8 pad[3];
};

/* Load-time configuration of sock.o. */
struct tnd_sock_config {
	__u32 maglev_size;        /* M: a prime, the value size of tnd_lb_maglev's tables / 4 */
	__u32 pad;
};

/* Load-time configuration of proxy_sock.o. */
struct tnd_proxy_sock_config {
	__u64 node_netns_cookie;  /* the node's netns, where the proxy's sockets are */
};

/* tnd_proxy_sock_stats (proxy_sock.o): PERCPU_ARRAY, packets by kind. */
enum tnd_proxy_sock_stat {
	TND_PSOCK_JOINED = 0,      /* sockets that joined tnd_proxy_socks */
	TND_PSOCK_REDIRECTED = 1,  /* messages handed to the peer socket */
	TND_PSOCK_USUAL_WAY = 2,   /* messages of joined sockets sent through TCP/IP */
	TND_PSOCK_STATS_MAX = 3,
};

/*
 * tnd_proxy_socks (proxy_sock.o): an IPv4 TCP socket by its own tuple,
 * local side first, ports in network byte order.
 */
struct tnd_proxy_sock_key {
	__u32 local_addr;
	__u32 remote_addr;
	__u16 local_port;
	__u16 remote_port;
};

/* Load-time configuration of one endpoint's programs (a const volatile global). */
enum tnd_lxc_flags {
	TND_LXC_IPV4 = 1 << 0,
	TND_LXC_IPV6 = 1 << 1,
	TND_LXC_TRACE_ALL = 1 << 2, /* a trace event per packet instead of per flow */
};

struct tnd_lxc_config {
	__u32 endpoint_id;          /* no ifindex: the programs read the device they run
	                             * on from the packet, so they load before it exists */
	__u32 flags;                /* enum tnd_lxc_flags */
	__u32 identity;
	__u8 mac[TND_MAC_LEN];      /* the pod's eth0 */
	__u8 router_mac[TND_MAC_LEN];
	__u8 ip4[4];
	__u8 router_ip4[4];
	__u8 ip6[TND_ADDR_LEN];
	__u8 router_ip6[TND_ADDR_LEN];
	__u32 maglev_size;          /* M of the node's tnd_lb_maglev (per-packet LB);
	                             * 0: no table is read, services refuse */
	__u32 pad;
};

/*
 * Load-time configuration of xdp.o, the XDP load balancer of NodePort and
 * ExternalIP frontends on the node's external interfaces.
 */
struct tnd_xdp_config {
	__u32 maglev_size;        /* M: a prime, the value size of tnd_lb_maglev's tables / 4 */
	__u32 pad;
};

/*
 * The XDP load balancer's flows (lib/slot_xdp.h): direct-mapped ARRAYs of
 * 1 << TND_XDP_SLOT_BITS slots, a flow at a hash of its key.
 *   tnd_xdp_flows  key: a FWD key of tnd_lb_nat; nat: the FWD value
 *   tnd_xdp_snat   key: the REV key of a SNAT flow to a remote backend (its
 *                  reply as the backend sends it); nat: the REV value
 * A slot is free when nat.last_seen_ns is 0 or older than its flow's
 * timeout, and is claimed by a compare-and-swap of that word. A FWD whose
 * slot another live flow holds goes to tnd_lb_nat instead; a SNAT port is
 * one whose tnd_xdp_snat slot is free, so a port is in use exactly while
 * its slot holds a live flow.
 */
#define TND_XDP_SLOT_BITS 17

/* Not tnd_-named: no generated codec (TypeScript decodes its two halves
 * with TndCtKey and TndLbNat). */
struct xdp_flow_slot {
	struct tnd_ct_key key;
	struct tnd_lb_nat nat;
};

/* What xdp.o did with a packet (tnd_xdp_stats, PERCPU_ARRAY of __u64). */
enum tnd_xdp_stat {
	TND_XDP_PASSED = 0,       /* not for a frontend (or malformed): to the stack untouched */
	TND_XDP_TX = 1,           /* translated, sent back out of the receiving device */
	TND_XDP_REDIRECTED = 2,   /* translated, redirected out of another device */
	TND_XDP_TO_LOCAL = 3,     /* DNAT only, passed to the stack: a backend of this
	                           * node, or a next hop not resolved yet */
	TND_XDP_REFUSED = 4,      /* no usable backend: TCP reset / ICMP unreachable sent back */
	TND_XDP_SNAT_REPLIES = 5, /* a remote backend's reply translated back to the client */
	TND_XDP_ERRORS = 6,       /* dropped or passed: translation, SNAT port or route failed */
	TND_XDP_STATS_MAX = 8,
};

#endif /* TND_COMMON_H */
