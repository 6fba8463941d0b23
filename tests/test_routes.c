/*
 * The API's route table and token check without a daemon: which paths
 * match which route, what {vm} captures, the Allow header derived from the
 * table (GET implying HEAD), 404 and 405 outcomes, and the bearer token
 * rules of the TCP listener; the range messages of a create body.  The
 * daemon-level answers (messages, the registry lookup of {vm}) are
 * test_api's and openapi.sh's.
 */
#include "config.h"

#include <check.h>
#include <stdio.h>
#include <string.h>

#include "api/auth.h"
#include "api/request.h"
#include "api/routes.h"
#include "api/snapshot_handlers.h"
#include "api/system_handlers.h"
#include "api/vm_handlers.h"
#include "testutil.h"

/* Matches PATH (copied, as matching splits it) against the real table. */
static enum kevd_routes_result match(const char *path, enum evhttp_cmd_type m, struct kevd_routes_match *out,
				     char *buf, size_t len)
{
	snprintf(buf, len, "%s", path);
	return kevd_routes_match(kevd_routes_table, kevd_routes_table_len, buf, m, out);
}

static void expect_route(const char *path, enum evhttp_cmd_type m, kevd_route_fn fn, const char *vm)
{
	struct kevd_routes_match r;
	char buf[256];

	ck_assert_msg(match(path, m, &r, buf, sizeof(buf)) == KEVD_ROUTES_FOUND, "%s: not found", path);
	ck_assert_msg(r.route->fn == fn, "%s: wrong handler", path);
	if (vm)
		ck_assert_str_eq(r.vm, vm);
	else
		ck_assert_ptr_null(r.vm);
}

static void expect_result(const char *path, enum evhttp_cmd_type m, enum kevd_routes_result want,
			  const char *allow)
{
	struct kevd_routes_match r;
	char buf[256];

	ck_assert_msg(match(path, m, &r, buf, sizeof(buf)) == want, "%s: result", path);
	if (allow)
		ck_assert_str_eq(r.allow, allow);
	if (want == KEVD_ROUTES_NO_PATH)
		ck_assert_ptr_null(r.route);
}

START_TEST(every_route)
{
	expect_route("/metrics", EVHTTP_REQ_GET, kevd_system_handlers_metrics, NULL);
	expect_route("/v1/health", EVHTTP_REQ_GET, kevd_system_handlers_health, NULL);
	expect_route("/v1/version", EVHTTP_REQ_GET, kevd_system_handlers_version, NULL);
	expect_route("/v1/vms", EVHTTP_REQ_GET, kevd_vm_handlers_list, NULL);
	expect_route("/v1/vms", EVHTTP_REQ_POST, kevd_vm_handlers_create, NULL);
	expect_route("/v1/vms/web1", EVHTTP_REQ_GET, kevd_vm_handlers_get, "web1");
	expect_route("/v1/vms/web1", EVHTTP_REQ_DELETE, kevd_vm_handlers_delete, "web1");
	expect_route("/v1/vms/web1/actions", EVHTTP_REQ_PUT, kevd_vm_handlers_action, "web1");
	expect_route("/v1/vms/0001abcdef12/paging", EVHTTP_REQ_GET, kevd_vm_handlers_paging, "0001abcdef12");
	expect_route("/v1/vms/web1/console", EVHTTP_REQ_GET, kevd_vm_handlers_console, "web1");
	expect_route("/v1/vms/web1/translate", EVHTTP_REQ_GET, kevd_vm_handlers_translate, "web1");
	expect_route("/v1/vms/web1/snapshot", EVHTTP_REQ_POST, kevd_snapshot_handlers_take, "web1");
	expect_route("/v1/snapshots", EVHTTP_REQ_GET, kevd_snapshot_handlers_list, NULL);
	expect_route("/v1/snapshots/s1", EVHTTP_REQ_GET, kevd_snapshot_handlers_get, NULL);
	expect_route("/v1/snapshots/s1", EVHTTP_REQ_DELETE, kevd_snapshot_handlers_delete, NULL);
	ck_assert_uint_eq(kevd_routes_table_len, 16);
}
END_TEST

