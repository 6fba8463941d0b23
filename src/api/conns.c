/*
 * Connections of a listener (see conns.h).
 *
 * libevent 2.1's evhttp tells nobody when it accepts a connection, keeps
 * no count, and has no limit.  Two of its hooks are enough: it asks for
 * the bufferevent of every connection it accepts (evhttp_set_bevcb), and
 * it calls a connection's close callback whenever that connection's
 * socket is closed, by whatever path.  So on_new_bev() makes the
 * bufferevent, keeps a reference to it and queues it; on_after(), an
 * event made active there, runs once the accept callback has returned and
 * finds the evhttp_connection through the bufferevent (evhttp makes the
 * connection its bufferevent's callback argument, and clears it when it
 * frees the connection: the reference we hold keeps that readable).  The
 * connection is then counted, with a close callback that uncounts it, or
 * refused.  No request has been read from it by then: the accept and
 * on_after() run in the same turn of the loop.
 *
 * A failed accept() calls on_accept_error(), which disables the
 * evconnlistener and arms a timer that enables it again; without that,
 * libevent retries at once while the error lasts (with EMFILE, hundreds of
 * thousands of times a second, each logged).
 */
#include "config.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include "api/conns.h"
#include "common/log.h"

/* The most written to a connection's socket in one turn of the loop. */
#define KEVD_CONNS_MAX_SINGLE_WRITE (1 << 20)

/* A counted connection. */
struct conn {
	struct kevd_conns *owner;         /* borrowed */
	struct evhttp_connection *evcon;  /* borrowed: evhttp owns it */
	bool close_now;                   /* its answer is out and it is to be closed */
	LIST_ENTRY(conn) link;
};

/* An accepted connection's bufferevent, not yet looked at. */
struct pending {
	struct bufferevent *bev;  /* one reference is ours */
	STAILQ_ENTRY(pending) link;
};

struct kevd_conns {
	struct evhttp *http;            /* borrowed */
	char *name;                     /* owned */
	unsigned max, open;
	uint64_t refused;
	LIST_HEAD(, conn) conns;        /* owned: the counted connections */
	STAILQ_HEAD(, pending) pending; /* owned: accepted, in order */
	struct event *after;            /* owned: on_after() */
	struct evconnlistener *lev;     /* borrowed; NULL unless watched */
	struct event *resume;           /* owned: ends a pause in accepting */
	unsigned pause_ms;              /* the next pause */
	char refusal[512];              /* the whole answer to a refused connection */
	size_t refusal_len;
	LIST_ENTRY(kevd_conns) all;
};

/* Every kevd_conns, so that on_accept_error() finds its own: libevent
 * hands it the listener's argument, which evhttp set to the evhttp.  Loop
 * thread only. */
static LIST_HEAD(, kevd_conns) every = LIST_HEAD_INITIALIZER(every);

static void on_close(struct evhttp_connection *evcon, void *arg)
{
	struct conn *k = arg;

	evhttp_connection_set_closecb(evcon, NULL, NULL);
	k->owner->open--;
	LIST_REMOVE(k, link);
	free(k);
}

