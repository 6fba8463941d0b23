/*
 * kevd's error type.  Every fallible function returns 0 (or a count) on
 * success and a negative errno value on failure, and fills the trailing
 * struct kevd_error with the errno and a one-line message that names the
 * object that failed.  Callers add context on the way up with
 * kevd_error_prefix(), so the user reads one line that says what failed and
 * why.  The message lives in the struct, so reporting an error never
 * allocates (handler threads report failures while memory may be tight).
 */
#ifndef KEVD_ERROR_H
#define KEVD_ERROR_H

#include <stddef.h>

#define KEVD_ERROR_MSG_MAX 1024

struct kevd_error {
	int errnum;                    /* errno value; never 0 once set */
	char msg[KEVD_ERROR_MSG_MAX];  /* without a trailing newline */
};

#define KEVD_ERROR_INIT { 0, { 0 } }

#define kevd_unlikely(x) __builtin_expect(!!(x), 0)
#define kevd_likely(x) __builtin_expect(!!(x), 1)

/* Sets err (if not NULL) and returns -errnum (-EINVAL when errnum is 0). */
int kevd_error_set(struct kevd_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like kevd_error_set() but appends ": strerror(errnum)". */
int kevd_error_sys(struct kevd_error *err, int errnum, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Prepends "context: " to the message; returns -errnum of err. */
int kevd_error_prefix(struct kevd_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

void kevd_error_clear(struct kevd_error *err);

#endif
