/*
 * The HTTP control plane (see server.h).
 *
 * Request path: evhttp -> handle() (shutdown check, auth for TCP, route by
 * path segments) -> one handler per resource and method -> reply() or
 * fail(), which alone send responses, so every answer is counted in the
 * request metrics and every error carries {"fault_message": ...}.
 *
 * The VM registry is a plain array owned by the loop thread; VM state is
 * read through the VMM's own locked accessors.  A VM's on_end callback
 * runs on a VM thread and only writes the server's eventfd.
 */
#include "config.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <sys/queue.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api/metrics.h"
#include "api/request.h"
#include "api/server_internal.h"
#include "api/stats_json.h"
#include "common/cleanup.h"
#include "common/log.h"

#define ALL_METHODS (EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | \
		     EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT | \
		     EVHTTP_REQ_PATCH)
#define STOP_WAIT_MS 10000

static const char *method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	case EVHTTP_REQ_OPTIONS: return "OPTIONS";
	case EVHTTP_REQ_TRACE: return "TRACE";
	case EVHTTP_REQ_CONNECT: return "CONNECT";
	case EVHTTP_REQ_PATCH: return "PATCH";
	default: return "OTHER";
	}
}

static const char *reason_phrase(int code)
{
	switch (code) {
	case 200: return "OK";
	case 201: return "Created";
	case 204: return "No Content";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 409: return "Conflict";
	case 413: return "Payload Too Large";
	case 415: return "Unsupported Media Type";
	case 422: return "Unprocessable Entity";
	case 429: return "Too Many Requests";
	case 500: return "Internal Server Error";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

static void count_request(struct kevd_server *srv, enum evhttp_cmd_type m, int code)
{
	const char *mn = method_name(m);

	for (size_t i = 0; i < srv->nreq; i++)
		if (srv->req[i].code == code && !strcmp(srv->req[i].method, mn)) {
			srv->req[i].count++;
			return;
		}
	if (srv->nreq < KEVD_SERVER_MAX_REQ_KINDS)
		srv->req[srv->nreq++] = (struct kevd_req_count){ mn, code, 1 };
}

static void send_body(struct kevd_server *srv, struct evhttp_request *req, int code, const char *type,
		      const void *body, size_t len)
{
	struct evbuffer *buf = evbuffer_new();
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);

	count_request(srv, evhttp_request_get_command(req), code);
	if (type)
		evhttp_add_header(out, "Content-Type", type);
	if (buf && body && len && evhttp_request_get_command(req) != EVHTTP_REQ_HEAD)
		evbuffer_add(buf, body, len);
	evhttp_send_reply(req, code, reason_phrase(code), buf);
	if (buf)
		evbuffer_free(buf);
}

/* Sends J (taking it) as the response. */
static void reply(struct kevd_server *srv, struct evhttp_request *req, int code, json_t *j)
{
	char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;

	if ((j && !s) || (!j && code >= 400)) {
		json_decref(j);
		send_body(srv, req, 500, "application/json", "{\"fault_message\":\"out of memory\"}", 33);
		return;
	}
	if (s) {
		size_t n = strlen(s);

		s = realloc(s, n + 2) ?: s;
		s[n] = '\n';
		send_body(srv, req, code, "application/json", s, n + 1);
	} else {
		send_body(srv, req, code, NULL, NULL, 0);
	}
	free(s);
	json_decref(j);
}

/* Answers with an error; returns -1 so that handlers can end with it. */
/* Error messages quote what the client sent, which need not be UTF-8 (a
 * path like /v1/vms/%ff, or a quote cut mid-character); JSON strings must
 * be.  Replaces every byte that does not start a complete, minimal UTF-8
 * sequence with '?'. */
static void utf8_sanitize(char *s)
{
	unsigned char *p = (unsigned char *)s;

	while (*p) {
		size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3 : (*p & 0xf8) == 0xf0 ? 4 : 0;
		size_t i;

		for (i = 1; i < n && (p[i] & 0xc0) == 0x80; i++)
			;
		/* Overlong two-byte forms (0xc0, 0xc1) and beyond U+10FFFF are invalid too. */
		if (n == 0 || i < n || *p == 0xc0 || *p == 0xc1 || *p > 0xf4 ||
		    (*p == 0xe0 && p[1] < 0xa0) || (*p == 0xf0 && p[1] < 0x90) || (*p == 0xf4 && p[1] > 0x8f) ||
		    (*p == 0xed && p[1] > 0x9f)) {
			*p++ = '?';
			continue;
		}
		p += n;
	}
}

static int fail(struct kevd_server *srv, struct evhttp_request *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int fail(struct kevd_server *srv, struct evhttp_request *req, int code, const char *fmt, ...)
{
	char msg[KEVD_ERROR_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	utf8_sanitize(msg);
	kevd_debug("api: %s %s -> %d: %s", method_name(evhttp_request_get_command(req)),
		   evhttp_request_get_uri(req), code, msg);
	reply(srv, req, code, json_pack("{s:s}", "fault_message", msg));
	return -1;
}

static void not_allowed(struct kevd_server *srv, struct evhttp_request *req, const char *allow)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", allow);
	fail(srv, req, 405, "method %s is not allowed here; allowed: %s",
	     method_name(evhttp_request_get_command(req)), allow);
}

/* ---- the registry ---- */

static struct kevd_server_vm *find_vm(struct kevd_server *srv, const char *key)
{
	for (size_t i = 0; i < srv->nvms; i++)
		if (!strcmp(srv->vms[i]->id, key) || !strcmp(srv->vms[i]->name, key))
			return srv->vms[i];
	return NULL;
}

static uint64_t total_memory(struct kevd_server *srv)
{
	uint64_t t = 0;

	for (size_t i = 0; i < srv->nvms; i++)
		t += srv->vms[i]->memory_mib;
	return t;
}

static void on_vm_end(void *arg, struct kevd_vm *vm)
{
	struct kevd_server *srv = arg;
	uint64_t one = 1;

	(void)vm;
	if (write(srv->eventfd, &one, sizeof(one)) < 0) {
		/* counter overflow is impossible at one write per VM end */
	}
}

static void free_vm_entry(struct kevd_server_vm *e)
{
	if (!e)
		return;
	kevd_vm_free(e->vm);
	free(e->id);
	free(e->name);
	free(e);
}

static void format_time(char *buf, size_t len, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static json_t *vm_json(struct kevd_server_vm *e)
{
	json_t *o = kevd_json_vm(e->vm);
	char ts[32];

	format_time(ts, sizeof(ts), e->created);
	json_object_set_new(o, "id", json_string(e->id));
	json_object_set_new(o, "created_at", json_string(ts));
	json_object_set_new(o, "links", json_pack("{s:s++,s:s++,s:s++}",
		"self", "/v1/vms/", e->id, "",
		"paging", "/v1/vms/", e->id, "/paging",
		"console", "/v1/vms/", e->id, "/console"));
	return o;
}

/* ---- request bodies (parsed in request.c) ---- */

static const char *content_type(struct evhttp_request *req)
{
	return evhttp_find_header(evhttp_request_get_input_headers(req), "Content-Type");
}

static const void *body_bytes(struct evhttp_request *req, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);

	*len = evbuffer_get_length(in);
	return *len ? (const void *)evbuffer_pullup(in, (ssize_t)*len) : "";
}

/* Opens PATH (the request's KEY) beneath the image directory: no absolute
 * path, no "..", no symlink leading out (openat2 RESOLVE_BENEATH refuses
 * them), no magic /proc links.  Returns the fd or fails the request. */
static int open_image(struct kevd_server *srv, struct evhttp_request *req, const char *key, const char *path)
{
	struct open_how how = {
		.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
		.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	int fd;

	if (!*path || path[0] == '/')
		return fail(srv, req, 400, "'%s' must be a relative path inside the image directory, not '%s'", key, path);
	fd = (int)syscall(SYS_openat2, srv->image_dirfd, path, &how, sizeof(how));
	if (fd >= 0)
		return fd;
	switch (errno) {
	case EXDEV:
		return fail(srv, req, 400, "'%s' '%s' leads outside the image directory", key, path);
	case ENOENT:
	case ENOTDIR:
		return fail(srv, req, 422, "image '%s': no such file in the image directory", path);
	case ELOOP:
		return fail(srv, req, 400, "'%s' '%s': too many symbolic links", key, path);
	default:
		return fail(srv, req, 422, "image '%s': %s", path, strerror(errno));
	}
}

/* Ids are a counter (unique within this daemon) and random bits (so that
 * ids of a restarted daemon do not collide with ones clients still hold). */
static void new_id(struct kevd_server *srv, char *buf, size_t len)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)time(NULL) * 2654435761u;
	snprintf(buf, len, "%04x%08" PRIx32, (unsigned)(++srv->id_counter & 0xffff), r);
}

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

static int create_vm(struct kevd_server *srv, struct evhttp_request *req)
{
	const struct kevd_server_settings *st = &srv->settings;
	struct kevd_create_request cr;
	struct kevd_vm_config cfg = { .console_fd = -1 };
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_problem prob;
	struct kevd_server_vm *e, **grown;
	const void *body;
	char id[32], loc[64];
	size_t len;
	int fd, r = -1;

	body = body_bytes(req, &len);
	if (kevd_request_parse_create(content_type(req), body, len, st->max_body_bytes, &cr, &prob) < 0)
		return fail(srv, req, prob.status, "%s", prob.msg);
	if (cr.vcpus > st->max_vcpus) {
		fail(srv, req, 429, "%" PRIu64 " vCPUs is more than this daemon's limit of %u per VM", cr.vcpus,
		     st->max_vcpus);
		goto out;
	}
	if (cr.memory_mib > st->max_memory_mib) {
		fail(srv, req, 429, "%" PRIu64 " MiB is more than this daemon's limit of %" PRIu64 " MiB per VM",
		     cr.memory_mib, st->max_memory_mib);
		goto out;
	}
	if (srv->nvms >= st->max_vms) {
		fail(srv, req, 429, "this daemon already holds its limit of %u VMs", st->max_vms);
		goto out;
	}
	if (total_memory(srv) + cr.memory_mib > st->max_total_memory_mib) {
		fail(srv, req, 429, "%" PRIu64 " MiB more would pass this daemon's total of %" PRIu64 " MiB (%" PRIu64
		     " in use)", cr.memory_mib, st->max_total_memory_mib, total_memory(srv));
		goto out;
	}
	if (cr.name && find_vm(srv, cr.name)) {
		fail(srv, req, 409, "a VM named '%s' exists", cr.name);
		goto out;
	}
	fd = open_image(srv, req, "kernel", cr.kernel);
	if (fd < 0)
		goto out;
	if (cr.initrd) {
		cfg.initrd_fd = open_image(srv, req, "initrd", cr.initrd);
		if (cfg.initrd_fd < 0) {
			close(fd);
			goto out;
		}
		cfg.initrd_fd_valid = true;
		cfg.initrd = cr.initrd;
	}
	new_id(srv, id, sizeof(id));
	cfg.name = cr.name ? cr.name : id;
	cfg.kernel = cr.kernel;
	cfg.kernel_fd_valid = true;
	cfg.kernel_fd = fd;
	cfg.memory_mib = cr.memory_mib;
	cfg.vcpus = (unsigned)cr.vcpus;
	cfg.cmdline = cr.cmdline;
	cfg.eager = cr.eager;
	cfg.protocol = cr.protocol;
	cfg.window_pages = cr.window_pages ? cr.window_pages : st->window_pages;
	cfg.pager_threads = st->pager_threads;
	cfg.console_bytes = st->console_bytes;
	cfg.on_end = on_vm_end;
	cfg.cb_arg = srv;

	e = calloc(1, sizeof(*e));
	grown = realloc(srv->vms, (srv->nvms + 1) * sizeof(*grown));
	if (grown)
		srv->vms = grown;
	if (!e || !grown || !(e->id = strdup(id)) || !(e->name = strdup(cfg.name))) {
		close(fd);
		if (cfg.initrd_fd_valid)
			close(cfg.initrd_fd);
		free_vm_entry(e);
		fail(srv, req, 500, "out of memory");
		goto out;
	}
	e->memory_mib = cr.memory_mib;
	e->created = time(NULL);
	if (kevd_vm_create(&cfg, &e->vm, &err) < 0) {
		free_vm_entry(e);
		fail(srv, req, image_status(err.errnum), "%s", err.msg);
		goto out;
	}
	if (cr.start && kevd_vm_start(e->vm, &err) < 0) {
		free_vm_entry(e);
		fail(srv, req, 500, "%s", err.msg);
		goto out;
	}
	srv->vms[srv->nvms++] = e;
	kevd_info("api: vm '%s' (%s) created from '%s'", e->name, e->id, cr.kernel);
	snprintf(loc, sizeof(loc), "/v1/vms/%s", e->id);
	evhttp_add_header(evhttp_request_get_output_headers(req), "Location", loc);
	reply(srv, req, 201, vm_json(e));
	if (srv->on_change)
		srv->on_change(srv->cb_arg, srv);
	r = 0;
out:
	kevd_request_create_free(&cr);
	return r;
}

static int list_vms(struct kevd_server *srv, struct evhttp_request *req)
{
	json_t *a = json_array();

	for (size_t i = 0; i < srv->nvms; i++)
		json_array_append_new(a, vm_json(srv->vms[i]));
	reply(srv, req, 200, json_pack("{s:o}", "vms", a));
	return 0;
}

static int delete_vm(struct kevd_server *srv, struct evhttp_request *req, struct kevd_server_vm *e)
{
	kevd_vm_stop(e->vm, "deleted");
	if (kevd_vm_wait(e->vm, STOP_WAIT_MS) < 0)
		return fail(srv, req, 500, "vm '%s' did not stop within %d ms; try again", e->name, STOP_WAIT_MS);
	for (size_t i = 0; i < srv->nvms; i++)
		if (srv->vms[i] == e) {
			memmove(&srv->vms[i], &srv->vms[i + 1], (srv->nvms - i - 1) * sizeof(e));
			srv->nvms--;
			break;
		}
	kevd_info("api: vm '%s' (%s) deleted", e->name, e->id);
	free_vm_entry(e);
	reply(srv, req, 204, NULL);
	if (srv->on_change)
		srv->on_change(srv->cb_arg, srv);
	return 0;
}

static int vm_action(struct kevd_server *srv, struct evhttp_request *req, struct kevd_server_vm *e)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevd_problem prob;
	enum kevd_action action;
	enum kevd_vm_state s;
	const void *body;
	size_t len;

	body = body_bytes(req, &len);
	if (kevd_request_parse_action(content_type(req), body, len, srv->settings.max_body_bytes, &action, &prob) < 0)
		return fail(srv, req, prob.status, "%s", prob.msg);
	s = kevd_vm_state(e->vm);
	if (action == KEVD_ACTION_START) {
		if (s != KEVD_VM_CREATED)
			return fail(srv, req, 409, "vm '%s' is %s; only a created VM can start", e->name,
				    kevd_vm_state_name(s));
		if (kevd_vm_start(e->vm, &err) < 0)
			return fail(srv, req, 500, "%s", err.msg);
	} else {
		if (s != KEVD_VM_RUNNING && s != KEVD_VM_CREATED)
			return fail(srv, req, 409, "vm '%s' is %s already", e->name, kevd_vm_state_name(s));
		kevd_vm_stop(e->vm, "stopped through the API");
		if (kevd_vm_wait(e->vm, STOP_WAIT_MS) < 0)
			return fail(srv, req, 500, "vm '%s' did not stop within %d ms", e->name, STOP_WAIT_MS);
	}
	reply(srv, req, 200, vm_json(e));
	if (srv->on_change)
		srv->on_change(srv->cb_arg, srv);
	return 0;
}

