/* SPDX-License-Identifier: Apache-2.0 */
/*
 * connlat: the cost of a new TCP connection, client and server, for the bench
 * (compiled at bench time by bench/conn-latency.ts with clang-19; user space,
 * not BPF).
 *
 *   connlat serve PORT [THREADS]
 *       Listens on 0.0.0.0:PORT (one SO_REUSEPORT listener per thread). Every
 *       accepted connection gets one byte, then close(). Prints "ready" once
 *       listening.
 *
 *   connlat client HOST PORT COUNT MAX_SECONDS [CONCURRENCY] [WARMUP]
 *       CONCURRENCY threads (default 1) each open connections one after the
 *       other until COUNT are recorded or MAX_SECONDS have passed (whichever
 *       comes first), after WARMUP unrecorded ones per thread (default 20).
 *       One connection, the unit every row of the bench measures:
 *         t0  socket()
 *         t1  connect() returned: the handshake is done (SYN, SYN-ACK)
 *         t2  the server's one byte arrived: it accepted, data came back
 *         close() with SO_LINGER 0, a RST: no TIME_WAIT, so long runs do
 *         not run out of ephemeral ports.
 *       Prints one JSON line: rate, and percentiles in microseconds of
 *       t2-t0 ("total") and t1-t0 ("connect").
 *
 * Why C: a Node client spends tens of microseconds of JavaScript and event
 * loop per connection, more than the figure being measured, and its
 * garbage collector puts pauses into p99. This loop costs two clock reads
 * per connection on top of the syscalls every client pays.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + ts.tv_nsec;
}

/* ---- server ---- */

static int listen_on(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	int one = 1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };

	if (fd < 0) {
		perror("socket");
		exit(1);
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 4096) < 0) {
		fprintf(stderr, "connlat: cannot listen on port %d: %s\n", port, strerror(errno));
		exit(1);
	}
	return fd;
}

static void *serve_loop(void *arg)
{
	int lfd = (int)(intptr_t)arg;
	char byte = 'x';

	for (;;) {
		int fd = accept(lfd, NULL, NULL);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED || errno == EMFILE)
				continue;
			perror("accept");
			exit(1);
		}
		(void)!write(fd, &byte, 1);
		close(fd);
	}
	return NULL;
}

static int serve(int port, int threads)
{
	pthread_t t;
	int fds[64];

	if (threads < 1 || threads > 64)
		threads = 1;
	for (int i = 0; i < threads; i++)
		fds[i] = listen_on(port);
	printf("ready\n");
	fflush(stdout);
	for (int i = 1; i < threads; i++)
		pthread_create(&t, NULL, serve_loop, (void *)(intptr_t)fds[i]);
	serve_loop((void *)(intptr_t)fds[0]);
	return 0;
}

/* ---- client ---- */

struct shared {
	struct sockaddr_in addr;
	int count;
	int warmup;
	uint64_t deadline;
	atomic_int taken;
	atomic_int errors;
	atomic_int timeouts;
};

struct worker {
	pthread_t thread;
	struct shared *s;
	uint32_t *total; /* ns, capped at 4.29 s */
	uint32_t *connect;
	int n;
	uint64_t first, last;
};

/* One connection; 0 and its two times, or -1 after counting the error. */
static int one_connection(struct shared *s, uint64_t *total, uint64_t *handshake)
{
	struct linger lin = { .l_onoff = 1, .l_linger = 0 };
	struct timeval tmo = { .tv_sec = 2 };
	char byte;
	uint64_t t0 = now_ns(), t1;
	int fd = socket(AF_INET, SOCK_STREAM, 0);

	if (fd < 0) {
		atomic_fetch_add(&s->errors, 1);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lin, sizeof(lin));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tmo, sizeof(tmo)); /* bounds connect() */
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tmo, sizeof(tmo));
	if (connect(fd, (struct sockaddr *)&s->addr, sizeof(s->addr)) < 0) {
		atomic_fetch_add(errno == EINPROGRESS || errno == EAGAIN ? &s->timeouts : &s->errors, 1);
		close(fd);
		return -1;
	}
	t1 = now_ns();
	if (read(fd, &byte, 1) != 1) {
		atomic_fetch_add(&s->errors, 1);
		close(fd);
		return -1;
	}
	*total = now_ns() - t0;
	*handshake = t1 - t0;
	close(fd);
	return 0;
}

static uint32_t clamp32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

