/* API request bodies (see request.h).  Strict: unknown keys, duplicate
 * keys, wrong types and out-of-range numbers are all 400s that say which. */
#include "config.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "api/request.h"
#include "pager/pager.h"

static int problem(struct kevd_problem *p, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int problem(struct kevd_problem *p, int status, const char *fmt, ...)
{
	va_list ap;

	p->status = status;
	va_start(ap, fmt);
	vsnprintf(p->msg, sizeof(p->msg), fmt, ap);
	va_end(ap);
	return -1;
}

int kevd_request_json(const char *ct, const void *body, size_t len, size_t max_body, json_t **out,
		      struct kevd_problem *p)
{
	json_error_t jerr;
	json_t *j;

	if (len > max_body)
		return problem(p, 413, "request body of %zu bytes is larger than %zu", len, max_body);
	if (!ct || strncasecmp(ct, "application/json", 16) != 0 || (ct[16] && ct[16] != ';' && ct[16] != ' '))
		return problem(p, 415, "the request body must be application/json (Content-Type: %.100s)",
			       ct ? ct : "none");
	j = json_loadb(len ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
	/* jansson names its own flag for a NUL: say what the client did. */
	if (!j && strstr(jerr.text, "JSON_ALLOW_NUL"))
		return problem(p, 400, "invalid JSON at line %d column %d: a string holds \\u0000, which kevd does not take",
			       jerr.line, jerr.column);
	if (!j)
		return problem(p, 400, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, jerr.text);
	if (!json_is_object(j)) {
		json_decref(j);
		return problem(p, 400, "the request body must be a JSON object");
	}
	*out = j;
	return 0;
}

static int only_keys(json_t *o, const char *const *allowed, struct kevd_problem *p)
{
	const char *k;
	json_t *v;

	json_object_foreach(o, k, v) {
		bool ok = false;

		for (size_t i = 0; allowed[i]; i++)
			ok |= !strcmp(k, allowed[i]);
		if (!ok)
			return problem(p, 400, "unknown key '%.100s'", k);
	}
	return 0;
}

/* No upper bound in the body itself: the daemon's limit applies (a 429
 * that names it, see vm_handlers.c), not a bound of the integer type. */
#define NO_MAX UINT64_MAX

/* 0 if absent, 1 if set, -1 on a problem. */
static int get_uint(json_t *o, const char *key, uint64_t min, uint64_t max, uint64_t *out, struct kevd_problem *p)
{
	json_t *v = json_object_get(o, key);
	json_int_t x;

	if (!v)
		return 0;
	if (!json_is_integer(v))
		return problem(p, 400, "'%s' must be an integer", key);
	x = json_integer_value(v);
	if ((x < 0 || (uint64_t)x < min) && max == NO_MAX)
		return problem(p, 400, "'%s' must be at least %" PRIu64 ", not %" JSON_INTEGER_FORMAT, key, min, x);
	if (x < 0 || (uint64_t)x < min || (uint64_t)x > max)
		return problem(p, 400, "'%s' must be in %" PRIu64 "..%" PRIu64 ", not %" JSON_INTEGER_FORMAT, key, min, max, x);
	*out = (uint64_t)x;
	return 1;
}

static int get_string(json_t *o, const char *key, size_t max, const char **out, struct kevd_problem *p)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		return 0;
	if (!json_is_string(v))
		return problem(p, 400, "'%s' must be a string", key);
	if (json_string_length(v) > max || strlen(json_string_value(v)) != json_string_length(v))
		return problem(p, 400, "'%s' must be at most %zu bytes with no NUL", key, max);
	*out = json_string_value(v);
	return 1;
}

bool kevd_request_valid_name(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > KEVD_REQUEST_NAME_MAX || n[0] == '.' || n[0] == '-')
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(n[i] >= 'a' && n[i] <= 'z') && !(n[i] >= 'A' && n[i] <= 'Z') && !(n[i] >= '0' && n[i] <= '9') &&
		    n[i] != '.' && n[i] != '_' && n[i] != '-')
			return false;
	return true;
}

