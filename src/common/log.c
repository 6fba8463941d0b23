/* stderr logging (see log.h).  The whole line goes out in one write so
 * that lines from different threads do not interleave.  The rate limit is
 * a token bucket per call site (kevd_log_limit_pass(), pure so that it is
 * unit-tested with a clock of the test's own); one lock serializes every
 * site's bucket: logging is rare, and the lock is never held over I/O. */
#include "config.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time.h"

#define LINE_MAX_BYTES 1200
#define REFILL_NS ((uint64_t)KEVD_LOG_REFILL_MS * 1000000u)

static int level = KEVD_LOG_WARN;  /* atomic */
static const char *const names[] = { "error", "warn", "info", "debug" };
static pthread_mutex_t limit_lock = PTHREAD_MUTEX_INITIALIZER;  /* every struct kevd_log_limit of a site */

void kevd_log_set_level(enum kevd_log_level l)
{
	__atomic_store_n(&level, (int)l, __ATOMIC_RELAXED);
}

enum kevd_log_level kevd_log_get_level(void)
{
	return (enum kevd_log_level)__atomic_load_n(&level, __ATOMIC_RELAXED);
}

int kevd_log_parse_level(const char *s)
{
	for (int i = 0; i < 4; i++)
		if (!strcmp(s, names[i]))
			return i;
	return -1;
}

bool kevd_log_limit_pass(struct kevd_log_limit *l, uint64_t now_ns, uint64_t *suppressed)
{
	if (!l->started) {
		l->started = true;
		l->tokens = KEVD_LOG_BURST;
		l->last_ns = now_ns;
	} else if (now_ns > l->last_ns) {
		uint64_t add = (now_ns - l->last_ns) / REFILL_NS;

		if (add >= KEVD_LOG_BURST - l->tokens) {
			l->tokens = KEVD_LOG_BURST;
			l->last_ns = now_ns;
		} else {
			l->tokens += (unsigned)add;
			/* Keep the part of an interval not yet earned. */
			l->last_ns += add * REFILL_NS;
		}
	}
	if (l->tokens == 0) {
		l->suppressed++;
		return false;
	}
	l->tokens--;
	*suppressed = l->suppressed;
	l->suppressed = 0;
	return true;
}

static bool wanted(enum kevd_log_level l)
{
	return (int)l <= __atomic_load_n(&level, __ATOMIC_RELAXED);
}

/* Formats "kevd: LEVEL: message" and, if SUPPRESSED, the count of lines
 * held back, then writes it. */
static void emit(enum kevd_log_level l, uint64_t suppressed, const char *fmt, va_list ap)
{
	char line[LINE_MAX_BYTES];
	int n;

	n = snprintf(line, sizeof(line), "kevd: %s: ", names[l]);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	if (suppressed) {
		n += snprintf(line + n, sizeof(line) - (size_t)n - 1, " (%" PRIu64 " more suppressed)", suppressed);
		if (n > (int)sizeof(line) - 2)
			n = (int)sizeof(line) - 2;
	}
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

void kevd_log(enum kevd_log_level l, const char *fmt, ...)
{
	va_list ap;

	if (!wanted(l))
		return;
	va_start(ap, fmt);
	emit(l, 0, fmt, ap);
	va_end(ap);
}

void kevd_log_site(struct kevd_log_limit *site, enum kevd_log_level l, const char *fmt, ...)
{
	uint64_t suppressed = 0;
	va_list ap;
	bool pass;

	/* A line below the level costs no token: raising the level later
	 * must not find the bucket emptied by lines nobody saw. */
	if (!wanted(l))
		return;
	pthread_mutex_lock(&limit_lock);
	pass = kevd_log_limit_pass(site, kevd_now_ns(CLOCK_MONOTONIC), &suppressed);
	pthread_mutex_unlock(&limit_lock);
	if (!pass)
		return;
	va_start(ap, fmt);
	emit(l, suppressed, fmt, ap);
	va_end(ap);
}
