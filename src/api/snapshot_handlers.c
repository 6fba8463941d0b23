/*
 * Snapshot handlers (snapshot_handlers.h).  A take marks its VM busy (no
 * start, stop, delete or second take meanwhile) and runs on a worker:
 * pause unless paused, write, then resume, or stop when asked; the VM
 * runs on if the write fails.  List, get and delete read the directory on
 * a worker too.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/http.h"
#include "api/jobs.h"
#include "api/registry.h"
#include "api/request.h"
#include "api/server_internal.h"
#include "api/snapshot_handlers.h"
#include "api/snapshots.h"
#include "api/spares.h"
#include "common/log.h"

enum snap_op { SNAP_TAKE, SNAP_LIST, SNAP_GET, SNAP_DELETE };

struct snap_job {
	struct kevd_job job;
	struct kevd_server *srv;
	struct evhttp_request *req;
	enum snap_op op;
	struct kevd_registry_entry *e;   /* SNAP_TAKE: the VM, marked busy */
	struct kevd_snapshot_request sr; /* SNAP_TAKE: owned */
	char name[KEVD_REQUEST_NAME_MAX + 1];
	json_t *out;                     /* the answer's body */
	int status;                      /* 0, or the failure's HTTP status */
	struct kevd_error err;
};

static int status_of(int errnum, int fallback)
{
	switch (errnum) {
	case ENOENT:
		return 404;
	case EEXIST:
	case EBUSY:
		return 409;
	case EINVAL:
		return 400;
	case EBADMSG:
	case ESTALE:
		return 422;
	case ENOSPC:
	case EDQUOT:
		return 507;
	default:
		return fallback;
	}
}

static void take_run(struct snap_job *j)
{
	struct kevd_vm *vm = kevd_registry_entry_vm(j->e);
	bool was_paused = kevd_vm_state(vm) == KEVD_VM_PAUSED;
	struct kevd_error ignored = KEVD_ERROR_INIT;

	if (!was_paused && kevd_vm_pause(vm, KEVD_SERVER_STOP_WAIT_MS, &j->err) < 0) {
		j->status = status_of(j->err.errnum, 500);
		return;
	}
	if (kevd_snapstore_take(j->srv->snapshots, j->name, vm, &j->out, &j->err) < 0)
		j->status = status_of(j->err.errnum, 500);
	if (j->status == 0 && j->sr.stop) {
		kevd_vm_stop(vm, "stopped after its snapshot");
		kevd_vm_wait(vm, KEVD_SERVER_STOP_WAIT_MS);
	} else if (!was_paused) {
		/* A failed snapshot leaves the VM as it found it: running. */
		kevd_vm_resume(vm, &ignored);
	}
}

static void snap_run(struct kevd_job *job)
{
	struct snap_job *j = (struct snap_job *)job;
	struct kevd_snapstore *st = j->srv->snapshots;
	int r = 0;

	switch (j->op) {
	case SNAP_TAKE:
		take_run(j);
		return;
	case SNAP_LIST:
		r = kevd_snapstore_list(st, &j->out, &j->err);
		if (r == 0)
			j->out = json_pack("{s:o}", "snapshots", j->out);
		break;
	case SNAP_GET:
		r = kevd_snapstore_info(st, j->name, &j->out, &j->err);
		break;
	case SNAP_DELETE:
		r = kevd_snapstore_delete(st, j->name, &j->err);
		break;
	}
	if (r < 0)
		j->status = status_of(j->err.errnum, 500);
}

