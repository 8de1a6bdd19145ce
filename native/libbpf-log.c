/*
 * libbpf's print function for Tendril. libbpf has one print function for
 * the whole process, and the agent calls libbpf from more than one thread
 * (endpoint programs load on a worker thread): a JavaScript callback can
 * only run on the thread that made it, so the lines are kept here instead,
 * per thread, and each thread takes its own after a libbpf call
 * (src/bpf/libbpf.ts, captureLibbpfLog).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { LEVEL_WARN = 0, LEVEL_INFO = 1, LOG_SIZE = 16384 };

static __thread char lines[LOG_SIZE];
static __thread size_t used;
static int debug = -1;

/* Matches libbpf_print_fn_t: int (*)(enum libbpf_print_level, const char *, va_list). */
int tnd_libbpf_print(int level, const char *fmt, va_list args)
{
	va_list copy;

	if (debug < 0)
		debug = getenv("TENDRIL_LIBBPF_DEBUG") && !strcmp(getenv("TENDRIL_LIBBPF_DEBUG"), "1");
	if (debug) {
		va_copy(copy, args);
		fputs("libbpf: ", stderr);
		vfprintf(stderr, fmt, copy);
		va_end(copy);
	}
	if (level != LEVEL_WARN && level != LEVEL_INFO)
		return 0;
	if (used < LOG_SIZE - 1) {
		int n = vsnprintf(lines + used, LOG_SIZE - used, fmt, args);

		if (n > 0)
			used += (size_t)n < LOG_SIZE - used ? (size_t)n : LOG_SIZE - 1 - used;
	}
	return 0;
}

/* Copies this thread's lines since the last call into buf (NUL-terminated) and forgets them. */
size_t tnd_libbpf_log_take(char *buf, size_t size)
{
	size_t n = used < size ? used : size - 1;

	if (size == 0)
		return 0;
	memcpy(buf, lines, n);
	buf[n] = '\0';
	used = 0;
	return n;
}

/* The print function's address, for libbpf_set_print(). */
void *tnd_libbpf_print_fn(void)
{
	return (void *)tnd_libbpf_print;
}