static int vm_paging(struct kevd_server *srv, struct evhttp_request *req, struct kevd_server_vm *e)
{
	struct kevd_pager_stats st;
	json_t *o, *vcpus = json_array();

	kevd_vm_pager_stats(e->vm, &st);
	o = kevd_json_pager_stats(&st);
	for (unsigned i = 0; i < kevd_vm_vcpu_count(e->vm); i++) {
		struct kevd_vcpu_info vi;

		kevd_vm_vcpu_info(e->vm, i, &vi);
		json_array_append_new(vcpus, json_pack("{s:i,s:I}", "index", (int)i, "faults", (json_int_t)vi.pager_faults));
	}
	json_object_set_new(o, "vcpus", vcpus);
	json_object_set_new(o, "id", json_string(e->id));
	reply(srv, req, 200, o);
	return 0;
}

static int query_u64(struct kevd_server *srv, struct evhttp_request *req, struct evkeyvalq *q, const char *key,
		     bool *present, uint64_t *out)
{
	const char *v = evhttp_find_header(q, key);
	bool hex;
	char *end;

	*present = v != NULL;
	if (!v)
		return 0;
	/* Decimal, or hex after 0x: never octal, whatever a leading 0 says. */
	hex = v[0] == '0' && (v[1] == 'x' || v[1] == 'X');
	errno = 0;
	*out = strtoull(hex ? v + 2 : v, &end, hex ? 16 : 10);
	if (errno || end == (hex ? v + 2 : v) || *end || v[0] == '-' || v[0] == '+' || v[0] == ' ')
		return fail(srv, req, 400, "query parameter '%s' must be a number (decimal or 0x hex), not '%s'", key, v);
	return 0;
}

