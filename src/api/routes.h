/*
 * The API's route table: method + path pattern -> handler, the one place
 * that says which resources kevd serves.  A pattern is literal segments
 * and "{vm}", which matches any one segment: the id or name of a VM.
 *
 * Matching is on the decoded path, segment by segment; empty segments do
 * not count ("/v1//vms/" is "/v1/vms").  A path that matches no pattern is
 * a 404; one that matches a pattern has its {vm} looked up in the registry
 * (404 when there is no such VM), then needs a route for the request's
 * method, else 405 with an Allow header listing the methods of every route
 * of that path.  A GET route also serves HEAD.
 *
 * To add a route: write the handler (kevd_route_fn) in vm_handlers.c or
 * system_handlers.c, add one line to the table in routes.c, and document
 * the operation in docs/openapi.yaml and docs/api.md (tests/openapi.sh
 * checks that the table and the file agree).
 */
#ifndef KEVD_ROUTES_H
#define KEVD_ROUTES_H

#include <event2/http.h>
#include <stddef.h>

struct evkeyvalq;
struct kevd_registry_entry;
struct kevd_server;

/* Segments in the longest pattern; longer paths match nothing. */
#define KEVD_ROUTES_MAX_SEGMENTS 4
/* Room for an Allow header of every method a path can have. */
#define KEVD_ROUTES_ALLOW_SIZE 64

/* What the router hands a handler besides the request. */
struct kevd_route_args {
	struct kevd_registry_entry *vm;  /* the path's {vm}; NULL for a route without one */
	const char *name;                /* the path's {name} (a snapshot's); NULL for a route without one */
	struct evkeyvalq *query;         /* the parsed query string (maybe empty) */
};

/* Answers REQ exactly once; 0, or -1 after an error answer. */
typedef int (*kevd_route_fn)(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);

struct kevd_route {
	enum evhttp_cmd_type method;  /* EVHTTP_REQ_GET serves HEAD too */
	const char *pattern;          /* "/v1/vms/{vm}/paging" */
	kevd_route_fn fn;
};

/* kevd's routes, in the order their methods appear in Allow headers. */
extern const struct kevd_route kevd_routes_table[];
extern const size_t kevd_routes_table_len;

enum kevd_routes_result {
	KEVD_ROUTES_FOUND,      /* match.route serves the method */
	KEVD_ROUTES_NO_PATH,    /* no pattern matches the path: 404 */
	KEVD_ROUTES_NO_METHOD,  /* the path matches, the method does not: 405 */
};

struct kevd_routes_match {
	const struct kevd_route *route;      /* FOUND: the route to call */
	const char *vm;                      /* the segment {vm} matched, inside PATH; NULL if none */
	const char *name;                    /* the same for {name} */
	char allow[KEVD_ROUTES_ALLOW_SIZE];  /* unless NO_PATH: "GET, HEAD, POST" */
};

/* Matches PATH (decoded; split in place, so it must outlive OUT) and
 * METHOD against the N routes of TABLE.  Needs no server: the registry
 * lookup of {vm} is kevd_routes_dispatch()'s. */
enum kevd_routes_result kevd_routes_match(const struct kevd_route *table, size_t n, char *path,
					  enum evhttp_cmd_type method, struct kevd_routes_match *out);

/* Routes REQ through kevd_routes_table and answers it: the handler's
 * answer, or a 404/405.  PATH is the decoded path (split in place), RAW
 * the path as sent (quoted in a 404), QUERY the parsed query string. */
void kevd_routes_dispatch(struct kevd_server *srv, struct evhttp_request *req, char *path, const char *raw,
			  struct evkeyvalq *query);

#endif
