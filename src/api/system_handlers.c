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
#include "api/scrapes.h"
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

int kevd_system_handlers_images(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	struct kevd_error why = KEVD_ERROR_INIT;
	bool shared = kevd_imagecache_supported(&why);
	struct kevd_cached_image_info *in;
	json_t *list = json_array();
	size_t n = 0;

	(void)a;
	in = kevd_imagecache_snapshot(srv->images, &n);
	if (!in || !list) {
		json_decref(list);
		kevd_imagecache_snapshot_free(in, n);
		return kevd_http_fail(srv->http, req, 500, "out of memory");
	}
	for (size_t i = 0; i < n; i++) {
		const struct kevd_image_identity *id = &in[i].identity;

		json_array_append_new(list, json_pack(
			"{s:s,s:s,s:o,s:o,s:{s:I,s:I,s:I,s:I,s:I},s:I,s:I,s:I,s:I,s:I,s:i,s:I,s:f,s:b}",
			"id", in[i].id, "path", in[i].path, "initrd", in[i].initrd ? json_string(in[i].initrd) : json_null(),
			"snapshot_memory", in[i].snapshot ? json_string(in[i].snapshot) : json_null(),
			"identity", "dev", (json_int_t)id->dev, "ino", (json_int_t)id->ino, "size", (json_int_t)id->size,
			"mtime_ns", (json_int_t)id->mtime_ns, "ctime_ns", (json_int_t)id->ctime_ns,
			"image_pages", (json_int_t)in[i].image_pages, "pages_filled", (json_int_t)in[i].pages_filled,
			"fills", (json_int_t)in[i].fills, "bytes_read", (json_int_t)in[i].bytes_read,
			"fill_failures", (json_int_t)in[i].fill_failures, "vms", (int)in[i].vms,
			"resident_bytes", (json_int_t)in[i].resident_bytes, "unused_s", in[i].unused_s,
			"failed", in[i].failed));
	}
	kevd_imagecache_snapshot_free(in, n);
	kevd_http_reply(srv->http, req, 200, json_pack("{s:b,s:o,s:o}", "sharing", shared, "sharing_unavailable",
						       shared ? json_null() : json_string(why.msg), "images", list));
	return 0;
}

int kevd_system_handlers_render_metrics(void *arg, char **text, size_t *len)
{
	struct kevd_server *srv = arg;
	const struct kevd_metrics_sources src = { .reg = srv->registry, .http = srv->http, .images = srv->images,
						  .gate = srv->boot_gate, .scrapes = srv->scrapes };

	return kevd_metrics_render(&src, text, len);
}

int kevd_system_handlers_metrics(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	(void)a;
	/* Answered once the scrapes that came with it are in (scrapes.h). */
	kevd_scrapes_add(srv->scrapes, req);
	return 0;
}
