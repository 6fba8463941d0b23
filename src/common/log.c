/* stderr logging (see log.h).  The whole line goes out in one write so
 * that lines from different threads do not interleave. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"

static int level = KEVD_LOG_WARN;  /* atomic */
static const char *const names[] = { "error", "warn", "info", "debug" };

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

void kevd_log(enum kevd_log_level l, const char *fmt, ...)
{
	char line[1200];
	va_list ap;
	int n;

	if ((int)l > __atomic_load_n(&level, __ATOMIC_RELAXED))
		return;
	n = snprintf(line, sizeof(line), "kevd: %s: ", names[l]);
	va_start(ap, fmt);
	n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}
