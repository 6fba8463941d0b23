/*
 * The shared error type (see error.h).  Messages are truncated, never
 * overflowed, when a path is absurdly long.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"

static int neg(int errnum)
{
	return errnum > 0 ? -errnum : -EINVAL;
}

int kevd_error_set(struct kevd_error *err, int errnum, const char *fmt, ...)
{
	if (err) {
		va_list ap;

		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		err->errnum = errnum > 0 ? errnum : EINVAL;
	}
	return neg(errnum);
}

int kevd_error_sys(struct kevd_error *err, int errnum, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		size_t n;
		char buf[64];

		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
		n = strlen(err->msg);
		/* strerror_r is the GNU variant under _GNU_SOURCE. */
		snprintf(err->msg + n, sizeof(err->msg) - n, ": %s",
			 strerror_r(errnum, buf, sizeof(buf)));
		err->errnum = errnum > 0 ? errnum : EINVAL;
	}
	return neg(errnum);
}

int kevd_error_prefix(struct kevd_error *err, const char *fmt, ...)
{
	char prefix[KEVD_ERROR_MSG_MAX];
	char old[KEVD_ERROR_MSG_MAX];
	size_t n, m;
	va_list ap;

	if (!err)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(prefix, sizeof(prefix), fmt, ap);
	va_end(ap);
	memcpy(old, err->msg, sizeof(old));
	old[sizeof(old) - 1] = '\0';
	/* Truncate, never overflow: the context comes first. */
	n = strlen(prefix);
	if (n > sizeof(err->msg) - 3)
		n = sizeof(err->msg) - 3;
	memcpy(err->msg, prefix, n);
	memcpy(err->msg + n, ": ", 2);
	n += 2;
	m = strlen(old);
	if (m > sizeof(err->msg) - 1 - n)
		m = sizeof(err->msg) - 1 - n;
	memcpy(err->msg + n, old, m);
	err->msg[n + m] = '\0';
	if (err->errnum <= 0)
		err->errnum = EINVAL;
	return -err->errnum;
}

void kevd_error_clear(struct kevd_error *err)
{
	if (err) {
		err->errnum = 0;
		err->msg[0] = '\0';
	}
}
