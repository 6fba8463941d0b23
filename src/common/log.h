/*
 * Logging to stderr (journald adds time and unit when kevd runs as a
 * service).  One line per message, prefixed with the level.
 *
 * kevd_err() and kevd_warn() are rate-limited per call site: each site has
 * a token bucket of KEVD_LOG_BURST lines that refills one line every
 * KEVD_LOG_REFILL_MS, so a condition that repeats (accept failing with
 * EMFILE, libevent complaining in a loop) cannot fill the journal.  The
 * first line a site prints after some were held back ends with "(N more
 * suppressed)".  kevd_info() and kevd_debug() are not limited: info lines
 * tell of events that are bounded already (a VM created, a state change, a
 * guest port logged once), each distinct and worth keeping, and debug
 * output is asked for, useful only when complete.
 */
#ifndef KEVD_LOG_H
#define KEVD_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum kevd_log_level { KEVD_LOG_ERROR, KEVD_LOG_WARN, KEVD_LOG_INFO, KEVD_LOG_DEBUG };

#define KEVD_LOG_BURST 10
#define KEVD_LOG_REFILL_MS 1000

/* The token bucket of one call site; all zero is a full bucket not yet
 * used.  Guarded by log.c's lock when used through kevd_log_site(). */
struct kevd_log_limit {
	uint64_t last_ns;     /* when the bucket last gained a token (or was first used) */
	unsigned tokens;      /* lines that may go out now, at most KEVD_LOG_BURST */
	bool started;
	uint64_t suppressed;  /* lines held back since the last one that went out */
};

void kevd_log_set_level(enum kevd_log_level level);
enum kevd_log_level kevd_log_get_level(void);
/* Parses "error", "warn", "info" or "debug"; -1 if none of them. */
int kevd_log_parse_level(const char *s);
/* One line, not rate-limited. */
void kevd_log(enum kevd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* One line from the call site that owns SITE, rate-limited by it. */
void kevd_log_site(struct kevd_log_limit *site, enum kevd_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Whether a line may go out at NOW_NS (CLOCK_MONOTONIC); takes a token if
 * so, else counts the line as suppressed.  When it may, *SUPPRESSED is the
 * number held back before it (the count then starts again at 0).  The
 * caller serializes calls on one L. */
bool kevd_log_limit_pass(struct kevd_log_limit *l, uint64_t now_ns, uint64_t *suppressed);

#define KEVD_LOG_AT_SITE(level, ...)                                   \
	do {                                                           \
		static struct kevd_log_limit kevd_log_site_;           \
		kevd_log_site(&kevd_log_site_, (level), __VA_ARGS__);  \
	} while (0)

#define kevd_err(...) KEVD_LOG_AT_SITE(KEVD_LOG_ERROR, __VA_ARGS__)
#define kevd_warn(...) KEVD_LOG_AT_SITE(KEVD_LOG_WARN, __VA_ARGS__)
#define kevd_info(...) kevd_log(KEVD_LOG_INFO, __VA_ARGS__)
#define kevd_debug(...) kevd_log(KEVD_LOG_DEBUG, __VA_ARGS__)

#endif
