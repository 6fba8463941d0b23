/*
 * The server's listeners: the Unix socket (which it creates, replacing a
 * stale one, and removes again) and, optionally, a TCP socket that demands
 * the bearer token and a TCP socket that serves only the metrics.  Each listener is one evhttp on the server's event
 * base; a request that arrives passes the checks that hold for every
 * resource (shutting down, a decodable path, the token, the query string)
 * and is then routed (routes.h).
 */
#ifndef KEVD_LISTENER_H
#define KEVD_LISTENER_H

#include "api/server.h"
#include "common/error.h"

struct kevd_listener;

/* Listens on S's socket_path with socket_mode.  S's strings need not
 * outlive the call. */
int kevd_listener_new_unix(struct kevd_server *srv, const struct kevd_server_settings *s,
			   struct kevd_listener **out, struct kevd_error *err);
/* Listens on S's listen address; requests need the server's token. */
int kevd_listener_new_tcp(struct kevd_server *srv, const struct kevd_server_settings *s,
			  struct kevd_listener **out, struct kevd_error *err);
/* Listens on S's metrics_listen address for Prometheus: /metrics and
 * /v1/health only (kevd_auth_public_path), no token; any other path is
 * 404, so nothing private is reachable through it. */
int kevd_listener_new_metrics(struct kevd_server *srv, const struct kevd_server_settings *s,
			      struct kevd_listener **out, struct kevd_error *err);
/* Stops accepting connections; those open are still served. */
void kevd_listener_stop(struct kevd_listener *l);
/* Closes the listener and its connections; removes a Unix socket's file. */
void kevd_listener_free(struct kevd_listener *l);

#endif