static int vm_console(struct kevd_server *srv, struct evhttp_request *req, struct kevd_server_vm *e,
		       struct evkeyvalq *q)
{
	uint64_t offset = 0, start, end;
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	cleanup_free char *buf = NULL;
	char num[32];
	bool has;
	size_t n;

	if (query_u64(srv, req, q, "offset", &has, &offset) < 0)
		return -1;
	buf = malloc(srv->settings.console_bytes);
	if (!buf)
		return fail(srv, req, 500, "out of memory");
	n = kevd_vm_console_read(e->vm, offset, buf, srv->settings.console_bytes, &start, &end);
	snprintf(num, sizeof(num), "%" PRIu64, start);
	evhttp_add_header(out, "X-Console-Start", num);
	snprintf(num, sizeof(num), "%" PRIu64, start + n);
	evhttp_add_header(out, "X-Console-Next-Offset", num);
	/* Bytes the caller asked for but the bounded buffer no longer has. */
	evhttp_add_header(out, "X-Console-Dropped", start > offset ? "true" : "false");
	send_body(srv, req, 200, "text/plain", buf, n);  /* raw guest bytes, no charset promised */
	return 0;
}

static int vm_translate(struct kevd_server *srv, struct evhttp_request *req, struct kevd_server_vm *e,
			 struct evkeyvalq *q)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	uint64_t gpa_v = 0, gva_v = 0, vcpu = 0;
	bool has_gpa, has_gva, has_vcpu, backed;
	enum kevd_page_state state;
	kevd_gpa_t gpa;
	void *host;
	json_t *o;
	static const char *const state_names[] = { "unloaded", "loading", "loading", "mapped", "failed" };

	if (query_u64(srv, req, q, "gpa", &has_gpa, &gpa_v) < 0 || query_u64(srv, req, q, "gva", &has_gva, &gva_v) < 0 ||
	    query_u64(srv, req, q, "vcpu", &has_vcpu, &vcpu) < 0)
		return -1;
	if (has_gpa == has_gva)
		return fail(srv, req, 400, "give exactly one of the query parameters 'gpa' and 'gva'");
	o = json_object();
	if (has_gva) {
		if (vcpu >= kevd_vm_vcpu_count(e->vm)) {
			json_decref(o);
			return fail(srv, req, 400, "vm '%s' has no vcpu %" PRIu64, e->name, vcpu);
		}
		if (kevd_vm_translate_gva(e->vm, (unsigned)vcpu, KEVD_GVA(gva_v), &gpa, &err) < 0) {
			json_decref(o);
			return fail(srv, req, 422, "%s", err.msg);
		}
		json_object_set_new(o, "gva", json_integer((json_int_t)gva_v));
		json_object_set_new(o, "vcpu", json_integer((json_int_t)vcpu));
	} else {
		gpa = KEVD_GPA(gpa_v);
	}
	if (kevd_vm_translate_gpa(e->vm, gpa, &host, &state, &backed, &err) < 0) {
		json_decref(o);
		return fail(srv, req, 422, "%s", err.msg);
	}
	json_object_set_new(o, "gpa", json_integer((json_int_t)gpa.v));
	json_object_set_new(o, "host", json_integer((json_int_t)(uintptr_t)host));
	json_object_set_new(o, "image_backed", json_boolean(backed));
	json_object_set_new(o, "page_state", json_string(state_names[state]));
	json_object_set_new(o, "loaded", json_boolean(state == KEVD_PAGE_MAPPED));
	reply(srv, req, 200, o);
	return 0;
}

