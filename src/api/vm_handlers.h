/*
 * Handlers of the VM resources, /v1/vms and /v1/vms/{vm}/... (docs/api.md).
 * Each answers its request exactly once and returns 0, or -1 after an
 * error answer; routes.c says which one serves which method and path.
 */
#ifndef KEVD_VM_HANDLERS_H
#define KEVD_VM_HANDLERS_H

#include "api/routes.h"

int kevd_vm_handlers_list(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
int kevd_vm_handlers_create(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
int kevd_vm_handlers_get(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
int kevd_vm_handlers_delete(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
int kevd_vm_handlers_action(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
int kevd_vm_handlers_paging(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
int kevd_vm_handlers_console(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);
/* Lets go of what ended VMs hold (guest RAM, threads, fds), keeping their
 * statistics and console: called when VMs end; true if one of them has
 * not finished ending and this should be asked again shortly. */
bool kevd_vm_handlers_release_ended(struct kevd_server *srv);
int kevd_vm_handlers_translate(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a);

#endif
