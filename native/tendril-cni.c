// SPDX-License-Identifier: Apache-2.0
/*
 * tendril-cni: the CNI plugin a runtime executes (installed under the name of
 * the configuration's type, "tendril"). Thin on purpose: it hands the
 * runtime's CNI_* environment and stdin to the agent (POST /v1/cni on the
 * agent's Unix socket) and passes the agent's answer back, the CNI output on
 * stdout and its exit code. Every CNI rule lives in the agent (src/cni/), so
 * the plugin holds no state a crash could leave half-made, and a call costs a
 * small process start rather than a Node.js start.
 *
 * VERSION is answered here, without the agent: runtimes ask it to validate a
 * configuration before any agent need be up (the list must equal
 * SUPPORTED_VERSIONS of src/cni/protocol.ts; a test compares them).
 *
 * The agent's socket: $TENDRIL_SOCKET, else the configuration's top-level
 * "agentSocket" string, else /run/tendril/agent.sock. When the agent cannot
 * be reached, the plugin answers itself with CNI error 11 ("try again later").
 *
 * The agent's answer is exactly {"exitCode":N,"output":JSON} (JSON.stringify
 * of that object, so the layout is fixed); output null means print nothing.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/run/tendril/agent.sock"
#define SUPPORTED_VERSIONS "\"0.4.0\",\"1.0.0\",\"1.1.0\""
#define LATEST_VERSION "1.1.0"
#define MAX_INPUT (4 << 20)

static const char *const ENV_KEYS[] = {
	"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH",
};

struct buf {
	char *data;
	size_t len, cap;
};

static void buf_reserve(struct buf *b, size_t more)
{
	if (b->len + more + 1 <= b->cap)
		return;
	while (b->len + more + 1 > b->cap)
		b->cap = b->cap ? b->cap * 2 : 4096;
	b->data = realloc(b->data, b->cap);
	if (!b->data) {
		perror("tendril-cni");
		exit(1);
	}
}

static void buf_add(struct buf *b, const char *s, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = 0;
}

static void buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

/* s as a JSON string literal. */
static void buf_json_string(struct buf *b, const char *s, size_t n)
{
	char esc[8];
	size_t i;

	buf_str(b, "\"");
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			buf_add(b, esc, 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			buf_str(b, esc);
		} else {
			buf_add(b, (const char *)&s[i], 1);
		}
	}
	buf_str(b, "\"");
}

/* The version the configuration asks for, for our own error object. */
static void config_string(const char *conf, const char *key, char *out, size_t size)
{
	const char *p = strstr(conf, key), *end;

	out[0] = 0;
	if (!p)
		return;
	p += strlen(key);
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r' || *p == ':')
		p++;
	if (*p != '"')
		return;
	end = strchr(++p, '"');
	if (!end || (size_t)(end - p) >= size || memchr(p, '\\', end - p))
		return;
	memcpy(out, p, end - p);
	out[end - p] = 0;
}

static int fail_unreachable(const char *version, const char *socket_path, const char *fmt, ...)
{
	struct buf msg = {0}, out = {0};
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	buf_str(&msg, "Tendril agent unreachable at ");
	buf_str(&msg, socket_path);
	buf_str(&out, "{\"cniVersion\":");
	buf_json_string(&out, version[0] ? version : "1.0.0", strlen(version[0] ? version : "1.0.0"));
	buf_str(&out, ",\"code\":11,\"msg\":");
	buf_json_string(&out, msg.data, msg.len);
	buf_str(&out, ",\"details\":");
	buf_json_string(&out, text, strlen(text));
	buf_str(&out, "}\n");
	fwrite(out.data, 1, out.len, stdout);
	return 1;
}