static int metrics(struct kevd_server *srv, struct evhttp_request *req)
{
	char *text = NULL;
	size_t len = 0;

	if (kevd_metrics_render(srv, &text, &len) < 0)
		return fail(srv, req, 500, "out of memory");
	send_body(srv, req, 200, "text/plain; version=0.0.4; charset=utf-8", text, len);
	free(text);
	return 0;
}

/* Splits PATH into at most MAX segments (without empty ones). */
static size_t split_path(char *path, char **seg, size_t max)
{
	size_t n = 0;

	for (char *tok = strtok(path, "/"); tok; tok = strtok(NULL, "/")) {
		if (n == max)
			return max + 1;
		seg[n++] = tok;
	}
	return n;
}

static bool authorized(struct kevd_server *srv, struct kevd_listener *l, struct evhttp_request *req,
		       const char *path)
{
	const char *auth;
	size_t tl;

	if (!l->needs_token)
		return true;
	if (!srv->token)
		return false;  /* fail closed: a TCP listener without a token serves nothing private */
	if (!strcmp(path, "/metrics") || !strcmp(path, "/v1/health"))
		return true;
	auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	tl = strlen(srv->token);
	if (auth && !strncmp(auth, "Bearer ", 7) && strlen(auth + 7) == tl) {
		unsigned char d = 0;

		/* Constant time in the token's length. */
		for (size_t i = 0; i < tl; i++)
			d |= (unsigned char)(auth[7 + i] ^ srv->token[i]);
		return d == 0;
	}
	return false;
}

