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

#endif
