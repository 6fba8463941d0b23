/*
 * The route table and the router (see routes.h).  The table is small and
 * fixed, so matching walks all of it for every request: that also gathers
 * the Allow header of the path on the way, with no second list to keep in
 * step with the table.
 */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/registry.h"
#include "api/routes.h"
#include "api/server_internal.h"
#include "api/snapshot_handlers.h"
#include "api/system_handlers.h"
#include "api/vm_handlers.h"

const struct kevd_route kevd_routes_table[] = {
	{ EVHTTP_REQ_GET, "/metrics", kevd_system_handlers_metrics },
	{ EVHTTP_REQ_GET, "/v1/health", kevd_system_handlers_health },
	{ EVHTTP_REQ_GET, "/v1/version", kevd_system_handlers_version },
	{ EVHTTP_REQ_GET, "/v1/images", kevd_system_handlers_images },
	{ EVHTTP_REQ_GET, "/v1/vms", kevd_vm_handlers_list },
	{ EVHTTP_REQ_POST, "/v1/vms", kevd_vm_handlers_create },
	{ EVHTTP_REQ_GET, "/v1/vms/{vm}", kevd_vm_handlers_get },
	{ EVHTTP_REQ_DELETE, "/v1/vms/{vm}", kevd_vm_handlers_delete },
	{ EVHTTP_REQ_PUT, "/v1/vms/{vm}/actions", kevd_vm_handlers_action },
	{ EVHTTP_REQ_GET, "/v1/vms/{vm}/paging", kevd_vm_handlers_paging },
	{ EVHTTP_REQ_GET, "/v1/vms/{vm}/console", kevd_vm_handlers_console },
	{ EVHTTP_REQ_GET, "/v1/vms/{vm}/translate", kevd_vm_handlers_translate },
	{ EVHTTP_REQ_POST, "/v1/vms/{vm}/snapshot", kevd_snapshot_handlers_take },
	{ EVHTTP_REQ_GET, "/v1/snapshots", kevd_snapshot_handlers_list },
	{ EVHTTP_REQ_GET, "/v1/snapshots/{name}", kevd_snapshot_handlers_get },
	{ EVHTTP_REQ_DELETE, "/v1/snapshots/{name}", kevd_snapshot_handlers_delete },
};
const size_t kevd_routes_table_len = sizeof(kevd_routes_table) / sizeof(kevd_routes_table[0]);

#define VM_PARAM "{vm}"
#define NAME_PARAM "{name}"

/* Splits PATH in place into at most MAX non-empty segments; MAX + 1 means
 * there were more. */
