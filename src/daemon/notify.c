/*
 * systemd notification (see notify.h).  The protocol is a datagram of text
 * on an AF_UNIX socket; systemd reads the sender's credentials from the
 * socket itself, so nothing but the text has to be sent.  A fresh socket
 * per message keeps this stateless and thread-safe; messages are rare (a
 * watchdog ping every few seconds at most).
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/cleanup.h"
#include "daemon/notify.h"

int kevd_notify(const char *state)
{
	const char *e = getenv("NOTIFY_SOCKET");
	cleanup_close int fd = -1;
	struct sockaddr_un sa;
	socklen_t salen;
	size_t n, len;
	ssize_t sent;

	if (!e || !*e)
		return 0;
	n = strlen(e);
	if (e[0] != '/' && e[0] != '@')
		return -EAFNOSUPPORT;
	/* A path needs its terminating NUL inside sun_path; an abstract name is
	 * exactly as long as its bytes after the leading NUL. */
	if (n >= sizeof(sa.sun_path) + (e[0] == '@'))
		return -ENAMETOOLONG;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, e, n);
	if (e[0] == '@')
		sa.sun_path[0] = '\0';
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (e[0] == '/'));

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	len = strlen(state);
	sent = KEVD_RETRY_EINTR(sendto(fd, state, len, MSG_NOSIGNAL | MSG_DONTWAIT,
				       (const struct sockaddr *)&sa, salen));
	if (sent < 0)
		return -errno;
	/* A datagram goes whole or not at all; anything else is a broken peer. */
	if ((size_t)sent != len)
		return -EIO;
	return 0;
}

int kevd_notifyf(const char *fmt, ...)
{
	cleanup_free char *s = NULL;
	va_list ap;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (r < 0) {
		s = NULL;  /* undefined after a failure */
		return -ENOMEM;
	}
	return kevd_notify(s);
}

/* Strictly decimal: systemd writes these with "%lu", and a value that is
 * not exactly that is better ignored than guessed at. */
static int parse_u64(const char *s, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !(*s >= '0' && *s <= '9'))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

uint64_t kevd_notify_watchdog_usec(void)
{
	const char *pid = getenv("WATCHDOG_PID");
	uint64_t usec, p;

	if (pid) {
		if (parse_u64(pid, &p) < 0 || p != (uint64_t)getpid())
			return 0;
	}
	if (parse_u64(getenv("WATCHDOG_USEC"), &usec) < 0)
		return 0;
	return usec;
}
