/*
 * The VM resources (see vm_handlers.h): create, list, get, delete, the
 * start/stop action, and each VM's paging statistics, console and address
 * translation.  Bodies are parsed in request.c, image paths resolved in
 * imagedir.c and VMs kept in the registry; VM state is read through the
 * VMM's locked accessors.  What can block (opening the images, creating,
 * starting, stopping and freeing a VM) runs on the server's workers
 * (jobs.h): the loop checks the request, reserves what it needs (a name,
 * memory, the VM itself), hands the work over and answers when it is
 * done, so it never waits on KVM, the pager or a file.
 */
#include "config.h"

#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <event2/http.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "api/imagedir.h"
#include "api/jobs.h"
#include "api/registry.h"
#include "api/request.h"
#include "api/server_internal.h"
#include "api/snapshots.h"
#include "api/spares.h"
#include "api/stats_json.h"
#include "api/vm_handlers.h"
#include "api/workingsets.h"
#include "common/cleanup.h"
#include "common/log.h"

static json_t *vm_json(const struct kevd_registry_entry *e)
{
	json_t *o = kevd_json_vm(kevd_registry_entry_vm(e));
	const char *id = kevd_registry_entry_id(e);
	time_t created = kevd_registry_entry_created(e);
	struct tm tm;
	char ts[32];

	gmtime_r(&created, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(o, "id", json_string(id));
	json_object_set_new(o, "created_at", json_string(ts));
	json_object_set_new(o, "links", json_pack("{s:s++,s:s++,s:s++}",
		"self", "/v1/vms/", id, "",
		"paging", "/v1/vms/", id, "/paging",
		"console", "/v1/vms/", id, "/console"));
	return o;
}

/* An image the VMM refused is the client's problem (422); anything else
 * that failed a create is the daemon's (500). */
static int image_status(int errnum)
{
	switch (errnum) {
	case ENOEXEC:
	case EINVAL:
	case ERANGE:
	case E2BIG:
	case ESTALE:
	case EBADMSG:
		return 422;
	default:
		return 500;
	}
}

/* A create on a worker: what it was asked, what it made, how it went. */
struct create_job {
	struct kevd_job job;
	struct kevd_server *srv;
	struct evhttp_request *req;      /* answered in done(); libevent frees it if the client left */
	struct kevd_create_request cr;   /* owned */
	struct kevd_vm_config cfg;
	char id[KEVD_REGISTRY_ID_SIZE];
	char *name;                      /* owned: the reserved name (the id when none was asked) */
	int dirfd;                       /* owned dup of the image directory, as it was at the request */
	struct kevd_snapshot *snap;      /* owned: a restore's snapshot, read and checked; NULL = boot */
	struct kevd_vm *vm;              /* made by run(), owned until done() adds it */
	unsigned record_ms;              /* [snapshot] record_ms as the create began */
	struct kevd_wslist *ws_list;     /* reserved by run() when the VM records its working set */
	struct kevd_pager_recording *ws_rec;  /* owned reference: that recording */
	int status;                      /* 0, or the HTTP status of the failure in err */
	struct kevd_error err;
	struct create_job *next_pending; /* the server's list of creates under way (loop thread) */
};

static bool name_reserved(const struct kevd_server *srv, const char *name)
{
	for (const struct create_job *c = srv->creates; c; c = c->next_pending)
		if (!strcmp(c->name, name) || !strcmp(c->id, name))
			return true;
	return false;
}

/* The daemon's limits, checked before anything is opened; creates under
 * way count as if done. */
static int check_limits(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_create_request *cr)
{
	const struct kevd_server_settings *st = &srv->settings;
	uint64_t in_use = kevd_registry_total_memory(srv->registry) + srv->creating_memory;

	if (cr->vcpus > st->max_vcpus)
		return kevd_http_fail(srv->http, req, 429, "%" PRIu64 " vCPUs is more than this daemon's limit of %u per VM",
				      cr->vcpus, st->max_vcpus);
	if (cr->memory_mib > st->max_memory_mib)
		return kevd_http_fail(srv->http, req, 429,
				      "%" PRIu64 " MiB is more than this daemon's limit of %" PRIu64 " MiB per VM",
				      cr->memory_mib, st->max_memory_mib);
	if (kevd_registry_count(srv->registry) + srv->creating >= st->max_vms)
		return kevd_http_fail(srv->http, req, 429, "this daemon already holds its limit of %u VMs", st->max_vms);
	if (in_use + cr->memory_mib > st->max_total_memory_mib)
		return kevd_http_fail(srv->http, req, 429,
				      "%" PRIu64 " MiB more would pass this daemon's total of %" PRIu64 " MiB (%" PRIu64
				      " in use)", cr->memory_mib, st->max_total_memory_mib, in_use);
	if (cr->name && (kevd_registry_find(srv->registry, cr->name) || name_reserved(srv, cr->name)))
		return kevd_http_fail(srv->http, req, 409, "a VM named '%s' exists", cr->name);
	return 0;
}

/* Opens the kernel and the initrd, if any, beneath the image directory
 * DIRFD into CFG, which then owns the fds; on failure none is left open
 * and *STATUS and ERR say why.  On a worker: opening may wait on the disk. */
static int open_images(int dirfd, const struct kevd_create_request *cr, struct kevd_vm_config *cfg, int *status,
		       struct kevd_error *err)
{
	cleanup_close int kernel_fd = -1;

	kernel_fd = kevd_imagedir_open(dirfd, "kernel", cr->kernel, status, err);
	if (kernel_fd < 0)
		return -1;
	if (cr->initrd) {
		cfg->initrd_fd = kevd_imagedir_open(dirfd, "initrd", cr->initrd, status, err);
		if (cfg->initrd_fd < 0)
			return -1;
		cfg->initrd_fd_valid = true;
		cfg->initrd = cr->initrd;
	}
	cfg->kernel = cr->kernel;
	cfg->kernel_fd_valid = true;
	cfg->kernel_fd = kevd_steal_fd(&kernel_fd);
	return 0;
}

static void fill_config(struct kevd_server *srv, const struct kevd_create_request *cr, const char *id,
			struct kevd_vm_config *cfg)
{
	const struct kevd_server_settings *st = &srv->settings;

	cfg->name = cr->name ? cr->name : id;
	cfg->memory_mib = cr->memory_mib;
	cfg->vcpus = (unsigned)cr->vcpus;
	cfg->cmdline = cr->cmdline;
	cfg->eager = cr->eager;
	cfg->private_pages = cr->private_pages;
	cfg->image_cache = srv->images;
	cfg->protocol = cr->protocol;
	cfg->window_pages = cr->window_pages ? cr->window_pages : st->window_pages;
	/* "window_pages": 1 alone turns fault-around off, as for the pager
	 * (docs/pager.md): the daemon's window_max_pages must not grow it. */
	cfg->window_max_pages = cr->window_max_pages ? cr->window_max_pages
			      : cfg->window_pages == 1 ? 1 : st->window_max_pages;
	cfg->pager_threads = st->pager_threads;
	cfg->vcpu_nice = st->vcpu_nice;
	cfg->boot_gate = srv->boot_gate;
	cfg->console_bytes = st->console_bytes;
	cfg->on_end = kevd_server_vm_ended;
	cfg->cb_arg = srv;
}

/* Worker, before the VM starts: its working set (docs/pager.md), a
 * restore's beside its snapshot, a boot's under its kernel's identity.
 * Prefetched if there is one, recorded if not; nothing that goes wrong
 * here fails the create. */
static void plan_working_set(struct create_job *c)
{
	struct kevd_wsstore *ws = c->srv->wsets;
	struct kevd_error e = KEVD_ERROR_INIT;
	cleanup_free uint64_t *gfns = NULL;
	char name[32], path[4200], what[600];
	int dirfd;
	size_t n;

	if (!c->record_ms || c->cfg.eager)
		return;
	if (c->snap) {
		dirfd = c->snap->dirfd;
		snprintf(name, sizeof(name), "%s", KEVD_WORKINGSET_FILE);
		snprintf(path, sizeof(path), "%s/%s/%s", kevd_snapstore_path(c->srv->snapshots), c->cr.snapshot, name);
		snprintf(what, sizeof(what), "vm '%s': snapshot '%s'", c->name, c->cr.snapshot);
	} else {
		dirfd = kevd_wsstore_dirfd(ws);
		kevd_vm_kernel_digest(c->vm, name);
		snprintf(path, sizeof(path), "%s/%s", kevd_wsstore_path(ws), name);
		snprintf(what, sizeof(what), "vm '%s': kernel '%s'", c->name, c->cr.kernel);
	}
	switch (kevd_wsstore_plan(ws, dirfd, name, path, what, &gfns, &n, &c->ws_list)) {
	case KEVD_WS_PREFETCH:
		if (kevd_vm_prefetch_working_set(c->vm, gfns, n, &e) < 0)
			kevd_warn("api: %s: working set not prefetched: %s", what, e.msg);
		break;
	case KEVD_WS_RECORD:
		if (kevd_vm_record_working_set(c->vm, c->record_ms, &c->ws_rec, &e) < 0) {
			kevd_warn("api: %s: working set not recorded: %s", what, e.msg);
			kevd_wsstore_drop(ws, c->ws_list);
			c->ws_list = NULL;
		}
		break;
	case KEVD_WS_NOTHING:
		break;
	}
}

/* Worker: opens the images, creates the VM and starts it unless asked not
 * to. */
static void create_run(struct kevd_job *job)
{
	struct create_job *c = (struct create_job *)job;
	struct kevd_vm_restore rs;
	int r;

	if (open_images(c->dirfd, &c->cr, &c->cfg, &c->status, &c->err) < 0) {
		/* A restore's kernel and initrd are the snapshot's, not the
		 * request's: a path that could not be taken is a bad snapshot. */
		if (c->snap) {
			c->status = c->status == 400 ? 422 : c->status;
			kevd_error_prefix(&c->err, "snapshot '%s'", c->snap->name);
		}
		return;
	}
	if (c->snap) {
		/* The VM takes the memory file and the page list. */
		rs = (struct kevd_vm_restore){
			.memory_fd = c->snap->memory_fd, .memory_path = c->snap->memory_path, .name = c->snap->name,
			.pages = c->snap->pages,
			.npages = c->snap->npages, .state = c->snap->state, .state_len = c->snap->state_len,
			.kernel_id = &c->snap->kernel_id,
		};
		c->snap->memory_fd = -1;
		c->snap->pages = NULL;
		c->cfg.restore = &rs;
		/* Boot slots are for boots: a restored guest resumes past its
		 * first moments, its pages prefetched, and a clone is asked
		 * for to run at once. */
		c->cfg.boot_gate = NULL;
		c->cfg.spare = kevd_spares_take(c->srv->spares,
						&(struct kevd_spare_shape){ c->cfg.memory_mib, c->cfg.vcpus, c->snap->pc });
	}
	r = kevd_vm_create(&c->cfg, &c->vm, &c->err);  /* takes the image fds and the spare */
	c->cfg.spare = NULL;
	if (r < 0) {
		c->status = image_status(c->err.errnum);
		return;
	}
	plan_working_set(c);
	if (c->cr.start && kevd_vm_start(c->vm, &c->err) < 0) {
		kevd_vm_free(c->vm);
		c->vm = NULL;
		/* A restore's state that KVM refuses is the snapshot's fault. */
		c->status = c->snap && c->err.errnum == EBADMSG ? 422 : 500;
	}
}

static void create_job_free(struct create_job *c)
{
	struct create_job **pp = &c->srv->creates;

	while (*pp && *pp != c)
		pp = &(*pp)->next_pending;
	if (*pp)
		*pp = c->next_pending;
	c->srv->creating--;
	c->srv->creating_memory -= c->cr.memory_mib;
	if (c->dirfd >= 0)
		close(c->dirfd);
	/* A recording whose VM was not made (or is gone) is not kept. */
	if (c->ws_list)
		kevd_wsstore_drop(c->srv->wsets, c->ws_list);
	kevd_pager_recording_unref(c->ws_rec);
	kevd_request_create_free(&c->cr);
	kevd_snapshot_free(c->snap);
	free(c->name);
	free(c);
}

/* Loop: the reservation ends; a VM made joins the registry; the answer. */
static void create_done(struct kevd_job *job)
{
	struct create_job *c = (struct create_job *)job;
	struct kevd_server *srv = c->srv;
	struct kevd_registry_entry *e;
	char loc[64];

	if (!c->vm) {
		kevd_http_fail(srv->http, c->req, c->status ? c->status : 500, "%s",
			       c->err.msg[0] ? c->err.msg : "the create failed");
		create_job_free(c);
		return;
	}
	if (kevd_registry_add(srv->registry, c->id, c->name, c->vm, c->cr.memory_mib, &e, &c->err) < 0) {
		/* kevd_registry_add freed the VM. */
		kevd_http_fail(srv->http, c->req, 500, "out of memory");
		create_job_free(c);
		return;
	}
	if (c->ws_list) {
		kevd_wsstore_track(srv->wsets, c->ws_list, c->ws_rec);
		c->ws_list = NULL;
		c->ws_rec = NULL;
	}
	if (c->snap) {
		kevd_info("api: vm '%s' (%s) restored from snapshot '%s'%s", kevd_registry_entry_name(e), c->id,
			  c->cr.snapshot, kevd_vm_from_spare(c->vm) ? " over a spare VM" : "");
		/* For the next restore of this size. */
		kevd_spares_want(srv->spares,
				 &(struct kevd_spare_shape){ c->cr.memory_mib, c->cfg.vcpus, kevd_vm_is_pc(c->vm) }, false);
	} else {
		kevd_info("api: vm '%s' (%s) created from '%s'", kevd_registry_entry_name(e), c->id, c->cr.kernel);
	}
	snprintf(loc, sizeof(loc), "/v1/vms/%s", c->id);
	evhttp_add_header(evhttp_request_get_output_headers(c->req), "Location", loc);
	kevd_http_reply(srv->http, c->req, 201, vm_json(e));
	create_job_free(c);
	kevd_server_changed(srv);
}

/* Checks the limits, reserves the name and the memory and hands CR and
 * SNAP (a restore's; taken in all cases) to a worker; answered when it is
 * done. */
static int create_from(struct kevd_server *srv, struct evhttp_request *req, struct kevd_create_request *cr,
		       struct kevd_snapshot *snap)
{
	struct create_job *c;

	if (check_limits(srv, req, cr) < 0) {
		kevd_request_create_free(cr);
		kevd_snapshot_free(snap);
		return -1;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		kevd_request_create_free(cr);
		kevd_snapshot_free(snap);
		return kevd_http_fail(srv->http, req, 500, "out of memory");
	}
	*c = (struct create_job){
		.job = { .run = create_run, .done = create_done }, .srv = srv, .req = req, .cr = *cr,
		.cfg = { .console_fd = -1 }, .dirfd = -1, .err = KEVD_ERROR_INIT, .snap = snap,
	};
	kevd_registry_new_id(srv->registry, c->id);
	fill_config(srv, &c->cr, c->id, &c->cfg);
	c->record_ms = srv->settings.record_ms;
	c->name = strdup(c->cfg.name);
	/* The directory as it is now: a reload may replace it meanwhile. */
	c->dirfd = fcntl(srv->image_dirfd, F_DUPFD_CLOEXEC, 3);
	srv->creating++;
	srv->creating_memory += c->cr.memory_mib;
	c->next_pending = srv->creates;
	srv->creates = c;
	if (!c->name || c->dirfd < 0) {
		int e = c->name ? errno : ENOMEM;

		create_job_free(c);
		return kevd_http_fail(srv->http, req, 500, "%s", strerror(e));
	}
	c->cfg.name = c->name;
	kevd_jobs_submit(srv->jobs, &c->job);
	return 0;
}

/* A restore reads its snapshot first (on a worker): the VM's size, which
 * the limits are checked against, is the snapshot's. */
struct restore_job {
	struct kevd_job job;
	struct kevd_server *srv;
	struct evhttp_request *req;
	struct kevd_create_request cr;   /* owned until handed to create_from */
	struct kevd_snapshot *snap;
	struct kevd_error err;
};

static void restore_read_run(struct kevd_job *job)
{
	struct restore_job *r = (struct restore_job *)job;

	kevd_snapstore_load(r->srv->snapshots, r->cr.snapshot, &r->snap, &r->err);
}

static void restore_read_done(struct kevd_job *job)
{
	struct restore_job *r = (struct restore_job *)job;
	struct kevd_snapshot *s = r->snap;

	if (!s) {
		kevd_http_fail(r->srv->http, r->req, r->err.errnum == ENOENT ? 404 : r->err.errnum == EBADMSG ? 422 : 500,
			       "%s", r->err.msg);
		kevd_request_create_free(&r->cr);
	} else {
		r->cr.kernel = s->kernel;
		r->cr.initrd = s->initrd;
		r->cr.cmdline = s->cmdline;
		r->cr.memory_mib = s->memory_mib;
		r->cr.vcpus = s->vcpus;
		r->cr.protocol = s->protocol;
		create_from(r->srv, r->req, &r->cr, s);  /* takes both */
	}
	free(r);
}

static int restore_from(struct kevd_server *srv, struct evhttp_request *req, struct kevd_create_request *cr)
{
	struct restore_job *r;

	if (!srv->snapshots) {
		kevd_request_create_free(cr);
		return kevd_http_fail(srv->http, req, 503, "snapshots are unavailable: %s", srv->snapshots_error);
	}
	r = calloc(1, sizeof(*r));
	if (!r) {
		kevd_request_create_free(cr);
		return kevd_http_fail(srv->http, req, 500, "out of memory");
	}
	*r = (struct restore_job){
		.job = { .run = restore_read_run, .done = restore_read_done }, .srv = srv, .req = req, .cr = *cr,
		.err = KEVD_ERROR_INIT,
	};
	kevd_jobs_submit(srv->jobs, &r->job);
	return 0;
}

int kevd_vm_handlers_create(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	struct kevd_create_request cr;
	struct kevd_problem prob;
	const void *body;
	size_t len;
	int r;

	(void)a;
	body = kevd_http_body(req, &len);
	if (kevd_request_parse_create(kevd_http_content_type(req), body, len, srv->settings.max_body_bytes, &cr,
				      &prob) < 0)
		return kevd_http_fail(srv->http, req, prob.status, "%s", prob.msg);
	if (cr.snapshot)
		return restore_from(srv, req, &cr);  /* takes cr */
	r = create_from(srv, req, &cr, NULL);  /* takes cr */
	return r;
}

int kevd_vm_handlers_list(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	json_t *vms = json_array();

	(void)a;
	for (struct kevd_registry_entry *e = kevd_registry_first(srv->registry); e; e = kevd_registry_next(e))
		json_array_append_new(vms, vm_json(e));
	kevd_http_reply(srv->http, req, 200, json_pack("{s:o}", "vms", vms));
	return 0;
}

int kevd_vm_handlers_get(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	kevd_http_reply(srv->http, req, 200, vm_json(a->vm));
	return 0;
}

/* A start, stop or delete of one VM on a worker; the registry entry is
 * marked busy meanwhile, so that no second one runs beside it. */
struct vm_job {
	struct kevd_job job;
	struct kevd_server *srv;
	struct evhttp_request *req;      /* NULL for the free that follows a delete */
	struct kevd_registry_entry *e;   /* NULL once detached */
	struct kevd_vm *vm;
	enum kevd_action action;
	bool remove;                     /* a delete */
	int status;                      /* 0, or the HTTP status of the failure in err */
	struct kevd_error err;
};

static int busy(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_registry_entry *e)
{
	return kevd_http_fail(srv->http, req, 409, KEVD_SERVER_BUSY_FMT, kevd_registry_entry_name(e));
}

static struct vm_job *vm_job_new(struct kevd_server *srv, struct evhttp_request *req, struct kevd_registry_entry *e,
				 void (*run)(struct kevd_job *), void (*done)(struct kevd_job *))
{
	struct vm_job *j = calloc(1, sizeof(*j));

	if (!j)
		return NULL;
	*j = (struct vm_job){
		.job = { .run = run, .done = done }, .srv = srv, .req = req, .e = e, .vm = kevd_registry_entry_vm(e),
		.err = KEVD_ERROR_INIT,
	};
	kevd_registry_entry_set_busy(e, true);
	return j;
}

/* Worker: stops the VM and waits for its threads. */
static void stop_run(struct kevd_job *job)
{
	struct vm_job *j = (struct vm_job *)job;

	kevd_vm_stop(j->vm, j->remove ? "deleted" : "stopped through the API");
	if (kevd_vm_wait(j->vm, KEVD_SERVER_STOP_WAIT_MS) < 0) {
		j->status = 500;
		kevd_error_set(&j->err, ETIMEDOUT, "vm '%s' did not stop within %d ms%s", kevd_vm_name(j->vm),
			       KEVD_SERVER_STOP_WAIT_MS, j->remove ? "; try again" : "");
	}
}

/* Worker: the VM of a delete, freed off the loop (its memory unmapped). */
static void free_run(struct kevd_job *job)
{
	kevd_vm_free(((struct vm_job *)job)->vm);
}

static void free_done(struct kevd_job *job)
{
	free(job);
}

/* Loop: a delete's VM has stopped: out of the registry (no request finds
 * it any more), answered, then freed on a worker. */
static void delete_done(struct kevd_job *job)
{
	struct vm_job *j = (struct vm_job *)job;
	struct kevd_server *srv = j->srv;

	if (j->status) {
		kevd_registry_entry_set_busy(j->e, false);
		kevd_http_fail(srv->http, j->req, j->status, "%s", j->err.msg);
		free(j);
		return;
	}
	kevd_info("api: vm '%s' (%s) deleted", kevd_registry_entry_name(j->e), kevd_registry_entry_id(j->e));
	j->vm = kevd_registry_detach(srv->registry, j->e);
	j->e = NULL;
	kevd_http_reply(srv->http, j->req, 204, NULL);
	kevd_server_changed(srv);
	j->req = NULL;
	j->job = (struct kevd_job){ .run = free_run, .done = free_done };
	kevd_jobs_submit(srv->jobs, &j->job);
}

int kevd_vm_handlers_delete(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	struct vm_job *j;

	/* A VM being released is deleted right after: that is not for the
	 * client to retry. */
	if (kevd_registry_entry_busy(a->vm) &&
	    (!kevd_registry_entry_releasing(a->vm) || kevd_registry_entry_after(a->vm)))
		return busy(srv, req, a->vm);
	j = calloc(1, sizeof(*j));
	if (!j)
		return kevd_http_fail(srv->http, req, 500, "out of memory");
	*j = (struct vm_job){
		.job = { .run = stop_run, .done = delete_done }, .srv = srv, .req = req, .e = a->vm,
		.vm = kevd_registry_entry_vm(a->vm), .remove = true, .err = KEVD_ERROR_INIT,
	};
	if (kevd_registry_entry_releasing(a->vm)) {
		kevd_registry_entry_set_after(a->vm, j);
		return 0;
	}
	kevd_registry_entry_set_busy(a->vm, true);
	kevd_jobs_submit(srv->jobs, &j->job);
	return 0;
}

/* Worker: frees what an ended, frozen VM holds but its console. */
static void release_run(struct kevd_job *job)
{
	kevd_vm_release(((struct vm_job *)job)->vm);
}

/* Loop: released; a delete that waited for it goes now. */
static void release_done(struct kevd_job *job)
{
	struct vm_job *j = (struct vm_job *)job;
	struct vm_job *after = kevd_registry_entry_after(j->e);

	kevd_registry_entry_set_releasing(j->e, false);
	kevd_registry_entry_set_after(j->e, NULL);
	if (after) {
		kevd_registry_entry_set_busy(j->e, true);
		kevd_jobs_submit(j->srv->jobs, &after->job);
	}
	kevd_server_changed(j->srv);
	free(j);
}

bool kevd_vm_handlers_release_ended(struct kevd_server *srv)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	bool again = false;

	for (struct kevd_registry_entry *e = kevd_registry_first(srv->registry); e; e = kevd_registry_next(e)) {
		struct kevd_vm *vm = kevd_registry_entry_vm(e);
		struct vm_job *j;

		if (kevd_registry_entry_busy(e) || kevd_vm_frozen(vm) || kevd_vm_state(vm) < KEVD_VM_EXITED)
			continue;
		/* Its vCPU threads may still be on their way out. */
		if (kevd_vm_freeze(vm, &err) < 0) {
			again = true;
			continue;
		}
		j = calloc(1, sizeof(*j));
		if (!j)
			continue;  /* it keeps its memory until deleted */
		*j = (struct vm_job){
			.job = { .run = release_run, .done = release_done }, .srv = srv, .e = e, .vm = vm,
			.err = KEVD_ERROR_INIT,
		};
		kevd_registry_entry_set_releasing(e, true);
		kevd_jobs_submit(srv->jobs, &j->job);
	}
	return again;
}