static void handle(struct evhttp_request *req, void *arg)
{
	struct kevd_listener *l = arg;
	struct kevd_server *srv = l->srv;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
	const char *query = uri ? evhttp_uri_get_query(uri) : NULL;
	struct evkeyvalq q;
	char *seg[5];
	cleanup_free char *path = NULL;
	struct kevd_server_vm *e;
	size_t n;

	TAILQ_INIT(&q);
	if (srv->shutting_down) {
		fail(srv, req, 503, "kevd is shutting down");
		return;
	}
	if (!raw || !(path = evhttp_uridecode(raw, 0, NULL))) {
		fail(srv, req, 400, "bad request URI");
		return;
	}
	if (!authorized(srv, l, req, path)) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Bearer");
		fail(srv, req, 401, "this listener needs 'Authorization: Bearer <token>'");
		return;
	}
	if (query && evhttp_parse_query_str(query, &q) < 0) {
		fail(srv, req, 400, "bad query string");
		return;
	}

	if (!strcmp(path, "/metrics")) {
		if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
			metrics(srv, req);
		else
			not_allowed(srv, req, "GET, HEAD");
		goto out;
	}
	n = split_path(path, seg, 4);
	if (n < 2 || strcmp(seg[0], "v1")) {
		fail(srv, req, 404, "no resource at %s", raw);
		goto out;
	}
	if (n == 2 && !strcmp(seg[1], "health")) {
		if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
			reply(srv, req, 200, json_pack("{s:s,s:i}", "status", "ok", "vms", (int)srv->nvms));
		else
			not_allowed(srv, req, "GET, HEAD");
		goto out;
	}
	if (n == 2 && !strcmp(seg[1], "version")) {
		if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
			reply(srv, req, 200, json_pack("{s:s,s:s}", "version", PACKAGE_VERSION, "api", "v1"));
		else
			not_allowed(srv, req, "GET, HEAD");
		goto out;
	}
	if (strcmp(seg[1], "vms") || n > 4) {
		fail(srv, req, 404, "no resource at %s", raw);
		goto out;
	}
	if (n == 2) {
		if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
			list_vms(srv, req);
		else if (m == EVHTTP_REQ_POST)
			create_vm(srv, req);
		else
			not_allowed(srv, req, "GET, HEAD, POST");
		goto out;
	}
	e = find_vm(srv, seg[2]);
	if (!e) {
		fail(srv, req, 404, "no VM '%s'", seg[2]);
		goto out;
	}
	if (n == 3) {
		if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
			reply(srv, req, 200, vm_json(e));
		else if (m == EVHTTP_REQ_DELETE)
			delete_vm(srv, req, e);
		else
			not_allowed(srv, req, "GET, HEAD, DELETE");
	} else if (!strcmp(seg[3], "actions")) {
		if (m == EVHTTP_REQ_PUT)
			vm_action(srv, req, e);
		else
			not_allowed(srv, req, "PUT");
	} else if (!strcmp(seg[3], "paging")) {
		if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
			vm_paging(srv, req, e);
		else
			not_allowed(srv, req, "GET, HEAD");
	} else if (!strcmp(seg[3], "console")) {
		if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
			vm_console(srv, req, e, &q);
		else
			not_allowed(srv, req, "GET, HEAD");
	} else if (!strcmp(seg[3], "translate")) {
		if (m == EVHTTP_REQ_GET || m == EVHTTP_REQ_HEAD)
			vm_translate(srv, req, e, &q);
		else
			not_allowed(srv, req, "GET, HEAD");
	} else {
		fail(srv, req, 404, "no resource at %s", raw);
	}
