/*
 * Shared renders of /metrics (see scrapes.h).
 */
#include "config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/scrapes.h"

#define PROM_TEXT_TYPE "text/plain; version=0.0.4; charset=utf-8"

struct kevd_scrapes {
	struct kevd_http *http;           /* borrowed */
	kevd_scrapes_render_fn render;
	void *arg;
	struct event *due;                /* owned: active while scrapes are queued */
	struct evhttp_request **queued;   /* owned array; the requests are their listeners' */
	size_t n, cap;
	struct kevd_scrapes_stats stats;
};

static void on_due(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	kevd_scrapes_flush(arg);
}

int kevd_scrapes_new(struct event_base *base, struct kevd_http *http, kevd_scrapes_render_fn render, void *arg,
		     struct kevd_scrapes **out, struct kevd_error *err)
{
	struct kevd_scrapes *s = calloc(1, sizeof(*s));

	if (!s)
		return kevd_error_set(err, ENOMEM, "api: out of memory");
	s->http = http;
	s->render = render;
	s->arg = arg;
	s->due = event_new(base, -1, 0, on_due, s);
	if (!s->due) {
		free(s);
		return kevd_error_set(err, ENOMEM, "api: event_new");
	}
	*out = s;
	return 0;
}

void kevd_scrapes_free(struct kevd_scrapes *s)
{
	if (!s)
		return;
	event_free(s->due);
	free(s->queued);
	free(s);
}

void kevd_scrapes_add(struct kevd_scrapes *s, struct evhttp_request *req)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 8;
		struct evhttp_request **q = realloc(s->queued, cap * sizeof(*q));

		if (!q) {
			kevd_http_fail(s->http, req, 500, "out of memory");
			return;
		}
		s->queued = q;
		s->cap = cap;
	}
	s->queued[s->n++] = req;
	if (s->n == 1)
		event_active(s->due, EV_TIMEOUT, 0);
}

void kevd_scrapes_flush(struct kevd_scrapes *s)
{
	char *text = NULL;
	size_t len = 0, n = s->n;
	int r;

	if (!n)
		return;
	/* Taken off the queue first: an answer can run callbacks (a
	 * connection closed once answered) but none of them scrapes. */
	s->n = 0;
	event_del(s->due);
	r = s->render(s->arg, &text, &len);
	s->stats.renders++;
	for (size_t i = 0; i < n; i++) {
		if (r < 0)
			kevd_http_fail(s->http, s->queued[i], 500, "cannot render the metrics: %s", strerror(-r));
		else
			kevd_http_send(s->http, s->queued[i], 200, PROM_TEXT_TYPE, text, len);
	}
	free(text);
}

void kevd_scrapes_stats(const struct kevd_scrapes *s, struct kevd_scrapes_stats *out)
{
	*out = s->stats;
}