/* {name} is captured apart from {vm}: the registry never looks it up. */
START_TEST(name_param)
{
	struct kevd_routes_match r;
	char buf[256];

	ck_assert_int_eq(match("/v1/snapshots/gold.1", EVHTTP_REQ_GET, &r, buf, sizeof(buf)), KEVD_ROUTES_FOUND);
	ck_assert_str_eq(r.name, "gold.1");
	ck_assert_ptr_null(r.vm);
	ck_assert_int_eq(match("/v1/vms/web1/snapshot", EVHTTP_REQ_POST, &r, buf, sizeof(buf)), KEVD_ROUTES_FOUND);
	ck_assert_ptr_null(r.name);
	ck_assert_int_eq(match("/v1/snapshots/s1", EVHTTP_REQ_PUT, &r, buf, sizeof(buf)), KEVD_ROUTES_NO_METHOD);
	ck_assert_str_eq(r.allow, "GET, HEAD, DELETE");
}
END_TEST

START_TEST(head_is_get)
{
	expect_route("/v1/vms", EVHTTP_REQ_HEAD, kevd_vm_handlers_list, NULL);
	expect_route("/v1/vms/x/console", EVHTTP_REQ_HEAD, kevd_vm_handlers_console, "x");
	expect_route("/metrics", EVHTTP_REQ_HEAD, kevd_system_handlers_metrics, NULL);
	/* ...but not of anything else. */
	expect_result("/v1/vms/x/actions", EVHTTP_REQ_HEAD, KEVD_ROUTES_NO_METHOD, "PUT");
}
END_TEST

START_TEST(allow_from_table)
{
	expect_result("/metrics", EVHTTP_REQ_POST, KEVD_ROUTES_NO_METHOD, "GET, HEAD");
	expect_result("/v1/health", EVHTTP_REQ_DELETE, KEVD_ROUTES_NO_METHOD, "GET, HEAD");
	expect_result("/v1/version", EVHTTP_REQ_PUT, KEVD_ROUTES_NO_METHOD, "GET, HEAD");
	expect_result("/v1/vms", EVHTTP_REQ_PATCH, KEVD_ROUTES_NO_METHOD, "GET, HEAD, POST");
	expect_result("/v1/vms/x", EVHTTP_REQ_POST, KEVD_ROUTES_NO_METHOD, "GET, HEAD, DELETE");
	expect_result("/v1/vms/x/actions", EVHTTP_REQ_GET, KEVD_ROUTES_NO_METHOD, "PUT");
	expect_result("/v1/vms/x/paging", EVHTTP_REQ_OPTIONS, KEVD_ROUTES_NO_METHOD, "GET, HEAD");
	expect_result("/v1/vms/x/console", EVHTTP_REQ_TRACE, KEVD_ROUTES_NO_METHOD, "GET, HEAD");
	expect_result("/v1/vms/x/translate", EVHTTP_REQ_CONNECT, KEVD_ROUTES_NO_METHOD, "GET, HEAD");
	/* A found route carries its path's Allow too. */
	expect_result("/v1/vms", EVHTTP_REQ_GET, KEVD_ROUTES_FOUND, "GET, HEAD, POST");
}
END_TEST

START_TEST(vm_of_a_405)
{
	struct kevd_routes_match r;
	char buf[64];

	/* The router looks {vm} up before it answers 405, so it needs it here. */
	ck_assert_int_eq(match("/v1/vms/nonesuch", EVHTTP_REQ_PATCH, &r, buf, sizeof(buf)), KEVD_ROUTES_NO_METHOD);
	ck_assert_str_eq(r.vm, "nonesuch");
}
END_TEST

START_TEST(no_path)
{
	static const char *const paths[] = {
		"", "/", "/v1", "/v1/", "/v2/vms", "/V1/VMS", "/nope", "/metrics/x", "/v1/health/x",
		"/v1/version/x", "/v1/vm", "/v1/vmsx", "/v1/vms/x/bogus", "/v1/vms/x/paging/y",
		"/v1/vms/a/b/c/d", "/v1/vms/x/{vm}", "/{vm}", "*", "metrics/x",
	};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		expect_result(paths[i], EVHTTP_REQ_GET, KEVD_ROUTES_NO_PATH, "");
}
END_TEST

START_TEST(empty_segments)
{
	expect_route("/v1//vms/", EVHTTP_REQ_GET, kevd_vm_handlers_list, NULL);
	expect_route("//v1//vms//x//paging//", EVHTTP_REQ_GET, kevd_vm_handlers_paging, "x");
	expect_route("/v1/health/", EVHTTP_REQ_GET, kevd_system_handlers_health, NULL);
	expect_route("v1/vms", EVHTTP_REQ_GET, kevd_vm_handlers_list, NULL);
	/* "." is a segment like any other: no VM is named ".". */
	expect_route("/v1/vms/./paging", EVHTTP_REQ_GET, kevd_vm_handlers_paging, ".");
}
END_TEST

