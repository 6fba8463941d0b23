/*
 * Listeners (see listener.h).  A listener is an evhttp that owns its
 * listening socket and its connections; the server owns the listener.
 * on_request() is the evhttp callback for every request: it makes the
 * checks that come before any resource, in the order whose answers the
 * API documents (503 while shutting down, 400 for a path that does not
 * decode, 401 without the token, 400 for a bad query string), then hands
 * the request to the router.
 */
#include "config.h"

#include <errno.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "api/auth.h"
#include "api/conns.h"
#include "api/http.h"
#include "api/listener.h"
#include "api/routes.h"
#include "api/server_internal.h"
#include "common/cleanup.h"
#include "common/log.h"

/* The type libevent 2.1 gives a method it does not know (its private
 * EVHTTP_REQ_UNKNOWN_); tests/test_listener.c notices if that changes. */
#define REQ_UNKNOWN (1 << 15)
/* evhttp answers a method outside its allowed set itself (501, HTML);
 * allowing them all, unknown ones included, lets the router answer 405
 * with Allow and a JSON body. */
#define ALL_METHODS (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | \
		     EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | \
		     EVHTTP_REQ_PATCH | REQ_UNKNOWN)
#define MAX_HEADERS_BYTES 16384
#define BACKLOG 128

struct kevd_listener {
	struct kevd_server *srv;            /* borrowed: the owner */
	struct evhttp *http;                /* owned: the socket and its connections */
	struct evhttp_bound_socket *bound;  /* owned by http; NULL once stopped */
	struct kevd_conns *conns;           /* owned: http's connections counted and capped */
	char *socket_path;                  /* owned; a Unix socket's file, removed on free */
	enum kind { UNIX_API, TCP_API, TCP_METRICS } kind;
};

/* Whether REQ carries Content-Length headers that disagree.  libevent
 * frames the body by the first; a proxy in front may have used another,
 * so the bytes that follow are not known to be a request of their own
 * (request smuggling).  RFC 9112 6.3: answer 400 and close. */
static bool conflicting_lengths(struct evhttp_request *req)
{
	const struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *first = NULL;
	const struct evkeyval *kv;

	TAILQ_FOREACH(kv, h, next) {
		if (strcasecmp(kv->key, "Content-Length"))
			continue;
		if (first && strcmp(first, kv->value))
			return true;
		first = kv->value;
	}
	return false;
}

/* Whether libevent left REQ's body unread: it reads none for HEAD, TRACE
 * and methods it does not know, whatever the headers say, and would take
 * the body's bytes for the next request. */
static bool body_left_unread(struct evhttp_request *req)
{
	const struct evkeyvalq *h = evhttp_request_get_input_headers(req);
	const char *len = evhttp_find_header(h, "Content-Length");
	int m = (int)evhttp_request_get_command(req);

	if (m != EVHTTP_REQ_HEAD && m != EVHTTP_REQ_TRACE && m != REQ_UNKNOWN)
		return false;
	return evhttp_find_header(h, "Transfer-Encoding") || (len && strspn(len, "0 ") != strlen(len));
}

/* Makes sure REQ's connection closes after the answer where keeping it
 * would read bytes that are no request as one, and answer them too.  A
 * CONNECT's connection libevent keeps whatever Connection header either
 * side sends (it expects a tunnel), so kevd closes that one itself. */
static void close_if_unframed(struct kevd_listener *l, struct evhttp_request *req)
{
	bool connect = evhttp_request_get_command(req) == EVHTTP_REQ_CONNECT;

	if (!connect && !body_left_unread(req))
		return;
	evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
	if (connect)
		kevd_conns_close_after(l->conns, req);
}

/* REQ's target as a URI.  libevent parses a CONNECT's target as
 * host:port, the form CONNECT is meant to have, which leaves no path; it
 * is parsed here like any other method's, so that CONNECT /v1/vms gets the
 * 405 other methods get.  *OWNED is what the caller frees. */
static const struct evhttp_uri *target(struct evhttp_request *req, struct evhttp_uri **owned)
{
	const char *t = evhttp_request_get_uri(req);

	*owned = NULL;
	if (evhttp_request_get_command(req) != EVHTTP_REQ_CONNECT)
		return evhttp_request_get_evhttp_uri(req);
	if (t && t[0] == '/')
		*owned = evhttp_uri_parse_with_flags(t, EVHTTP_URI_NONCONFORMANT);
	return *owned;
}