/* Worker: starts a created VM. */
static void start_run(struct kevd_job *job)
{
	struct vm_job *j = (struct vm_job *)job;

	if (kevd_vm_start(j->vm, &j->err) < 0)
		j->status = kevd_vm_restored(j->vm) && j->err.errnum == EBADMSG ? 422 : 500;
}

/* Worker: parks the VM's vCPUs (and waits for its pager). */
static void pause_run(struct kevd_job *job)
{
	struct vm_job *j = (struct vm_job *)job;

	if (kevd_vm_pause(j->vm, KEVD_SERVER_STOP_WAIT_MS, &j->err) < 0)
		j->status = j->err.errnum == EBUSY ? 409 : 500;
}

static void resume_run(struct kevd_job *job)
{
	struct vm_job *j = (struct vm_job *)job;

	if (kevd_vm_resume(j->vm, &j->err) < 0)
		j->status = 409;
}

/* Loop: a start or stop is done: the VM as it is now, or why not. */
static void action_done(struct kevd_job *job)
{
	struct vm_job *j = (struct vm_job *)job;
	struct kevd_server *srv = j->srv;

	kevd_registry_entry_set_busy(j->e, false);
	if (j->status)
		kevd_http_fail(srv->http, j->req, j->status, "%s", j->err.msg);
	else
		kevd_http_reply(srv->http, j->req, 200, vm_json(j->e));
	kevd_server_changed(srv);
	free(j);
}

