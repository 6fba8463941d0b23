/*
 * The connections of one listener (one evhttp): how many are open, a
 * refusal of those beyond [api] max_connections, a pause in accepting
 * when accept() fails (EMFILE: no descriptor left, and libevent would
 * retry at once, for ever), and a close after the answer where libevent
 * would keep a connection open although the request asked otherwise
 * (CONNECT).  Loop thread only.
 *
 * A refused connection is answered at once, before its request is read:
 * 503 with {"fault_message": "... too many connections ..."} and
 * Connection: close, then closed.  The connections already open are not
 * touched.
 */
#ifndef KEVD_CONNS_H
#define KEVD_CONNS_H

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <stdint.h>

#include "common/error.h"

/* The first pause after a failed accept(); each failure in a row doubles
 * it up to the most, and an accepted connection starts again at the first. */
#define KEVD_CONNS_PAUSE_MIN_MS 100
#define KEVD_CONNS_PAUSE_MAX_MS 1000

struct kevd_conns;

/* Counts and caps HTTP's connections at MAX.  NAME ("api socket
 * '/run/kevd/kevd.sock'") starts the messages logged.  HTTP must not have
 * a bufferevent callback of its own.  Free with kevd_conns_free() after
 * evhttp_free(HTTP): freeing HTTP closes its connections, which reports
 * each to C. */
int kevd_conns_new(struct event_base *base, struct evhttp *http, const char *name, unsigned max,
		   struct kevd_conns **out, struct kevd_error *err);
void kevd_conns_free(struct kevd_conns *c);

/* Pauses LEV (HTTP's listener) for a while whenever accept() fails.
 * kevd_conns_unwatch() before LEV is freed. */
void kevd_conns_watch(struct kevd_conns *c, struct evconnlistener *lev);
void kevd_conns_unwatch(struct kevd_conns *c);

/* Closes REQ's connection once its answer has been sent, and reads
 * nothing more from it. */
void kevd_conns_close_after(struct kevd_conns *c, struct evhttp_request *req);

/* Connections open now (refused ones never count). */
unsigned kevd_conns_open(const struct kevd_conns *c);
/* Connections refused so far. */
uint64_t kevd_conns_refused(const struct kevd_conns *c);

#endif