out:
	evhttp_clear_headers(&q);
}

/* ---- listeners ---- */

static int bind_unix(struct kevd_server *srv, const char *path, unsigned mode, struct kevd_error *err)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	cleanup_close int fd = -1;
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path))
		return kevd_error_set(err, ENAMETOOLONG, "api socket '%s': path too long", path);
	strcpy(sa.sun_path, path);
	/* A socket file left by a kevd that died: remove it if nobody answers. */
	if (lstat(path, &st) == 0) {
		cleanup_close int probe = -1;

		if (!S_ISSOCK(st.st_mode))
			return kevd_error_set(err, EEXIST, "api socket '%s': exists and is not a socket", path);
		probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0)
			return kevd_error_set(err, EADDRINUSE, "api socket '%s': another kevd is listening", path);
		kevd_info("api: removing stale socket '%s'", path);
		unlink(path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return kevd_error_sys(err, errno, "api socket '%s'", path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return kevd_error_sys(err, errno, "api socket '%s': bind", path);
	if (chmod(path, mode) < 0 || listen(fd, 128) < 0) {
		int e = errno;

		unlink(path);
		return kevd_error_sys(err, e, "api socket '%s'", path);
	}
	srv->socket_path = strdup(path);
	return kevd_steal_fd(&fd);
}

static int bind_tcp(const struct kevd_server_settings *s, struct kevd_error *err)
{
	cleanup_close int fd = socket(s->listen_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;

	if (fd < 0)
		return kevd_error_sys(err, errno, "listen '%s'", s->listen);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&s->listen_addr, s->listen_len) < 0 || listen(fd, 128) < 0)
		return kevd_error_sys(err, errno, "listen '%s'", s->listen);
	return kevd_steal_fd(&fd);
}