/* Answers EVCON's client 503 without reading its request, and closes it. */
static void refuse(struct kevd_conns *c, struct evhttp_connection *evcon, struct bufferevent *bev)
{
	int fd = bufferevent_getfd(bev);
	char sink[4096];

	c->refused++;
	kevd_warn("%s: %u connections open, as many as max_connections allows: refusing new ones", c->name, c->open);
	if (fd >= 0) {
		/* Bytes the client sent already are read first: a socket closed
		 * with unread input resets the connection, and a reset can
		 * destroy the answer before the client reads it. */
		for (int i = 0; i < 16 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; i++)
			;
		if (send(fd, c->refusal, c->refusal_len, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
			/* the client is gone; it is closed below all the same */
		}
	}
	evhttp_connection_free(evcon);
}

/* Counts or refuses the connection whose bufferevent is BEV. */
static void adopt(struct kevd_conns *c, struct bufferevent *bev)
{
	struct evhttp_connection *evcon;
	void *arg = NULL;
	struct conn *k;

	bufferevent_getcb(bev, NULL, NULL, NULL, &arg);
	evcon = arg;
	if (!evcon)
		return;  /* evhttp failed to set it up, or freed it already */
	if (c->open >= c->max) {
		refuse(c, evcon, bev);
		return;
	}
	k = calloc(1, sizeof(*k));
	if (!k) {
		kevd_warn("%s: out of memory: closing a new connection", c->name);
		evhttp_connection_free(evcon);
		return;
	}
	k->owner = c;
	k->evcon = evcon;
	LIST_INSERT_HEAD(&c->conns, k, link);
	c->open++;
	evhttp_connection_set_closecb(evcon, on_close, k);
}

static void on_after(evutil_socket_t fd, short what, void *arg)
{
	struct kevd_conns *c = arg;
	struct pending *p;
	struct conn *k, *next;

	(void)fd;
	(void)what;
	while ((p = STAILQ_FIRST(&c->pending))) {
		STAILQ_REMOVE_HEAD(&c->pending, link);
		adopt(c, p->bev);
		bufferevent_decref(p->bev);
		free(p);
	}
	/* Freeing a connection unlinks only that one (on_close). */
	for (k = LIST_FIRST(&c->conns); k; k = next) {
		next = LIST_NEXT(k, link);
		if (k->close_now)
			evhttp_connection_free(k->evcon);
	}
}

/* evhttp's bufferevent callback: runs inside the accept, for each
 * connection accepted. */
static struct bufferevent *on_new_bev(struct event_base *base, void *arg)
{
	struct kevd_conns *c = arg;
	struct pending *p = malloc(sizeof(*p));

	c->pause_ms = KEVD_CONNS_PAUSE_MIN_MS;
	if (!p) {
		kevd_warn("%s: out of memory: a new connection is not counted", c->name);
		return NULL;  /* evhttp makes a bufferevent of its own */
	}
	/* No BEV_OPT_CLOSE_ON_FREE, as evhttp's own: evhttp closes the socket. */
	p->bev = bufferevent_socket_new(base, -1, 0);
	if (!p->bev) {
		free(p);
		return NULL;
	}
	/* libevent writes at most 16 KiB per turn of the loop by default: a
	 * 190 KB scrape took 12 turns, each with its epoll_wait and
	 * epoll_ctl calls.  The socket takes what it has room for. */
	bufferevent_set_max_single_write(p->bev, KEVD_CONNS_MAX_SINGLE_WRITE);
	bufferevent_incref(p->bev);
	STAILQ_INSERT_TAIL(&c->pending, p, link);
	event_active(c->after, EV_TIMEOUT, 0);
	return p->bev;
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct kevd_conns *c = arg;

	(void)fd;
	(void)what;
	if (c->lev)
		evconnlistener_enable(c->lev);
}

static void on_accept_error(struct evconnlistener *lev, void *arg)
{
	int e = EVUTIL_SOCKET_ERROR();
	struct timeval tv;
	struct kevd_conns *c;

	LIST_FOREACH(c, &every, all)
		if (c->http == arg && c->lev == lev)
			break;
	if (!c)
		return;
	evconnlistener_disable(lev);
	tv.tv_sec = c->pause_ms / 1000;
	tv.tv_usec = (suseconds_t)(c->pause_ms % 1000) * 1000;
	evtimer_add(c->resume, &tv);
	kevd_warn("%s: accept: %s; accepting again in %u ms", c->name, strerror(e), c->pause_ms);
	c->pause_ms = c->pause_ms * 2 > KEVD_CONNS_PAUSE_MAX_MS ? KEVD_CONNS_PAUSE_MAX_MS : c->pause_ms * 2;
}

static void make_refusal(struct kevd_conns *c)
{
	char body[256];
	int n = snprintf(body, sizeof(body),
			 "{\"fault_message\":\"too many connections: this listener serves at most %u at once "
			 "([api] max_connections); try again later\"}\n", c->max);
	int m = snprintf(c->refusal, sizeof(c->refusal),
			 "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
			 "Content-Length: %d\r\nConnection: close\r\nRetry-After: 1\r\n\r\n%s", n, body);

	c->refusal_len = (size_t)m;
}

int kevd_conns_new(struct event_base *base, struct evhttp *http, const char *name, unsigned max,
		   struct kevd_conns **out, struct kevd_error *err)
{
	struct kevd_conns *c = calloc(1, sizeof(*c));

	if (!c)
		return kevd_error_sys(err, ENOMEM, "%s", name);
	LIST_INIT(&c->conns);
	STAILQ_INIT(&c->pending);
	LIST_INSERT_HEAD(&every, c, all);
	c->http = http;
	c->max = max ? max : 1;
	c->pause_ms = KEVD_CONNS_PAUSE_MIN_MS;
	c->name = strdup(name);
	c->after = event_new(base, -1, 0, on_after, c);
	c->resume = evtimer_new(base, on_resume, c);
	if (!c->name || !c->after || !c->resume) {
		kevd_conns_free(c);
		return kevd_error_sys(err, ENOMEM, "%s", name);
	}
	make_refusal(c);
	evhttp_set_bevcb(http, on_new_bev, c);
	*out = c;
	return 0;
}

void kevd_conns_free(struct kevd_conns *c)
{
	struct pending *p;
	struct conn *k;

	if (!c)
		return;
	kevd_conns_unwatch(c);
	while ((p = STAILQ_FIRST(&c->pending))) {
		STAILQ_REMOVE_HEAD(&c->pending, link);
		bufferevent_decref(p->bev);
		free(p);
	}
	/* None left once the evhttp is freed; any other would outlive us. */
	while ((k = LIST_FIRST(&c->conns))) {
		evhttp_connection_set_closecb(k->evcon, NULL, NULL);
		LIST_REMOVE(k, link);
		free(k);
	}
	if (c->after)
		event_free(c->after);
	if (c->resume)
		event_free(c->resume);
	LIST_REMOVE(c, all);
	free(c->name);
	free(c);
}

void kevd_conns_watch(struct kevd_conns *c, struct evconnlistener *lev)
{
	c->lev = lev;
	evconnlistener_set_error_cb(lev, on_accept_error);
}

void kevd_conns_unwatch(struct kevd_conns *c)
{
	if (c->resume)
		event_del(c->resume);
	if (c->lev)
		evconnlistener_set_error_cb(c->lev, NULL);
	c->lev = NULL;
}

static void on_answered(struct evhttp_request *req, void *arg)
{
	struct conn *k = arg;
	struct evbuffer *in = bufferevent_get_input(evhttp_connection_get_bufferevent(k->evcon));

	(void)req;
	/* Whatever followed the request is not read as another one. */
	evbuffer_drain(in, evbuffer_get_length(in));
	k->close_now = true;
	event_active(k->owner->after, EV_TIMEOUT, 0);
}

void kevd_conns_close_after(struct kevd_conns *c, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct conn *k;

	LIST_FOREACH(k, &c->conns, link)
		if (k->evcon == evcon) {
			evhttp_request_set_on_complete_cb(req, on_answered, k);
			return;
		}
}

unsigned kevd_conns_open(const struct kevd_conns *c)
{
	return c->open;
}

uint64_t kevd_conns_refused(const struct kevd_conns *c)
{
	return c->refused;
}