static int fn_a(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	(void)srv, (void)req, (void)a;
	return 0;
}

static int fn_b(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	(void)srv, (void)req, (void)a;
	return 1;
}

START_TEST(other_tables)
{
	static const struct kevd_route table[] = {
		{ EVHTTP_REQ_DELETE, "/a/{vm}/b", fn_a },
		{ EVHTTP_REQ_PUT, "/a/{vm}/b", fn_b },
		{ EVHTTP_REQ_GET, "/a/{vm}/b", fn_a },
		{ EVHTTP_REQ_PUT, "/a/{vm}/b", fn_a },   /* never reached: the first PUT wins */
		{ EVHTTP_REQ_POST, "/a", fn_b },
	};
	struct kevd_routes_match r;
	char path[64];

	snprintf(path, sizeof(path), "/a/k/b");
	ck_assert_int_eq(kevd_routes_match(table, 5, path, EVHTTP_REQ_PUT, &r), KEVD_ROUTES_FOUND);
	ck_assert_ptr_eq(r.route, &table[1]);
	ck_assert_str_eq(r.vm, "k");
	/* Table order, not a fixed one; a repeated method is listed again. */
	ck_assert_str_eq(r.allow, "DELETE, PUT, GET, HEAD, PUT");
	snprintf(path, sizeof(path), "/a");
	ck_assert_int_eq(kevd_routes_match(table, 5, path, EVHTTP_REQ_GET, &r), KEVD_ROUTES_NO_METHOD);
	ck_assert_str_eq(r.allow, "POST");
	ck_assert_ptr_null(r.vm);
	snprintf(path, sizeof(path), "/a/k");
	ck_assert_int_eq(kevd_routes_match(table, 5, path, EVHTTP_REQ_GET, &r), KEVD_ROUTES_NO_PATH);
	snprintf(path, sizeof(path), "/a/k/b");
	ck_assert_int_eq(kevd_routes_match(table, 0, path, EVHTTP_REQ_GET, &r), KEVD_ROUTES_NO_PATH);
}
END_TEST

START_TEST(token)
{
	static const char tok[] = "0123456789abcdef";

	/* No token configured: nothing at all, not even the public paths. */
	ck_assert(!kevd_auth_allows(NULL, "/metrics", NULL));
	ck_assert(!kevd_auth_allows(NULL, "/v1/vms", "Bearer 0123456789abcdef"));
	/* The two scraped paths, exactly. */
	ck_assert(kevd_auth_allows(tok, "/metrics", NULL));
	ck_assert(kevd_auth_allows(tok, "/v1/health", NULL));
	ck_assert(!kevd_auth_allows(tok, "/metrics/", NULL));
	ck_assert(!kevd_auth_allows(tok, "/v1/health/", NULL));
	ck_assert(!kevd_auth_allows(tok, "/v1/version", NULL));
	/* Everything else needs the token. */
	ck_assert(kevd_auth_allows(tok, "/v1/vms", "Bearer 0123456789abcdef"));
	ck_assert(kevd_auth_allows(tok, "/v1/vms", "bearer 0123456789abcdef"));
	ck_assert(kevd_auth_allows(tok, "/v1/vms", "BEARER 0123456789abcdef"));
	ck_assert(!kevd_auth_allows(tok, "/v1/vms", "Bearer 0123456789ABCDEF"));
	ck_assert(!kevd_auth_allows(tok, "/v1/vms", NULL));
	ck_assert(!kevd_auth_allows(tok, "/v1/vms", ""));
	ck_assert(!kevd_auth_allows(tok, "/v1/vms", "Bearer "));
	ck_assert(!kevd_auth_allows(tok, "/v1/vms", "Bearer 0123456789abcdeF"));
	ck_assert(!kevd_auth_allows(tok, "/v1/vms", "Bearer 0123456789abcde"));
	ck_assert(!kevd_auth_allows(tok, "/v1/vms", "Bearer 0123456789abcdef0"));
	ck_assert(!kevd_auth_allows(tok, "/v1/vms", "Bearer  0123456789abcdef"));
	ck_assert(!kevd_auth_allows(tok, "/v1/vms", "Basic 0123456789abcdef"));
	ck_assert(!kevd_auth_allows(tok, "/v1/vms", "0123456789abcdef"));
}
END_TEST