/* Checks that ACTION fits the VM's state, then hands it to a worker: a
 * start of a created VM, a stop of a created, running or paused one, a
 * pause of a running one, a resume of a paused one. */
static void (*const action_runs[])(struct kevd_job *) = {
	[KEVD_ACTION_START] = start_run, [KEVD_ACTION_STOP] = stop_run,
	[KEVD_ACTION_PAUSE] = pause_run, [KEVD_ACTION_RESUME] = resume_run,
};

static int apply_action(struct kevd_server *srv, struct evhttp_request *req, struct kevd_registry_entry *e,
			enum kevd_action action)
{
	struct kevd_vm *vm = kevd_registry_entry_vm(e);
	const char *name = kevd_registry_entry_name(e);
	enum kevd_vm_state s = kevd_vm_state(vm);
	struct vm_job *j;

	/* A VM being released has ended: the state checks below answer. */
	if (kevd_registry_entry_busy(e) && !kevd_registry_entry_releasing(e))
		return busy(srv, req, e);
	if (action == KEVD_ACTION_START && s != KEVD_VM_CREATED)
		return kevd_http_fail(srv->http, req, 409, "vm '%s' is %s; only a created VM can start", name,
				      kevd_vm_state_name(s));
	if (action == KEVD_ACTION_STOP && s != KEVD_VM_RUNNING && s != KEVD_VM_CREATED && s != KEVD_VM_PAUSED)
		return kevd_http_fail(srv->http, req, 409, "vm '%s' is %s already", name, kevd_vm_state_name(s));
	if (action == KEVD_ACTION_PAUSE && s != KEVD_VM_RUNNING)
		return kevd_http_fail(srv->http, req, 409, "vm '%s' is %s; only a running VM can pause", name,
				      kevd_vm_state_name(s));
	if (action == KEVD_ACTION_RESUME && s != KEVD_VM_PAUSED)
		return kevd_http_fail(srv->http, req, 409, "vm '%s' is %s; only a paused VM can resume", name,
				      kevd_vm_state_name(s));
	j = vm_job_new(srv, req, e, action_runs[action], action_done);
	if (!j)
		return kevd_http_fail(srv->http, req, 500, "out of memory");
	j->action = action;
	kevd_jobs_submit(srv->jobs, &j->job);
	return 0;
}