static void snap_done(struct kevd_job *job)
{
	struct snap_job *j = (struct snap_job *)job;
	struct kevd_server *srv = j->srv;

	if (j->e) {
		kevd_registry_entry_set_busy(j->e, false);
		kevd_server_changed(srv);
	}
	if (j->status) {
		kevd_http_fail(srv->http, j->req, j->status, "%s", j->err.msg);
		json_decref(j->out);
	} else if (j->op == SNAP_DELETE) {
		kevd_http_reply(srv->http, j->req, 204, NULL);
	} else if (j->op == SNAP_TAKE) {
		struct kevd_spare_shape shape;
		char loc[96];

		kevd_info("api: vm '%s': snapshot '%s' taken", kevd_registry_entry_name(j->e), j->name);
		/* Restores of it are likely next. */
		if (kevd_spare_shape_of(j->out, &shape))
			kevd_spares_want(srv->spares, &shape, false);
		snprintf(loc, sizeof(loc), "/v1/snapshots/%s", j->name);
		evhttp_add_header(evhttp_request_get_output_headers(j->req), "Location", loc);
		kevd_http_reply(srv->http, j->req, 201, j->out);
	} else {
		kevd_http_reply(srv->http, j->req, 200, j->out);
	}
	kevd_request_snapshot_free(&j->sr);
	free(j);
}

static int submit(struct kevd_server *srv, struct evhttp_request *req, enum snap_op op, const char *name,
		  struct kevd_registry_entry *e, struct kevd_snapshot_request *sr)
{
	struct snap_job *j;

	if (!srv->snapshots) {
		if (sr)
			kevd_request_snapshot_free(sr);
		return kevd_http_fail(srv->http, req, 503, "snapshots are unavailable: %s", srv->snapshots_error);
	}
	if (name && !kevd_request_valid_name(name)) {
		if (sr)
			kevd_request_snapshot_free(sr);
		return kevd_http_fail(srv->http, req, 404, "no snapshot '%.64s'", name);
	}
	j = calloc(1, sizeof(*j));
	if (!j) {
		if (sr)
			kevd_request_snapshot_free(sr);
		return kevd_http_fail(srv->http, req, 500, "out of memory");
	}
	*j = (struct snap_job){
		.job = { .run = snap_run, .done = snap_done }, .srv = srv, .req = req, .op = op, .e = e,
		.err = KEVD_ERROR_INIT,
	};
	if (sr)
		j->sr = *sr;
	if (name)
		snprintf(j->name, sizeof(j->name), "%s", name);
	if (e)
		kevd_registry_entry_set_busy(e, true);
	kevd_jobs_submit(srv->jobs, &j->job);
	return 0;
}

int kevd_snapshot_handlers_take(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	struct kevd_vm *vm = kevd_registry_entry_vm(a->vm);
	const char *vname = kevd_registry_entry_name(a->vm);
	struct kevd_snapshot_request sr;
	struct kevd_problem prob;
	enum kevd_vm_state s;
	const void *body;
	size_t len;

	body = kevd_http_body(req, &len);
	if (kevd_request_parse_snapshot(kevd_http_content_type(req), body, len, srv->settings.max_body_bytes, &sr,
					&prob) < 0)
		return kevd_http_fail(srv->http, req, prob.status, "%s", prob.msg);
	if (kevd_registry_entry_busy(a->vm)) {
		kevd_request_snapshot_free(&sr);
		return kevd_http_fail(srv->http, req, 409, KEVD_SERVER_BUSY_FMT, vname);
	}
	s = kevd_vm_state(vm);
	if (s != KEVD_VM_RUNNING && s != KEVD_VM_PAUSED) {
		kevd_request_snapshot_free(&sr);
		return kevd_http_fail(srv->http, req, 409, "vm '%s' is %s; only a running or paused VM has a snapshot",
				      vname, kevd_vm_state_name(s));
	}
	return submit(srv, req, SNAP_TAKE, sr.name, a->vm, &sr);
}

int kevd_snapshot_handlers_list(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	(void)a;
	return submit(srv, req, SNAP_LIST, NULL, NULL, NULL);
}

int kevd_snapshot_handlers_get(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	return submit(srv, req, SNAP_GET, a->name, NULL, NULL);
}

int kevd_snapshot_handlers_delete(struct kevd_server *srv, struct evhttp_request *req,
				  const struct kevd_route_args *a)
{
	return submit(srv, req, SNAP_DELETE, a->name, NULL, NULL);
}