static void uri_freep(struct evhttp_uri **u)
{
	if (*u)
		evhttp_uri_free(*u);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct kevd_listener *l = arg;
	struct kevd_server *srv = l->srv;
	__attribute__((cleanup(uri_freep))) struct evhttp_uri *owned = NULL;
	const struct evhttp_uri *uri = target(req, &owned);
	const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	cleanup_free char *path = NULL;
	struct evkeyvalq q;

	TAILQ_INIT(&q);
	close_if_unframed(l, req);
	if (srv->shutting_down) {
		kevd_http_fail(srv->http, req, 503, "kevd is shutting down");
		return;
	}
	if (conflicting_lengths(req)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
		kevd_http_fail(srv->http, req, 400, "conflicting Content-Length headers");
		return;
	}
	if (!raw && evhttp_request_get_command(req) == EVHTTP_REQ_CONNECT) {
		kevd_http_fail(srv->http, req, 400, "CONNECT needs a path here: kevd is not a proxy");
		return;
	}
	if (!raw || !(path = evhttp_uridecode(raw, 0, NULL))) {
		kevd_http_fail(srv->http, req, 400, "bad request URI");
		return;
	}
	if (l->kind == TCP_METRICS && !kevd_auth_public_path(path)) {
		kevd_http_fail(srv->http, req, 404, "this listener serves only /metrics and /v1/health");
		return;
	}
	if (l->kind == TCP_API && !kevd_auth_allows(srv->token, path, auth)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
		kevd_http_fail(srv->http, req, 401, "this listener needs 'Authorization: Bearer <token>'");
		return;
	}
	if (query && evhttp_parse_query_str(query, &q) < 0) {
		evhttp_clear_headers(&q);
		kevd_http_fail(srv->http, req, 400, "bad query string");
		return;
	}
	kevd_routes_dispatch(srv, req, path, raw, &q);
	evhttp_clear_headers(&q);
}

/* Binds the Unix socket at PATH.  A socket file left by a kevd that died
 * is removed if nobody answers on it; anything else there is an error. */
static int bind_unix(const char *path, unsigned mode, struct kevd_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path))
		return kevd_error_set(err, ENAMETOOLONG, "api socket '%s': path too long", path);
	strcpy(sa.sun_path, path);
	if (lstat(path, &st) == 0) {
		cleanup_close int probe = -1;

		if (!S_ISSOCK(st.st_mode))
			return kevd_error_set(err, EEXIST, "api socket '%s': exists and is not a socket", path);
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return kevd_error_set(err, EADDRINUSE, "api socket '%s': another kevd is listening", path);
		kevd_info("api: removing stale socket '%s'", path);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return kevd_error_sys(err, errno, "api socket '%s'", path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return kevd_error_sys(err, errno, "api socket '%s': bind", path);
	if (chmod(path, mode) < 0 || listen(fd, BACKLOG) < 0) {
		int e = errno;

		unlink(path);
		return kevd_error_sys(err, e, "api socket '%s'", path);
	}
	return kevd_steal_fd(&fd);
}

/* WHAT ("listen", "metrics listen") and NAME (as configured) name it in
 * messages. */
static int bind_tcp(const char *what, const char *name, const struct sockaddr_storage *addr, socklen_t len,
		    struct kevd_error *err)
{
	cleanup_close int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;

	if (fd < 0)
		return kevd_error_sys(err, errno, "%s '%s'", what, name);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)addr, len) < 0 || listen(fd, BACKLOG) < 0)
		return kevd_error_sys(err, errno, "%s '%s'", what, name);
	return kevd_steal_fd(&fd);
}

/* Serves the listening socket *FD with a new evhttp, which takes the fd
 * (*FD becomes -1) once it accepts on it.  NAME names the listener in
 * messages. */
