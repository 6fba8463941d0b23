/*
 * HTTP plumbing (see http.h).  kevd_http_send() is the single exit: it
 * counts the answer, then hands it to evhttp.  The counters are a small
 * array searched linearly: there are a few dozen (method, code) pairs at
 * most, and only the loop thread touches them.
 */
#include "config.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/keyvalq_struct.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "common/log.h"

/* More (method, code) pairs than kevd can answer with; later ones would go
 * uncounted rather than grow without bound. */
#define KEVD_HTTP_MAX_COUNTS 128

struct kevd_http {
	struct kevd_http_count counts[KEVD_HTTP_MAX_COUNTS];  /* loop thread only */
	size_t ncounts;
};

int kevd_http_new(struct kevd_http **out, struct kevd_error *err)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : kevd_error_sys(err, ENOMEM, "api");
}

void kevd_http_free(struct kevd_http *h)
{
	free(h);
}

const struct kevd_http_count *kevd_http_counts(const struct kevd_http *h, size_t *n)
{
	*n = h->ncounts;
	return h->counts;
}

const char *kevd_http_method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "OTHER";
	}
}

static const char *reason_phrase(int code)
{
	switch (code) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

static void count(struct kevd_http *h, enum evhttp_cmd_type m, int code)
{
	const char *mn = kevd_http_method_name(m);

	for (size_t i = 0; i < h->ncounts; i++)
		if (h->counts[i].code == code && !strcmp(h->counts[i].method, mn)) {
			h->counts[i].count++;
			return;
		}
	if (h->ncounts < KEVD_HTTP_MAX_COUNTS)
		h->counts[h->ncounts++] = (struct kevd_http_count){ mn, code, 1 };
}

void kevd_http_send(struct kevd_http *h, struct evhttp_request *req, int code, const char *type,
		    const void *body, size_t len)
{
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	count(h, evhttp_request_get_command(req), code);
	if (type)
		evhttp_add_header(out, "Content-Type", type);
	/* libevent frames no answer to a CONNECT (it expects a tunnel to
	 * follow); kevd never opens one, so its answers are framed as any. */
	if (evhttp_request_get_command(req) == EVHTTP_REQ_CONNECT) {
		char n[24];

		snprintf(n, sizeof(n), "%zu", body ? len : 0);
		evhttp_add_header(out, "Content-Length", n);
	}
	if (buf && body && len && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add(buf, body, len);
	evhttp_send_reply(req, code, reason_phrase(code), buf);
	if (buf)
		evbuffer_free(buf);
}

void kevd_http_reply(struct kevd_http *h, struct evhttp_request *req, int code, json_t *j)
{
	/* Ten significant digits: a duration in ms or s, not 17 digits of
	 * binary fraction. */
	char *s = j ? json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;

	if ((j && !s) || (!j && code >= 400)) {
		json_decref(j);
		kevd_http_send(h, req, 500, "application/json", "{\"fault_message\":\"out of memory\"}", 33);
		return;
	}
	if (s) {
		size_t n = strlen(s);

		s = realloc(s, n + 2) ?: s;
		s[n] = '\n';
		kevd_http_send(h, req, code, "application/json", s, n + 1);
	} else {
		kevd_http_send(h, req, code, NULL, NULL, 0);
	}
	free(s);
	json_decref(j);
}

/* Error messages quote what the client sent, which need not be UTF-8 (a
 * path like /v1/vms/%ff, or a quote cut mid-character); JSON strings must
 * be, or jansson refuses the message and the error goes out without it.
 * Replaces every byte that does not start a complete, minimal UTF-8
 * sequence with '?'. */
static void utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		size_t i;

		for (i = 1; i < n && (p[i] & 0xc0) == 0x80; i++)
			;
		/* Overlong two-byte forms (0xc0, 0xc1) and beyond U+10FFFF are invalid too. */
		if (n == 0 || i < n || *p == 0xc0 || *p == 0xc1 || *p > 0xf4 ||
		    (*p == 0xe0 && p[1] < 0xa0) || (*p == 0xf0 && p[1] < 0x90) || (*p == 0xf4 && p[1] > 0x8f) ||
		    (*p == 0xed && p[1] > 0x9f)) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

int kevd_http_fail(struct kevd_http *h, struct evhttp_request *req, int code, const char *fmt, ...)
{
	char msg[KEVD_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_sanitize(msg);
	kevd_debug("api: %s %s -> %d: %s", kevd_http_method_name(evhttp_request_get_command(req)),
		   evhttp_request_get_uri(req), code, msg);
	kevd_http_reply(h, req, code, json_pack("{s:s}", "fault_message", msg));
	return -1;
}

const char *kevd_http_content_type(struct evhttp_request *req)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
}

const void *kevd_http_body(struct evhttp_request *req, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);

	*len = evbuffer_get_length(in);
	return *len ? (const void *)evbuffer_pullup(in, (ssize_t)*len) : "";
}

int kevd_http_query_u64(struct kevd_http *h, struct evhttp_request *req, struct evkeyvalq *q, const char *key,
			bool *present, uint64_t *out)
{
	const char *v = evhttp_find_header(q, key);
	bool hex;
	char *end;

	*present = v != NULL;
	if (!v)
		return 0;
	/* Decimal, or hex after 0x: never octal, whatever a leading 0 says. */
	hex = v[0] == '0' && (v[1] == 'x' || v[1] == 'X');
	errno = 0;
	*out = strtoull(hex ? v + 2 : v, &end, hex ? 16 : 10);
	if (errno || end == (hex ? v + 2 : v) || *end || v[0] == '-' || v[0] == '+' || v[0] == ' ')
		return kevd_http_fail(h, req, 400, "query parameter '%s' must be a number (decimal or 0x hex), not '%s'",
				      key, v);
	return 0;
}
