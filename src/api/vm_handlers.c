/*
 * The VM resources (see vm_handlers.h): create, list, get, delete, the
 * start/stop action, and each VM's paging statistics, console and address
 * translation.  Bodies are parsed in request.c, image paths resolved in
 * imagedir.c and VMs kept in the registry; VM state is read through the
 * VMM's locked accessors, so nothing here waits on a VM thread but a stop.
 */
#include "config.h"

#include <errno.h>
#include <event2/http.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "api/http.h"
#include "api/imagedir.h"
#include "api/registry.h"
#include "api/request.h"
#include "api/server_internal.h"
#include "api/stats_json.h"
#include "api/vm_handlers.h"
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
		return 422;
	default:
		return 500;
	}
}

/* The daemon's limits, checked before anything is opened. */
static int check_limits(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_create_request *cr)
{
	const struct kevd_server_settings *st = &srv->settings;
	uint64_t in_use = kevd_registry_total_memory(srv->registry);

	if (cr->vcpus > st->max_vcpus)
		return kevd_http_fail(srv->http, req, 429, "%" PRIu64 " vCPUs is more than this daemon's limit of %u per VM",
				      cr->vcpus, st->max_vcpus);
	if (cr->memory_mib > st->max_memory_mib)
		return kevd_http_fail(srv->http, req, 429,
				      "%" PRIu64 " MiB is more than this daemon's limit of %" PRIu64 " MiB per VM",
				      cr->memory_mib, st->max_memory_mib);
	if (kevd_registry_count(srv->registry) >= st->max_vms)
		return kevd_http_fail(srv->http, req, 429, "this daemon already holds its limit of %u VMs", st->max_vms);
	if (in_use + cr->memory_mib > st->max_total_memory_mib)
		return kevd_http_fail(srv->http, req, 429,
				      "%" PRIu64 " MiB more would pass this daemon's total of %" PRIu64 " MiB (%" PRIu64
				      " in use)", cr->memory_mib, st->max_total_memory_mib, in_use);
	if (cr->name && kevd_registry_find(srv->registry, cr->name))
		return kevd_http_fail(srv->http, req, 409, "a VM named '%s' exists", cr->name);
	return 0;
}

/* Opens the kernel and the initrd, if any, beneath the image directory
 * into CFG, which then owns the fds; on failure none is left open. */
static int open_images(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_create_request *cr,
		       struct kevd_vm_config *cfg)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	cleanup_close int kernel_fd = -1;
	int status;

	kernel_fd = kevd_imagedir_open(srv->image_dirfd, "kernel", cr->kernel, &status, &err);
	if (kernel_fd < 0)
		return kevd_http_fail(srv->http, req, status, "%s", err.msg);
	if (cr->initrd) {
		cfg->initrd_fd = kevd_imagedir_open(srv->image_dirfd, "initrd", cr->initrd, &status, &err);
		if (cfg->initrd_fd < 0)
			return kevd_http_fail(srv->http, req, status, "%s", err.msg);
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
	cfg->window_max_pages = cr->window_max_pages ? cr->window_max_pages : st->window_max_pages;
	cfg->protocol = cr->protocol;
	cfg->window_pages = cr->window_pages ? cr->window_pages : st->window_pages;
	cfg->pager_threads = st->pager_threads;
	cfg->vcpu_nice = st->vcpu_nice;
	cfg->console_bytes = st->console_bytes;
	cfg->on_end = kevd_server_vm_ended;
	cfg->cb_arg = srv;
}

/* Creates the VM that CR asks for, adds it to the registry and starts it
 * unless asked not to; answers 201 with the VM. */
static int create_from(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_create_request *cr)
{
	struct kevd_vm_config cfg = { .console_fd = -1 };
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_registry_entry *e;
	struct kevd_vm *vm = NULL;
	char id[KEVD_REGISTRY_ID_SIZE], loc[64];

	if (check_limits(srv, req, cr) < 0 || open_images(srv, req, cr, &cfg) < 0)
		return -1;
	kevd_registry_new_id(srv->registry, id);
	fill_config(srv, cr, id, &cfg);
	if (kevd_vm_create(&cfg, &vm, &err) < 0)  /* takes the image fds */
		return kevd_http_fail(srv->http, req, image_status(err.errnum), "%s", err.msg);
	if (kevd_registry_add(srv->registry, id, cfg.name, vm, cr->memory_mib, &e, &err) < 0)
		return kevd_http_fail(srv->http, req, 500, "out of memory");
	if (cr->start && kevd_vm_start(vm, &err) < 0) {
		kevd_registry_remove(srv->registry, e);
		return kevd_http_fail(srv->http, req, 500, "%s", err.msg);
	}
	kevd_info("api: vm '%s' (%s) created from '%s'", kevd_registry_entry_name(e), id, cr->kernel);
	snprintf(loc, sizeof(loc), "/v1/vms/%s", id);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
	kevd_http_reply(srv->http, req, 201, vm_json(e));
	kevd_server_changed(srv);
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
	r = create_from(srv, req, &cr);
	kevd_request_create_free(&cr);
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

int kevd_vm_handlers_delete(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_route_args *a)
{
	struct kevd_vm *vm = kevd_registry_entry_vm(a->vm);

	kevd_vm_stop(vm, "deleted");
	if (kevd_vm_wait(vm, KEVD_SERVER_STOP_WAIT_MS) < 0)
		return kevd_http_fail(srv->http, req, 500, "vm '%s' did not stop within %d ms; try again",
				      kevd_registry_entry_name(a->vm), KEVD_SERVER_STOP_WAIT_MS);
	kevd_info("api: vm '%s' (%s) deleted", kevd_registry_entry_name(a->vm), kevd_registry_entry_id(a->vm));
	kevd_registry_remove(srv->registry, a->vm);
	kevd_http_reply(srv->http, req, 204, NULL);
	kevd_server_changed(srv);
	return 0;
}

/* Starts a created VM, or stops a created or running one and waits for it. */
static int apply_action(struct kevd_server *srv, struct evhttp_request *req, const struct kevd_registry_entry *e,
			enum kevd_action action)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_vm *vm = kevd_registry_entry_vm(e);
	const char *name = kevd_registry_entry_name(e);
	enum kevd_vm_state s = kevd_vm_state(vm);

	if (action == KEVD_ACTION_START) {
		if (s != KEVD_VM_CREATED)
			return kevd_http_fail(srv->http, req, 409, "vm '%s' is %s; only a created VM can start", name,
					      kevd_vm_state_name(s));
		if (kevd_vm_start(vm, &err) < 0)
			return kevd_http_fail(srv->http, req, 500, "%s", err.msg);
		return 0;
	}
	if (s != KEVD_VM_RUNNING && s != KEVD_VM_CREATED)
		return kevd_http_fail(srv->http, req, 409, "vm '%s' is %s already", name, kevd_vm_state_name(s));
	kevd_vm_stop(vm, "stopped through the API");
	if (kevd_vm_wait(vm, KEVD_SERVER_STOP_WAIT_MS) < 0)
		return kevd_http_fail(srv->http, req, 500, "vm '%s' did not stop within %d ms", name,
				      KEVD_SERVER_STOP_WAIT_MS);
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
	if (apply_action(srv, req, a->vm, action) < 0)
		return -1;
	kevd_http_reply(srv->http, req, 200, vm_json(a->vm));
	kevd_server_changed(srv);
	return 0;
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