/* The 400 for BODY, whose message must be WANT. */
static void expect_problem(const char *body, const char *want)
{
	struct kevd_create_request r;
	struct kevd_problem p = { 0 };

	ck_assert_msg(kevd_request_parse_create("application/json", body, strlen(body), 65536, &r, &p) < 0,
		      "%s: accepted", body);
	ck_assert_int_eq(p.status, 400);
	ck_assert_str_eq(p.msg, want);
}

/* A snapshot's name: missing, or present and not a valid one, each said
 * as it is. */
START_TEST(snapshot_name)
{
	static const struct { const char *body, *want; } cases[] = {
		{ "{}", "'name' is required: 1..64 characters of A-Z a-z 0-9 . _ -, not starting with . or -" },
		{ "{\"name\":\".x\"}", "'name' must be 1..64 characters of A-Z a-z 0-9 . _ -, not starting with . or -" },
		{ "{\"name\":\"x y\"}", "'name' must be 1..64 characters of A-Z a-z 0-9 . _ -, not starting with . or -" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct kevd_snapshot_request r;
		struct kevd_problem p = { 0 };

		ck_assert_int_lt(kevd_request_parse_snapshot("application/json", cases[i].body, strlen(cases[i].body),
							     65536, &r, &p), 0);
		ck_assert_int_eq(p.status, 400);
		ck_assert_str_eq(p.msg, cases[i].want);
	}
}
END_TEST

static uint64_t parsed_vcpus(const char *body)
{
	struct kevd_create_request r;
	struct kevd_problem p = { 0 };
	uint64_t v;

	ck_assert_msg(kevd_request_parse_create("application/json", body, strlen(body), 65536, &r, &p) == 0, "%s: %s",
		      body, p.msg);
	v = r.vcpus;
	kevd_request_create_free(&r);
	return v;
}

/* Range messages name a bound that means something: the least value, or
 * a real maximum; never the largest value of an integer type.  Values past
 * the daemon's limits are its 429 to give (test_api), not a 400 here. */
START_TEST(create_ranges)
{
	expect_problem("{\"kernel\":\"k\",\"vcpus\":0}", "'vcpus' must be at least 1, not 0");
	expect_problem("{\"kernel\":\"k\",\"vcpus\":-1}", "'vcpus' must be at least 1, not -1");
	expect_problem("{\"kernel\":\"k\",\"memory_mib\":1}", "'memory_mib' must be at least 2, not 1");
	expect_problem("{\"kernel\":\"k\",\"window_pages\":513}", "'window_pages' must be in 1..512, not 513");
	expect_problem("{\"kernel\":\"k\",\"window_pages\":0}", "'window_pages' must be in 1..512, not 0");
	expect_problem("{\"kernel\":\"k\\u0000\"}",
		       "invalid JSON at line 1 column 19: a string holds \\u0000, which kevd does not take");
	expect_problem("{\"kernel\":\"k\",\"window_pages\":4,\"window_max_pages\":2}",
		       "'window_max_pages' (2) is below 'window_pages' (4): the window only grows");
	expect_problem("{\"snapshot\":\"s\",\"window_pages\":64,\"window_max_pages\":2}",
		       "'window_max_pages' (2) is below 'window_pages' (64): the window only grows");
	ck_assert_uint_eq(parsed_vcpus("{\"kernel\":\"k\",\"vcpus\":4294967296}"), 4294967296ull);
	ck_assert_uint_eq(parsed_vcpus("{\"kernel\":\"k\",\"vcpus\":9223372036854775807}"), 9223372036854775807ull);
}
END_TEST

static Suite *routes_suite(void)
{
	Suite *s = suite_create("routes");
	TCase *tc = tcase_create("table");
	TCase *auth = tcase_create("auth");
	TCase *body = tcase_create("request");

	tcase_add_test(tc, every_route);
	tcase_add_test(tc, name_param);
	tcase_add_test(tc, head_is_get);
	tcase_add_test(tc, allow_from_table);
	tcase_add_test(tc, vm_of_a_405);
	tcase_add_test(tc, no_path);
	tcase_add_test(tc, empty_segments);
	tcase_add_test(tc, other_tables);
	suite_add_tcase(s, tc);
	tcase_add_test(auth, token);
	suite_add_tcase(s, auth);
	tcase_add_test(body, create_ranges);
	tcase_add_test(body, snapshot_name);
	suite_add_tcase(s, body);
	return s;
}

int main(void)
{
	return kevd_test_run(routes_suite());
}
