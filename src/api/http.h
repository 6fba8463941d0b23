/*
 * HTTP plumbing of the control plane: the only way an answer leaves kevd.
 * Every answer goes through kevd_http_send() (directly or through
 * kevd_http_reply()/kevd_http_fail()), so each one is counted once by
 * method and status (kevd_api_requests_total), and every error carries a
 * JSON {"fault_message": ...} that is valid UTF-8 whatever the client sent.
 * Also the small readers of a request that handlers share: content type,
 * body, numbers in the query string.  Loop thread only.
 */
#ifndef KEVD_HTTP_H
#define KEVD_HTTP_H

#include <event2/http.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct evkeyvalq;

/* The answers of one server, counted. */
struct kevd_http;

/* One counter of kevd_api_requests_total. */
struct kevd_http_count {
	const char *method;  /* static string, "GET" ... "OTHER" */
	int code;
	uint64_t count;
};

int kevd_http_new(struct kevd_http **out, struct kevd_error *err);
void kevd_http_free(struct kevd_http *h);

/* The counters so far, in the order each (method, code) first appeared. */
const struct kevd_http_count *kevd_http_counts(const struct kevd_http *h, size_t *n);

/* "GET", "POST", ... as in kevd_api_requests_total; "OTHER" for the rest. */
const char *kevd_http_method_name(enum evhttp_cmd_type m);

/* Sends BODY (LEN bytes, none for HEAD) with CODE and, if TYPE is not
 * NULL, that Content-Type. */
void kevd_http_send(struct kevd_http *h, struct evhttp_request *req, int code, const char *type,
		    const void *body, size_t len);
/* Sends J (taking it; NULL = no body) as application/json.  A J that cannot
 * be formatted, or an error without one, becomes a 500 "out of memory". */
void kevd_http_reply(struct kevd_http *h, struct evhttp_request *req, int code, json_t *j);
/* Answers CODE with {"fault_message": FMT...}; returns -1, so that a
 * handler can end with `return kevd_http_fail(...)`. */
int kevd_http_fail(struct kevd_http *h, struct evhttp_request *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

const char *kevd_http_content_type(struct evhttp_request *req);
/* The request body, contiguous; "" when there is none. */
const void *kevd_http_body(struct evhttp_request *req, size_t *len);
/* Query parameter KEY of Q as a number (decimal, or hex after 0x): 0 with
 * *PRESENT false if absent; a malformed one fails the request (400) and
 * returns -1. */
int kevd_http_query_u64(struct kevd_http *h, struct evhttp_request *req, struct evkeyvalq *q, const char *key,
			bool *present, uint64_t *out);

#endif