int kevd_request_parse_protocol(const char *name, enum kevd_boot_protocol *out)
{
	if (!strcmp(name, "auto"))
		*out = KEVD_BOOT_AUTO;
	else if (!strcmp(name, "multiboot2"))
		*out = KEVD_BOOT_MULTIBOOT2;
	else if (!strcmp(name, "pvh"))
		*out = KEVD_BOOT_PVH;
	else
		return -1;
	return 0;
}

int kevd_request_parse_paging(const char *name, bool *eager, bool *private_pages)
{
	if (!strcmp(name, "lazy"))
		*eager = *private_pages = false;
	else if (!strcmp(name, "lazy-private"))
		*eager = false, *private_pages = true;
	else if (!strcmp(name, "eager"))
		*eager = true, *private_pages = false;
	else
		return -1;
	return 0;
}

/* KEY's value V, a name: absent is fine unless REQUIRED. */
static int check_name_field(const char *key, const char *v, bool required, struct kevd_problem *p)
{
	if ((!v && !required) || (v && kevd_request_valid_name(v)))
		return 0;
	return problem(p, 400, "'%s' %s 1..%d characters of A-Z a-z 0-9 . _ -, not starting with . or -", key,
		       v ? "must be" : "is required:", KEVD_REQUEST_NAME_MAX);
}

/* What a create's fields must be together, once each has its type. */
static int check_create(struct kevd_create_request *r, const char *paging, const char *proto,
			struct kevd_problem *p)
{
	static const char *const from_snapshot[] = { "kernel", "initrd", "memory_mib", "vcpus", "cmdline", "protocol",
						     NULL };
	json_t *start;

	/* Both given: the largest window cannot be below the first (given
	 * alone, window_pages raises the daemon's largest instead). */
	if (r->window_pages && r->window_max_pages && r->window_max_pages < r->window_pages)
		return problem(p, 400, "'window_max_pages' (%u) is below 'window_pages' (%u): the window only grows",
			       r->window_max_pages, r->window_pages);
	/* A restore is the snapshot's machine: only how it pages and runs
	 * is the client's to choose. */
	for (const char *const *k = from_snapshot; r->snapshot && *k; k++)
		if (json_object_get(r->body, *k))
			return problem(p, 400, "'%s' comes from the snapshot; a restore takes only 'snapshot', 'name', "
				       "'paging', 'start' and the window options", *k);
	if (!r->kernel && !r->snapshot)
		return problem(p, 400, "'kernel' is required (or 'snapshot', to restore one)");
	if (check_name_field("snapshot", r->snapshot, false, p) < 0 || check_name_field("name", r->name, false, p) < 0)
		return -1;
	if (paging && kevd_request_parse_paging(paging, &r->eager, &r->private_pages) < 0)
		return problem(p, 400, "'paging' must be \"lazy\", \"lazy-private\" or \"eager\", not \"%s\"", paging);
	if (proto && kevd_request_parse_protocol(proto, &r->protocol) < 0)
		return problem(p, 400, "'protocol' must be \"auto\", \"multiboot2\" or \"pvh\"");
	start = json_object_get(r->body, "start");
	if (start && !json_is_boolean(start))
		return problem(p, 400, "'start' must be true or false");
	r->start = !start || json_is_true(start);
	return 0;
}

int kevd_request_parse_create(const char *ct, const void *body, size_t len, size_t max_body,
			      struct kevd_create_request *r, struct kevd_problem *p)
{
	static const char *const keys[] = { "name", "kernel", "initrd", "memory_mib", "vcpus", "cmdline",
					    "paging", "start", "window_pages", "window_max_pages", "protocol", "snapshot",
					    NULL };
	const char *paging = NULL, *proto = NULL;
	uint64_t window = 0, window_max = 0;

