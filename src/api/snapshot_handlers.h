/*
 * The snapshot resources: POST /v1/vms/{vm}/snapshot takes one (pausing
 * the VM for it), GET /v1/snapshots and /v1/snapshots/{name} describe
 * them, DELETE removes one.  Restores are creates (vm_handlers.c with
 * "snapshot").  All file work runs on the server's workers.
 */
#ifndef KEVD_SNAPSHOT_HANDLERS_H
#define KEVD_SNAPSHOT_HANDLERS_H

#include <event2/http.h>

#include "api/routes.h"

struct kevd_server;

int kevd_snapshot_handlers_take(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
int kevd_snapshot_handlers_list(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
int kevd_snapshot_handlers_get(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
int kevd_snapshot_handlers_delete(struct kevd_server *srv, struct evhttp_request *req,
				  const struct kevd_route_args *a);

#endif