int kevd_vm_handlers_action(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	struct kevd_problem prob;
	enum kevd_action action;
	const void *body;
	size_t len;

	body = kevd_http_body(req, &len);
	if (kevd_request_parse_action(kevd_http_content_type(req), body, len, srv->settings.max_body_bytes, &action,
				      &prob) < 0)
		return kevd_http_fail(srv->http, req, prob.status, "%s", prob.msg);
	return apply_action(srv, req, a->vm, action);
}

int kevd_vm_handlers_paging(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	struct kevd_vm *vm = kevd_registry_entry_vm(a->vm);
	struct kevd_pager_stats st;
	struct kevd_error err = KEVD_ERROR_INIT;
	uint64_t mapped, priv;
	json_t *o, *vcpus = json_array();

	kevd_vm_pager_stats(vm, &st);
	o = kevd_json_pager_stats(&st);
	for (unsigned i = 0; i < kevd_vm_vcpu_count(vm); i++) {
		struct kevd_vcpu_info vi;

		kevd_vm_vcpu_info_from(vm, i, &st, &vi);
		json_array_append_new(vcpus, json_pack("{s:i,s:I}", "index", (int)i, "faults", (json_int_t)vi.pager_faults));
	}
	json_object_set_new(o, "vcpus", vcpus);
	json_object_set_new(o, "id", json_string(kevd_registry_entry_id(a->vm)));
	/* A walk of the image's pages: here, not in every scrape. */
	if (kevd_vm_pager_residency(vm, &mapped, &priv, &err) == 0) {
		json_object_set_new(o, "pages_mapped", json_integer((json_int_t)mapped));
		json_object_set_new(o, "pages_private", json_integer((json_int_t)priv));
	} else {
		kevd_debug("vm '%s': %s", kevd_vm_name(vm), err.msg);
		json_object_set_new(o, "pages_mapped", json_null());
		json_object_set_new(o, "pages_private", json_null());
	}
	kevd_http_reply(srv->http, req, 200, o);
	return 0;
}

