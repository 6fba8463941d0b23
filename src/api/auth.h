/*
 * The bearer token of the TCP listener.  The Unix socket needs none (its
 * file mode is the access control); a TCP listener demands
 * "Authorization: Bearer <token>" for everything but the two paths a
 * monitoring system scrapes, and serves nothing at all when no token is
 * configured (fail closed).
 */
#ifndef KEVD_AUTH_H
#define KEVD_AUTH_H

#include <stdbool.h>

/* Whether a request for PATH (decoded) carrying the Authorization header
 * AUTHORIZATION (NULL = none) may go on at a listener that demands TOKEN
 * (NULL = none configured). */
bool kevd_auth_allows(const char *token, const char *path, const char *authorization);

/* Whether PATH (decoded) is one of the two a monitoring system scrapes,
 * /metrics and /v1/health: exactly these, not /metrics/ or //v1/health, so
 * that the exception stays as narrow as it reads.  They need no token, and
 * they are all the metrics listener serves. */
bool kevd_auth_public_path(const char *path);

#endif