static int add_listener(struct kevd_server *srv, struct kevd_listener *l, int fd, bool needs_token,
			struct kevd_error *err)
{
	l->srv = srv;
	l->needs_token = needs_token;
	l->fd = fd;
	l->http = evhttp_new(srv->base);
	if (!l->http)
		return kevd_error_sys(err, ENOMEM, "api: evhttp_new");
	evhttp_set_allowed_methods(l->http, ALL_METHODS);
	evhttp_set_gencb(l->http, handle, l);
	evhttp_set_max_headers_size(l->http, 16384);
	/* Bodies between the API limit and this cap get a JSON 413 from
	 * us; beyond it libevent refuses them itself before buffering. */
	evhttp_set_max_body_size(l->http, (ev_ssize_t)(srv->settings.max_body_bytes * 4));
	evhttp_set_timeout(l->http, (int)srv->settings.request_timeout_s);
	l->bound = evhttp_accept_socket_with_handle(l->http, fd);
	if (!l->bound)
		return kevd_error_set(err, EIO, "api: cannot accept on the listening socket");
	l->fd = -1;  /* evhttp owns it now */
	return 0;
}

static void on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	struct kevd_server *srv = arg;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) == sizeof(n) && srv->on_change)
		srv->on_change(srv->cb_arg, srv);
}

static int copy_settings(struct kevd_server *srv, const struct kevd_server_settings *s, struct kevd_error *err)
{
	char *tok = NULL;

	if (s->token && !(tok = strdup(s->token)))
		return kevd_error_sys(err, ENOMEM, "api");
	free(srv->token);
	srv->token = tok;
	srv->settings = *s;
	srv->settings.token = NULL;
	srv->settings.socket_path = NULL;
	srv->settings.listen = NULL;
	srv->settings.image_dir = NULL;
	if (!srv->settings.max_body_bytes)
		srv->settings.max_body_bytes = 65536;
	if (!srv->settings.console_bytes)
		srv->settings.console_bytes = 1 << 20;
	if (!srv->settings.request_timeout_s)
		srv->settings.request_timeout_s = 30;
	return 0;
}