int kevd_vm_handlers_console(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	uint64_t offset = 0, start, end;
	cleanup_free char *buf = NULL;
	char num[32];
	bool has;
	size_t n;

	if (kevd_http_query_u64(srv->http, req, a->query, "offset", &has, &offset) < 0)
		return -1;
	buf = malloc(srv->settings.console_bytes);
	if (!buf)
		return kevd_http_fail(srv->http, req, 500, "out of memory");
	n = kevd_vm_console_read(kevd_registry_entry_vm(a->vm), offset, buf, srv->settings.console_bytes, &start, &end);
	snprintf(num, sizeof(num), "%" PRIu64, start);
	evhttp_add_header(out, "X-Console-Start", num);
	snprintf(num, sizeof(num), "%" PRIu64, start + n);
	evhttp_add_header(out, "X-Console-Next-Offset", num);
	/* Bytes the caller asked for but the bounded buffer no longer has. */
	evhttp_add_header(out, "X-Console-Dropped", start > offset ? "true" : "false");
	kevd_http_send(srv->http, req, 200, "text/plain", buf, n);  /* raw guest bytes, no charset promised */
	return 0;
}

/* ?gva=&vcpu= to a guest-physical address through the vCPU's page tables,
 * recorded in O; fails the request if it cannot. */