static size_t split_path(char *path, char **seg, size_t max)
{
	char *save = NULL;
	size_t n = 0;

	for (char *tok = strtok_r(path, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
		if (n == max)
			return max + 1;
		seg[n++] = tok;
	}
	return n;
}

/* Whether PATTERN matches the N segments SEG; *VM (*NAME) is set to the
 * segment that {vm} ({name}) matched, if the pattern has it. */
static bool pattern_matches(const char *pattern, char *const *seg, size_t n, const char **vm, const char **name)
{
	const char *p = pattern;
	size_t i = 0;

	for (;;) {
		size_t len;

		p += strspn(p, "/");
		if (!*p)
			return i == n;
		len = strcspn(p, "/");
		if (i == n)
			return false;
		if (len == strlen(VM_PARAM) && !strncmp(p, VM_PARAM, len))
			*vm = seg[i];
		else if (len == strlen(NAME_PARAM) && !strncmp(p, NAME_PARAM, len))
			*name = seg[i];
		else if (strlen(seg[i]) != len || strncmp(p, seg[i], len))
			return false;
		p += len;
		i++;
	}
}

static void allow_add(char *allow, enum evhttp_cmd_type method)
{
	size_t used = strlen(allow);
	const char *name = method == EVHTTP_REQ_GET ? "GET, HEAD" : kevd_http_method_name(method);

	snprintf(allow + used, KEVD_ROUTES_ALLOW_SIZE - used, "%s%s", used ? ", " : "", name);
}

enum kevd_routes_result kevd_routes_match(const struct kevd_route *table, size_t n, char *path,
					  enum evhttp_cmd_type method, struct kevd_routes_match *out)
{
	char *seg[KEVD_ROUTES_MAX_SEGMENTS];
	size_t nseg = split_path(path, seg, KEVD_ROUTES_MAX_SEGMENTS);
	bool path_found = false;

	out->route = NULL;
	out->vm = NULL;
	out->name = NULL;
	out->allow[0] = '\0';
	if (nseg > KEVD_ROUTES_MAX_SEGMENTS)
		return KEVD_ROUTES_NO_PATH;
	for (size_t i = 0; i < n; i++) {
		const char *vm = NULL, *name = NULL;

		if (!pattern_matches(table[i].pattern, seg, nseg, &vm, &name))
			continue;
		if (!path_found) {
			out->vm = vm;
			out->name = name;
		}
		path_found = true;
		allow_add(out->allow, table[i].method);
		if (!out->route && (table[i].method == method ||
				    (table[i].method == EVHTTP_REQ_GET && method == EVHTTP_REQ_HEAD)))
			out->route = &table[i];
	}
	if (!path_found)
		return KEVD_ROUTES_NO_PATH;
	return out->route ? KEVD_ROUTES_FOUND : KEVD_ROUTES_NO_METHOD;
}

/* A 404 for a path no route has.  Users are told to use /vms in many
 * places (other VMMs serve their API at the root): a path that exists
 * under /v1 gets pointed there, and / gets the entry points. */
static void no_resource(struct kevd_server *srv, struct evhttp_request *req, const char *path, const char *raw)
{
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	struct kevd_routes_match m;
	char *v1 = NULL;

	if (strspn(path, "/") == strlen(path)) {
		kevd_http_fail(srv->http, req, 404, "no resource at %s; the API is under /v1 (/v1/vms, /v1/health) and "
			       "metrics are at /metrics", raw);
		return;
	}
	if (asprintf(&v1, "/v1%s%s", path[0] == '/' ? "" : "/", path) >= 0 && strncmp(path, "/v1/", 4) &&
	    kevd_routes_match(kevd_routes_table, kevd_routes_table_len, v1, method, &m) != KEVD_ROUTES_NO_PATH) {
		free(v1);
		kevd_http_fail(srv->http, req, 404, "no resource at %s; the API is under /v1: /v1%s%s", raw,
			       path[0] == '/' ? "" : "/", path);
		return;
	}
	free(v1);
	kevd_http_fail(srv->http, req, 404, "no resource at %s", raw);
}

void kevd_routes_dispatch(struct kevd_server *srv, struct evhttp_request *req, char *path, const char *raw,
			  struct evkeyvalq *query)
{
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	struct kevd_route_args a = { .vm = NULL, .query = query };
	struct kevd_routes_match m;
	char *whole = strdup(path);  /* matching cuts PATH into segments */
	enum kevd_routes_result r = kevd_routes_match(kevd_routes_table, kevd_routes_table_len, path, method, &m);

	if (r == KEVD_ROUTES_NO_PATH) {
		if (whole)
			no_resource(srv, req, whole, raw);
		else
			kevd_http_fail(srv->http, req, 404, "no resource at %s", raw);
		free(whole);
		return;
	}
	free(whole);
	/* A path that names no VM names no resource: 404 whatever the method, never 405. */
	if (m.vm && !(a.vm = kevd_registry_find(srv->registry, m.vm))) {
		kevd_http_fail(srv->http, req, 404, "no VM '%s'", m.vm);
		return;
	}
	if (r == KEVD_ROUTES_NO_METHOD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", m.allow);
		/* libevent keeps no name for a method it does not know. */
		if (!strcmp(kevd_http_method_name(method), "OTHER"))
			kevd_http_fail(srv->http, req, 405, "this method is not allowed here; allowed: %s", m.allow);
		else
			kevd_http_fail(srv->http, req, 405, "method %s is not allowed here; allowed: %s",
				       kevd_http_method_name(method), m.allow);
		return;
	}
	a.name = m.name;
	m.route->fn(srv, req, &a);
}
