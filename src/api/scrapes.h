/*
 * Scrapes of /metrics that arrive in the same turn of the event loop share
 * one render.  A render reads every VM and formats some 190 KB for 50 of
 * them; Prometheus servers, dashboards and `watch curl` scraping at once
 * would otherwise each pay it on the loop thread, one after another.
 *
 * A scrape is queued, and the render runs from an event made active when
 * the first one is queued: libevent runs it after the callbacks of every
 * connection that was ready in the same turn, so each scrape it answers
 * arrived before the render started and none is answered with older data.
 * Loop thread only.
 */
#ifndef KEVD_SCRAPES_H
#define KEVD_SCRAPES_H

#include <event2/event.h>
#include <event2/http.h>
#include <stdint.h>

#include "common/error.h"

struct kevd_http;
struct kevd_scrapes;

/* Renders the text of one scrape into a malloc'd *TEXT of *LEN bytes; a
 * negative errno on failure. */
typedef int (*kevd_scrapes_render_fn)(void *arg, char **text, size_t *len);

struct kevd_scrapes_stats {
	uint64_t renders;  /* renders run, failed ones included */
};

/* Answers through HTTP with the Content-Type of the text format. */
int kevd_scrapes_new(struct event_base *base, struct kevd_http *http, kevd_scrapes_render_fn render, void *arg,
		     struct kevd_scrapes **out, struct kevd_error *err);
/* Frees S.  Scrapes still queued are dropped: the loop has stopped, so no
 * answer would leave, and their requests are freed with their
 * connections when the listeners are.  (A stop by signal runs the loop a
 * while longer first, and that answers them.) */
void kevd_scrapes_free(struct kevd_scrapes *s);

/* Queues REQ for the next render (answered 500 at once when it cannot be
 * queued). */
void kevd_scrapes_add(struct kevd_scrapes *s, struct evhttp_request *req);
/* Renders now for the scrapes queued, if any. */
void kevd_scrapes_flush(struct kevd_scrapes *s);

void kevd_scrapes_stats(const struct kevd_scrapes *s, struct kevd_scrapes_stats *out);

#endif
