/*
 * The value syntaxes of kevd.conf (see confvalue.h): strict digits, sizes
 * with a K/M/G suffix, ports and listen addresses.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/confvalue.h"

/* Digits only: strtoull alone would take leading blanks, a sign (and wrap a
 * negative number around) and, for base 8, nothing stricter than base 10. */
bool kevd_confvalue_digits(const char *s, int base, uint64_t *out, const char **rest)
{
	unsigned long long v;
	char *end;

	if (!(*s >= '0' && *s <= (base == 8 ? '7' : '9')))
		return false;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno)
		return false;
	*out = v;
	*rest = end;
	return true;
}

/* "64K" -> "64K"; sizes are printed in the largest unit that divides them. */
void kevd_confvalue_format_size(char *buf, size_t len, uint64_t v)
{
	if (v && v % GIB == 0)
		snprintf(buf, len, "%lluG", (unsigned long long)(v / GIB));
	else if (v && v % MIB == 0)
		snprintf(buf, len, "%lluM", (unsigned long long)(v / MIB));
	else if (v && v % KIB == 0)
		snprintf(buf, len, "%lluK", (unsigned long long)(v / KIB));
	else
		snprintf(buf, len, "%llu", (unsigned long long)v);
}

int kevd_confvalue_size(const char *s, uint64_t *out)
{
	const char *rest;
	uint64_t v, mult = 1;

	if (!kevd_confvalue_digits(s, 10, &v, &rest))
		return -EINVAL;
	if (*rest == 'K')
		mult = KIB;
	else if (*rest == 'M')
		mult = MIB;
	else if (*rest == 'G')
		mult = GIB;
	else if (*rest)
		return -EINVAL;
	if (*rest && rest[1])
		return -EINVAL;
	if (__builtin_mul_overflow(v, mult, out))
		return -ERANGE;
	return 0;
}

static int parse_port(const char *s, uint16_t *port)
{
	const char *rest;
	uint64_t v;

	if (!kevd_confvalue_digits(s, 10, &v, &rest) || *rest || v < 1 || v > 65535)
		return -EINVAL;
	*port = (uint16_t)v;
	return 0;
}

int kevd_config_listen_addr(const char *listen, struct sockaddr_storage *addr, socklen_t *len,
			    struct kevd_error *err)
{
	struct sockaddr_storage ss;
	char host[INET6_ADDRSTRLEN];
	const char *colon, *h = listen;
	size_t hlen;
	uint16_t port;

	memset(&ss, 0, sizeof(ss));
	if (*listen == '[') {
		const char *close = strchr(listen, ']');

		if (!close || close[1] != ':')
			goto bad;
		h = listen + 1;
		hlen = (size_t)(close - h);
		colon = close + 1;
	} else {
		colon = strchr(listen, ':');
		/* A second colon means an IPv6 address without the brackets that
		 * keep it apart from the port. */
		if (!colon || strchr(colon + 1, ':'))
			goto bad;
		hlen = (size_t)(colon - listen);
	}
	if (hlen == 0 || hlen >= sizeof(host) || parse_port(colon + 1, &port) < 0)
		goto bad;
	memcpy(host, h, hlen);
	host[hlen] = '\0';
	if (*listen == '[') {
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;

		if (inet_pton(AF_INET6, host, &a6->sin6_addr) != 1)
			goto bad;
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons(port);
		if (len)
			*len = sizeof(*a6);
	} else {
		struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;

		if (inet_pton(AF_INET, host, &a4->sin_addr) != 1)
			goto bad;
		a4->sin_family = AF_INET;
		a4->sin_port = htons(port);
		if (len)
			*len = sizeof(*a4);
	}
	if (addr)
		*addr = ss;
	return 0;
bad:
	return kevd_error_set(err, EINVAL, "'%s' is not ADDR:PORT (an IPv4 address or a [bracketed] IPv6 address, and a port in 1..65535)",
			      listen);
}