int kevd_server_new(struct event_base *base, const struct kevd_server_settings *s,
		    kevd_server_change_fn on_change, void *arg,
		    struct kevd_server **out, struct kevd_error *err)
{
	struct kevd_server *srv = calloc(1, sizeof(*srv));
	int fd, r;

	if (!srv)
		return kevd_error_sys(err, ENOMEM, "api");
	srv->base = base;
	srv->on_change = on_change;
	srv->cb_arg = arg;
	srv->eventfd = -1;
	srv->image_dirfd = -1;
	srv->unix_l.fd = srv->tcp_l.fd = -1;
	if ((r = copy_settings(srv, s, err)) < 0)
		goto fail;
	srv->image_dirfd = open(s->image_dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (srv->image_dirfd < 0) {
		r = kevd_error_sys(err, errno, "image directory '%s'", s->image_dir);
		goto fail;
	}
	srv->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (srv->eventfd < 0) {
		r = kevd_error_sys(err, errno, "api: eventfd");
		goto fail;
	}
	srv->end_event = event_new(base, srv->eventfd, EV_READ | EV_PERSIST, on_eventfd, srv);
	if (!srv->end_event || event_add(srv->end_event, NULL) < 0) {
		r = kevd_error_set(err, ENOMEM, "api: event_new");
		goto fail;
	}
	fd = bind_unix(srv, s->socket_path, s->socket_mode, err);
	if (fd < 0 || (r = add_listener(srv, &srv->unix_l, fd, false, err)) < 0) {
		r = fd < 0 ? fd : r;
		goto fail;
	}
	if (s->listen && *s->listen) {
		fd = bind_tcp(s, err);
		if (fd < 0 || (r = add_listener(srv, &srv->tcp_l, fd, true, err)) < 0) {
			r = fd < 0 ? fd : r;
			goto fail;
		}
	}
	*out = srv;
	return 0;
fail:
	kevd_server_free(srv);
	return r;
}

int kevd_server_update(struct kevd_server *srv, const struct kevd_server_settings *s, struct kevd_error *err)
{
	size_t body = srv->settings.max_body_bytes;
	unsigned timeout = srv->settings.request_timeout_s;
	int r = copy_settings(srv, s, err);

	/* The listeners keep their limits: evhttp applies them per listener. */
	srv->settings.max_body_bytes = body;
	srv->settings.request_timeout_s = timeout;
	return r;
}

static void close_listener(struct kevd_listener *l)
{
	if (l->http)
		evhttp_free(l->http);
	l->http = NULL;
	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
}

void kevd_server_shutdown(struct kevd_server *srv)
{
	srv->shutting_down = true;
	for (struct kevd_listener *l = &srv->unix_l; l; l = l == &srv->unix_l ? &srv->tcp_l : NULL)
		if (l->http && l->bound) {
			evhttp_del_accept_socket(l->http, l->bound);
			l->bound = NULL;
		}
	for (size_t i = 0; i < srv->nvms; i++)
		kevd_vm_stop(srv->vms[i]->vm, "kevd is shutting down");
	for (size_t i = 0; i < srv->nvms; i++)
		if (kevd_vm_wait(srv->vms[i]->vm, STOP_WAIT_MS) < 0)
			kevd_warn("vm '%s' did not stop within %d ms", srv->vms[i]->name, STOP_WAIT_MS);
}

void kevd_server_free(struct kevd_server *srv)
{
	if (!srv)
		return;
	close_listener(&srv->tcp_l);
	close_listener(&srv->unix_l);
	if (srv->socket_path) {
		unlink(srv->socket_path);
		free(srv->socket_path);
	}
	for (size_t i = 0; i < srv->nvms; i++)
		free_vm_entry(srv->vms[i]);
	free(srv->vms);
	if (srv->end_event)
		event_free(srv->end_event);
	if (srv->eventfd >= 0)
		close(srv->eventfd);
	if (srv->image_dirfd >= 0)
		close(srv->image_dirfd);
	free(srv->token);
	free(srv);
}

unsigned kevd_server_vm_count(struct kevd_server *srv)
{
	return (unsigned)srv->nvms;
}

unsigned kevd_server_running_count(struct kevd_server *srv)
{
	unsigned n = 0;

	for (size_t i = 0; i < srv->nvms; i++)
		n += kevd_vm_state(srv->vms[i]->vm) == KEVD_VM_RUNNING;
	return n;
}
