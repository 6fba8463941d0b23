/*
 * Handlers of the daemon's own resources: /v1/health, /v1/version and
 * /metrics.  As in vm_handlers.h, each answers its request exactly once.
 */
#ifndef KEVD_SYSTEM_HANDLERS_H
#define KEVD_SYSTEM_HANDLERS_H

#include "api/routes.h"

int kevd_system_handlers_health(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
int kevd_system_handlers_version(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
int kevd_system_handlers_images(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
int kevd_system_handlers_metrics(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
/* The render of the scrapes (kevd_scrapes_render_fn; ARG: the server). */
int kevd_system_handlers_render_metrics(void *arg, char **text, size_t *len);

#endif