/* VERSION: the versions this plugin speaks, in the version asked for when it is one of them. */
static int answer_version(const char *version)
{
	char quoted[40];
	const char *v = LATEST_VERSION;

	snprintf(quoted, sizeof(quoted), "\"%s\"", version);
	if (version[0] && strstr(SUPPORTED_VERSIONS, quoted))
		v = version;
	printf("{\"cniVersion\":\"%s\",\"supportedVersions\":[%s]}\n", v, SUPPORTED_VERSIONS);
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int main(void)
{
	struct buf in = {0}, body = {0}, req = {0}, resp = {0};
	char version[32], socket_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	const char *env_socket = getenv("TENDRIL_SOCKET");
	const char *hdr_end, *p, *output;
	char header[160];
	size_t i, out_len;
	int fd, code;
	ssize_t n;

	/* stdin: the network configuration (VERSION may send little or nothing). */
	for (;;) {
		buf_reserve(&in, 65536);
		n = read(0, in.data + in.len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		in.len += (size_t)n;
		in.data[in.len] = 0;
		if (in.len > MAX_INPUT)
			break;
	}
	if (!in.data)
		buf_str(&in, "");
	config_string(in.data, "\"cniVersion\"", version, sizeof(version));
	if (getenv("CNI_COMMAND") && strcmp(getenv("CNI_COMMAND"), "VERSION") == 0)
		return answer_version(version);
	if (env_socket && env_socket[0])
		snprintf(socket_path, sizeof(socket_path), "%s", env_socket);
	else {
		config_string(in.data, "\"agentSocket\"", socket_path, sizeof(socket_path));
		if (!socket_path[0])
			snprintf(socket_path, sizeof(socket_path), "%s", DEFAULT_SOCKET);
	}

	buf_str(&body, "{\"env\":{");
	for (i = 0; i < sizeof(ENV_KEYS) / sizeof(ENV_KEYS[0]); i++) {
		const char *v = getenv(ENV_KEYS[i]);

		if (!v)
			continue;
		if (body.data[body.len - 1] != '{')
			buf_str(&body, ",");
		buf_json_string(&body, ENV_KEYS[i], strlen(ENV_KEYS[i]));
		buf_str(&body, ":");
		buf_json_string(&body, v, strlen(v));
	}
	buf_str(&body, "},\"stdin\":");
	buf_json_string(&body, in.data, in.len);
	buf_str(&body, "}");

	snprintf(header, sizeof(header),
		 "POST /v1/cni HTTP/1.1\r\nHost: tendril\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n", body.len);
	buf_str(&req, header);
	buf_add(&req, body.data, body.len);

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return fail_unreachable(version, socket_path, "socket: %s", strerror(errno));
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", socket_path);
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		return fail_unreachable(version, socket_path, "connect: %s", strerror(errno));
	if (write_all(fd, req.data, req.len) < 0)
		return fail_unreachable(version, socket_path, "write: %s", strerror(errno));
	for (;;) {
		buf_reserve(&resp, 65536);
		n = read(fd, resp.data + resp.len, 65536);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return fail_unreachable(version, socket_path, "read: %s", strerror(errno));
		if (n == 0)
			break;
		resp.len += (size_t)n;
		resp.data[resp.len] = 0;
	}
	close(fd);

	hdr_end = resp.data ? strstr(resp.data, "\r\n\r\n") : NULL;
	if (!hdr_end)
		return fail_unreachable(version, socket_path, "the agent's answer has no HTTP header");
	p = hdr_end + 4;
	if (strncmp(p, "{\"exitCode\":", 12) != 0) {
		/* An API error (e.g. an agent without this route): show it as ours. */
		return fail_unreachable(version, socket_path, "unexpected answer: %.300s", p);
	}
	code = atoi(p + 12);
	output = strstr(p, ",\"output\":");
	if (!output)
		return fail_unreachable(version, socket_path, "the agent's answer has no output");
	output += 10;
	out_len = strlen(output);
	if (out_len && output[out_len - 1] == '}')
		out_len--;
	if (!(out_len == 4 && strncmp(output, "null", 4) == 0)) {
		fwrite(output, 1, out_len, stdout);
		fputc('\n', stdout);
	}
	return code;
}
