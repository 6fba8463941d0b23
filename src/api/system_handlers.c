/*
 * The daemon's own resources (see system_handlers.h).  /v1/health and
 * /metrics are also what a TCP listener serves without a token (auth.c).
 */
#include "config.h"

#include <jansson.h>
#include <stdlib.h>

#include "api/http.h"
#include "api/metrics.h"
#include "api/registry.h"
#include "api/server_internal.h"
#include "api/system_handlers.h"

int kevd_system_handlers_health(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	(void)a;
	kevd_http_reply(srv->http, req, 200,
			json_pack("{s:s,s:i}", "status", "ok", "vms", (int)kevd_registry_count(srv->registry)));
	return 0;
}

int kevd_system_handlers_version(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	(void)a;
	kevd_http_reply(srv->http, req, 200, json_pack("{s:s,s:s}", "version", PACKAGE_VERSION, "api", "v1"));
	return 0;
}

int kevd_system_handlers_metrics(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	char *text = NULL;
	size_t len = 0;

	(void)a;
	if (kevd_metrics_render(srv->registry, srv->http, &text, &len) < 0)
		return kevd_http_fail(srv->http, req, 500, "out of memory");
	kevd_http_send(srv->http, req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
	return 0;
}