	memset(r, 0, sizeof(*r));
	r->memory_mib = 128;
	r->vcpus = 1;
	r->start = true;
	r->protocol = KEVD_BOOT_AUTO;
	if (kevd_request_json(ct, body, len, max_body, &r->body, p) < 0)
		return -1;
	if (only_keys(r->body, keys, p) < 0 ||
	    get_string(r->body, "name", KEVD_REQUEST_NAME_MAX, &r->name, p) < 0 ||
	    get_string(r->body, "kernel", KEVD_REQUEST_PATH_MAX, &r->kernel, p) < 0 ||
	    get_string(r->body, "snapshot", KEVD_REQUEST_NAME_MAX, &r->snapshot, p) < 0 ||
	    get_string(r->body, "initrd", KEVD_REQUEST_PATH_MAX, &r->initrd, p) < 0 ||
	    get_string(r->body, "cmdline", 4095, &r->cmdline, p) < 0 ||
	    get_string(r->body, "paging", 16, &paging, p) < 0 ||
	    get_string(r->body, "protocol", 16, &proto, p) < 0 ||
	    get_uint(r->body, "memory_mib", 2, NO_MAX, &r->memory_mib, p) < 0 ||
	    get_uint(r->body, "vcpus", 1, NO_MAX, &r->vcpus, p) < 0 ||
	    get_uint(r->body, "window_pages", 1, KEVD_PAGER_MAX_WINDOW, &window, p) < 0 ||
	    get_uint(r->body, "window_max_pages", 1, KEVD_PAGER_MAX_WINDOW, &window_max, p) < 0)
		goto fail;
	r->window_pages = (unsigned)window;
	r->window_max_pages = (unsigned)window_max;
	if (check_create(r, paging, proto, p) < 0)
		goto fail;
	return 0;
fail:
	kevd_request_create_free(r);
	return -1;
}

int kevd_request_parse_snapshot(const char *ct, const void *body, size_t len, size_t max_body,
				struct kevd_snapshot_request *r, struct kevd_problem *p)
{
	static const char *const keys[] = { "name", "stop", NULL };
	json_t *stop;

	memset(r, 0, sizeof(*r));
	if (kevd_request_json(ct, body, len, max_body, &r->body, p) < 0)
		return -1;
	if (only_keys(r->body, keys, p) < 0 || get_string(r->body, "name", KEVD_REQUEST_NAME_MAX, &r->name, p) < 0)
		goto fail;
	if (check_name_field("name", r->name, true, p) < 0)
		goto fail;
	stop = json_object_get(r->body, "stop");
	if (stop && !json_is_boolean(stop)) {
		problem(p, 400, "'stop' must be true or false");
		goto fail;
	}
	r->stop = stop && json_is_true(stop);
	return 0;
fail:
	kevd_request_snapshot_free(r);
	return -1;
}

void kevd_request_snapshot_free(struct kevd_snapshot_request *r)
{
	if (r->body)
		json_decref(r->body);
	r->body = NULL;
}

void kevd_request_create_free(struct kevd_create_request *r)
{
	if (r->body)
		json_decref(r->body);
	r->body = NULL;
}

int kevd_request_parse_action(const char *ct, const void *body, size_t len, size_t max_body,
			      enum kevd_action *out, struct kevd_problem *p)
{
	static const char *const keys[] = { "action", NULL };
	cleanup_json json_t *j = NULL;
	const char *action = NULL;

	if (kevd_request_json(ct, body, len, max_body, &j, p) < 0)
		return -1;
	if (only_keys(j, keys, p) < 0 || get_string(j, "action", 16, &action, p) < 0)
		return -1;
	if (!action)
		return problem(p, 400, "'action' is required: \"start\", \"stop\", \"pause\" or \"resume\"");
	if (!strcmp(action, "start"))
		*out = KEVD_ACTION_START;
	else if (!strcmp(action, "stop"))
		*out = KEVD_ACTION_STOP;
	else if (!strcmp(action, "pause"))
		*out = KEVD_ACTION_PAUSE;
	else if (!strcmp(action, "resume"))
		*out = KEVD_ACTION_RESUME;
	else
		return problem(p, 400, "'action' must be \"start\", \"stop\", \"pause\" or \"resume\", not \"%s\"",
			       action);
	return 0;
}