static int serve(struct kevd_listener *l, int *fd, const char *name, struct kevd_error *err)
{
	const struct kevd_server_settings *st = &l->srv->settings;
	int r;

	l->http = evhttp_new(l->srv->base);
	if (!l->http)
		return kevd_error_sys(err, ENOMEM, "api: evhttp_new");
	r = kevd_conns_new(l->srv->base, l->http, name, st->max_connections, &l->conns, err);
	if (r < 0)
		return r;
	evhttp_set_allowed_methods(l->http, ALL_METHODS);
	evhttp_set_gencb(l->http, on_request, l);
	evhttp_set_max_headers_size(l->http, MAX_HEADERS_BYTES);
	/* Bodies between the API limit and this cap get a JSON 413 from
	 * us; beyond it libevent refuses them itself before buffering. */
	evhttp_set_max_body_size(l->http, (ev_ssize_t)(st->max_body_bytes * 4));
	evhttp_set_timeout(l->http, (int)st->request_timeout_s);
	l->bound = evhttp_accept_socket_with_handle(l->http, *fd);
	if (!l->bound)
		return kevd_error_set(err, EIO, "%s: cannot accept on the listening socket", name);
	*fd = -1;
	kevd_conns_watch(l->conns, evhttp_bound_socket_get_listener(l->bound));
	return 0;
}

static struct kevd_listener *listener_alloc(struct kevd_server *srv, enum kind kind, struct kevd_error *err)
{
	struct kevd_listener *l = calloc(1, sizeof(*l));

	if (!l) {
		kevd_error_sys(err, ENOMEM, "api");
		return NULL;
	}
	l->srv = srv;
	l->kind = kind;
	return l;
}

int kevd_listener_new_unix(struct kevd_server *srv, const struct kevd_server_settings *s,
			   struct kevd_listener **out, struct kevd_error *err)
{
	struct kevd_listener *l = listener_alloc(srv, UNIX_API, err);
	cleanup_close int fd = -1;
	char name[sizeof(((struct sockaddr_un *)0)->sun_path) + 32];
	int r;

	if (!l)
		return -ENOMEM;
	fd = bind_unix(s->socket_path, s->socket_mode, err);
	if (fd < 0) {
		kevd_listener_free(l);
		return fd;
	}
	l->socket_path = strdup(s->socket_path);
	if (!l->socket_path) {
		unlink(s->socket_path);
		kevd_listener_free(l);
		return kevd_error_sys(err, ENOMEM, "api socket '%s'", s->socket_path);
	}
	snprintf(name, sizeof(name), "api socket '%s'", s->socket_path);
	r = serve(l, &fd, name, err);
	if (r < 0) {
		kevd_listener_free(l);
		return r;
	}
	*out = l;
	return 0;
}

static int new_tcp(struct kevd_server *srv, enum kind kind, const char *what, const char *name,
		   const struct sockaddr_storage *addr, socklen_t len, struct kevd_listener **out,
		   struct kevd_error *err)
{
	struct kevd_listener *l = listener_alloc(srv, kind, err);
	cleanup_close int fd = -1;
	char full[128];
	int r;

	if (!l)
		return -ENOMEM;
	snprintf(full, sizeof(full), "%s '%s'", what, name);
	fd = bind_tcp(what, name, addr, len, err);
	r = fd < 0 ? fd : serve(l, &fd, full, err);
	if (r < 0) {
		kevd_listener_free(l);
		return r;
	}
	*out = l;
	return 0;
}

int kevd_listener_new_tcp(struct kevd_server *srv, const struct kevd_server_settings *s,
			  struct kevd_listener **out, struct kevd_error *err)
{
	return new_tcp(srv, TCP_API, "listen", s->listen, &s->listen_addr, s->listen_len, out, err);
}

int kevd_listener_new_metrics(struct kevd_server *srv, const struct kevd_server_settings *s,
			      struct kevd_listener **out, struct kevd_error *err)
{
	return new_tcp(srv, TCP_METRICS, "metrics listen", s->metrics_listen, &s->metrics_addr, s->metrics_len,
		       out, err);
}

void kevd_listener_stop(struct kevd_listener *l)
{
	if (l && l->http && l->bound) {
		kevd_conns_unwatch(l->conns);
		evhttp_del_accept_socket(l->http, l->bound);
		l->bound = NULL;
	}
}

void kevd_listener_free(struct kevd_listener *l)
{
	if (!l)
		return;
	if (l->conns)
		kevd_conns_unwatch(l->conns);
	/* Before the counts: freeing the evhttp closes its connections, and
	 * each close is reported to them. */
	if (l->http)
		evhttp_free(l->http);
	kevd_conns_free(l->conns);
	if (l->socket_path) {
		unlink(l->socket_path);
		free(l->socket_path);
	}
	free(l);
}