static void *client_loop(void *arg)
{
	struct worker *w = arg;
	struct shared *s = w->s;
	uint64_t total, connect;

	for (int i = 0; i < s->warmup && now_ns() < s->deadline; i++)
		one_connection(s, &total, &connect);
	w->first = now_ns();
	w->last = w->first;
	while (now_ns() < s->deadline) {
		if (atomic_fetch_add(&s->taken, 1) >= s->count)
			break;
		if (one_connection(s, &total, &connect) == 0) {
			w->total[w->n] = clamp32(total);
			w->connect[w->n] = clamp32(connect);
			w->n++;
		}
		w->last = now_ns();
	}
	return NULL;
}

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(const uint32_t *v, int n, double p)
{
	int i;

	if (n == 0)
		return -1;
	i = (int)(p / 100.0 * n);
	if (i >= n)
		i = n - 1;
	return v[i] / 1000.0;
}

static int client(const char *host, int port, int count, double seconds, int conc, int warmup)
{
	struct shared s = { .count = count, .warmup = warmup };
	struct worker *w;
	uint32_t *total, *connect;
	uint64_t first = UINT64_MAX, last = 0;
	double sum = 0, elapsed;
	int n = 0;

	s.addr.sin_family = AF_INET;
	s.addr.sin_port = htons(port);
	if (inet_pton(AF_INET, host, &s.addr.sin_addr) != 1) {
		fprintf(stderr, "connlat: \"%s\" is not an IPv4 address\n", host);
		return 2;
	}
	if (conc < 1 || conc > 64 || count < 1) {
		fprintf(stderr, "connlat: concurrency 1..64 and count >= 1, got %d and %d\n", conc, count);
		return 2;
	}
	s.deadline = now_ns() + (uint64_t)(seconds * 1e9);
	w = calloc(conc, sizeof(*w));
	for (int i = 0; i < conc; i++) {
		w[i].s = &s;
		w[i].total = calloc(count, sizeof(uint32_t));
		w[i].connect = calloc(count, sizeof(uint32_t));
		pthread_create(&w[i].thread, NULL, client_loop, &w[i]);
	}
	for (int i = 0; i < conc; i++) {
		pthread_join(w[i].thread, NULL);
		n += w[i].n;
		if (w[i].first < first)
			first = w[i].first;
		if (w[i].last > last)
			last = w[i].last;
	}
	total = calloc(n ? n : 1, sizeof(uint32_t));
	connect = calloc(n ? n : 1, sizeof(uint32_t));
	for (int i = 0, k = 0; i < conc; i++) {
		memcpy(total + k, w[i].total, w[i].n * sizeof(uint32_t));
		memcpy(connect + k, w[i].connect, w[i].n * sizeof(uint32_t));
		k += w[i].n;
	}
	for (int i = 0; i < n; i++)
		sum += total[i];
	qsort(total, n, sizeof(uint32_t), cmp_u32);
	qsort(connect, n, sizeof(uint32_t), cmp_u32);
	elapsed = last > first ? (last - first) / 1e9 : 0;
	printf("{\"connections\":%d,\"errors\":%d,\"timeouts\":%d,\"seconds\":%.6f,\"perSec\":%.1f,"
	       "\"meanUs\":%.2f,\"minUs\":%.2f,\"p50Us\":%.2f,\"p90Us\":%.2f,\"p99Us\":%.2f,\"p999Us\":%.2f,\"maxUs\":%.2f,"
	       "\"connectP50Us\":%.2f,\"connectP99Us\":%.2f}\n",
	       n, atomic_load(&s.errors), atomic_load(&s.timeouts), elapsed, elapsed > 0 ? n / elapsed : 0,
	       n ? sum / n / 1000.0 : -1, pct(total, n, 0), pct(total, n, 50), pct(total, n, 90), pct(total, n, 99),
	       pct(total, n, 99.9), n ? total[n - 1] / 1000.0 : -1, pct(connect, n, 50), pct(connect, n, 99));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 3 && !strcmp(argv[1], "serve"))
		return serve(atoi(argv[2]), argc > 3 ? atoi(argv[3]) : 1);
	if (argc >= 6 && !strcmp(argv[1], "client"))
		return client(argv[2], atoi(argv[3]), atoi(argv[4]), atof(argv[5]), argc > 6 ? atoi(argv[6]) : 1,
			      argc > 7 ? atoi(argv[7]) : 20);
	fprintf(stderr, "usage: connlat serve PORT [THREADS]\n"
			"       connlat client HOST PORT COUNT MAX_SECONDS [CONCURRENCY] [WARMUP]\n");
	return 2;
}