static int translate_gva(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_registry_entry *e,
			 uint64_t gva, uint64_t vcpu, kevd_gpa_t *gpa, json_t *o)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_vm *vm = kevd_registry_entry_vm(e);

	if (vcpu >= kevd_vm_vcpu_count(vm))
		return kevd_http_fail(srv->http, req, 400, "vm '%s' has no vcpu %" PRIu64, kevd_registry_entry_name(e),
				      vcpu);
	if (kevd_vm_translate_gva(vm, (unsigned)vcpu, KEVD_GVA(gva), gpa, &err) < 0)
		return kevd_http_fail(srv->http, req, 422, "%s", err.msg);
	json_object_set_new(o, "gva", json_integer((json_int_t)gva));
	json_object_set_new(o, "vcpu", json_integer((json_int_t)vcpu));
	return 0;
}

int kevd_vm_handlers_translate(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	static const char *const state_names[] = { "unloaded", "loading", "loading", "mapped", "failed" };
	struct kevd_error err = KEVD_ERROR_INIT;
	uint64_t gpa_v = 0, gva_v = 0, vcpu = 0;
	bool has_gpa, has_gva, has_vcpu, backed;
	enum kevd_page_state state;
	cleanup_json json_t *o = NULL;
	kevd_gpa_t gpa;
	void *host;

	if (kevd_http_query_u64(srv->http, req, a->query, "gpa", &has_gpa, &gpa_v) < 0 ||
	    kevd_http_query_u64(srv->http, req, a->query, "gva", &has_gva, &gva_v) < 0 ||
	    kevd_http_query_u64(srv->http, req, a->query, "vcpu", &has_vcpu, &vcpu) < 0)
		return -1;
	if (has_gpa == has_gva)
		return kevd_http_fail(srv->http, req, 400, "give exactly one of the query parameters 'gpa' and 'gva'");
	if (kevd_vm_frozen(kevd_registry_entry_vm(a->vm)))
		return kevd_http_fail(srv->http, req, 409,
				      "vm '%s' has ended and its memory is released (its statistics and console are kept)",
				      kevd_registry_entry_name(a->vm));
	o = json_object();
	if (!has_gva)
		gpa = KEVD_GPA(gpa_v);
	else if (translate_gva(srv, req, a->vm, gva_v, vcpu, &gpa, o) < 0)
		return -1;
	if (kevd_vm_translate_gpa(kevd_registry_entry_vm(a->vm), gpa, &host, &state, &backed, &err) < 0)
		return kevd_http_fail(srv->http, req, 422, "%s", err.msg);
	json_object_set_new(o, "gpa", json_integer((json_int_t)gpa.v));
	json_object_set_new(o, "host", json_integer((json_int_t)(uintptr_t)host));
	json_object_set_new(o, "image_backed", json_boolean(backed));
	json_object_set_new(o, "page_state", json_string(state_names[state]));
	json_object_set_new(o, "loaded", json_boolean(state == KEVD_PAGE_MAPPED));
	kevd_http_reply(srv->http, req, 200, kevd_steal_ptr(&o));
	return 0;
}
