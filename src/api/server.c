/*
 * The control plane's lifecycle (see server.h): the server owns the VM
 * registry, the answer counts, the image directory, the listeners and the
 * eventfd through which VM threads report that a VM ended.
 *
 * A request goes: listener.c (shutdown, path, token, query checks) ->
 * routes.c (route table, {vm} lookup, 404/405) -> a handler in
 * vm_handlers.c or system_handlers.c -> http.c, which alone sends answers.
 */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "api/http.h"
#include "api/imagedir.h"
#include "api/jobs.h"
#include "api/listener.h"
#include "api/registry.h"
#include "api/scrapes.h"
#include "api/server_internal.h"
#include "api/system_handlers.h"
#include "api/snapshots.h"
#include "api/spares.h"
#include "api/vm_handlers.h"
#include "api/workingsets.h"
#include "common/log.h"

void kevd_server_changed(struct kevd_server *srv)
{
	if (srv->on_change)
		srv->on_change(srv->cb_arg, srv);
}

void kevd_server_vm_ended(void *arg, struct kevd_vm *vm)
{
	struct kevd_server *srv = arg;
	uint64_t one = 1;

	(void)vm;
	if (write(srv->eventfd, &one, sizeof(one)) < 0) {
		/* counter overflow is impossible at one write per VM end */
	}
}

/* Ended VMs let go of what they hold; one whose threads are still on
 * their way out is tried again in a moment. */
static void release_ended(struct kevd_server *srv)
{
	struct timeval soon = { 0, 20000 };

	if (!srv->shutting_down && kevd_vm_handlers_release_ended(srv))
		event_add(srv->release_retry, &soon);
}

static void on_release_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	release_ended(arg);
}

static void on_eventfd(evutil_socket_t fd, short what, void *arg)
{
	struct kevd_server *srv = arg;
	uint64_t n;

	(void)what;
	if (read(fd, &n, sizeof(n)) == sizeof(n)) {
		kevd_server_changed(srv);
		release_ended(srv);
	}
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
	srv->settings.metrics_listen = NULL;
	srv->settings.image_dir = NULL;
	if (!srv->settings.max_body_bytes)
		srv->settings.max_body_bytes = 65536;
	if (!srv->settings.console_bytes)
		srv->settings.console_bytes = 1 << 20;
	if (!srv->settings.request_timeout_s)
		srv->settings.request_timeout_s = 30;
	if (!srv->settings.max_connections)
		srv->settings.max_connections = 256;
	if (!srv->settings.boot_slot_ms)
		srv->settings.boot_slot_ms = KEVD_SERVER_BOOT_SLOT_MS;
	return 0;
}

static void on_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct kevd_server *srv = arg;

	(void)fd;
	(void)what;
	kevd_imagecache_sweep(srv->images);
	/* Recordings that ended go to a worker to be written. */
	if (!srv->shutting_down)
		kevd_wsstore_poll(srv->wsets, srv->jobs);
}

/* The shared images, and the timer that lets unused ones go. */
static int setup_images(struct kevd_server *srv, const struct kevd_server_settings *s, struct kevd_error *err)
{
	struct kevd_imagecache_config cc;
	struct timeval every = { 1, 0 };
	int r;

	kevd_imagecache_config_default(&cc);
	cc.keep_s = s->cache_keep_s;
	cc.max_bytes = s->cache_max_mib << 20;
	r = kevd_imagecache_new(&cc, &srv->images, err);
	if (r < 0)
		return r;
	srv->sweep_event = event_new(srv->base, -1, EV_PERSIST, on_sweep, srv);
	if (!srv->sweep_event || event_add(srv->sweep_event, &every) < 0)
		return kevd_error_set(err, ENOMEM, "api: event_new");
	return 0;
}

/* Snapshots are an extra: a state directory kevd cannot write leaves the
 * rest of the daemon working, and the snapshot requests say why not. */
static void open_snapshots(struct kevd_server *srv, const struct kevd_server_settings *s)
{
	struct kevd_error e = KEVD_ERROR_INIT;

	if (!s->snapshot_dir) {
		snprintf(srv->snapshots_error, sizeof(srv->snapshots_error), "no snapshot directory is configured");
		return;
	}
	if (kevd_snapstore_new(s->snapshot_dir, &srv->snapshots, &e) < 0) {
		snprintf(srv->snapshots_error, sizeof(srv->snapshots_error), "%s", e.msg);
		kevd_warn("api: snapshots are unavailable: %s", e.msg);
	}
}

/* A daemon just started is most likely to restore the snapshots taken
 * last: spares of their shapes, newest first, as many shapes as spares are
 * kept.  A directory that cannot be listed primes nothing. */
static void prime_spares(struct kevd_server *srv)
{
	struct kevd_error e = KEVD_ERROR_INIT;
	struct kevd_spare_shape shapes[64];
	json_t *list = NULL, *snap;
	unsigned n = 0;
	size_t i;

	if (!srv->snapshots || !srv->settings.spare_vms || kevd_snapstore_list(srv->snapshots, &list, &e) < 0)
		return;
	while (n < srv->settings.spare_vms && n < sizeof(shapes) / sizeof(shapes[0])) {
		struct kevd_spare_shape next = { 0, 0, false };
		const char *newest = NULL;

		json_array_foreach(list, i, snap) {
			const char *at = json_string_value(json_object_get(snap, "created_at"));
			struct kevd_spare_shape sh;
			bool had = false;

			if (!at || !kevd_spare_shape_of(snap, &sh))
				continue;
			for (unsigned k = 0; k < n; k++)
				had = had || (shapes[k].memory_mib == sh.memory_mib && shapes[k].vcpus == sh.vcpus &&
					      shapes[k].pc == sh.pc);
			/* A shape the limits refuse now is restored by nobody. */
			if (!had && sh.memory_mib <= srv->settings.max_memory_mib && sh.vcpus <= srv->settings.max_vcpus &&
			    (!newest || strcmp(at, newest) > 0)) {
				newest = at;
				next = sh;
			}
		}
		if (!newest)
			break;
		shapes[n++] = next;
		kevd_spares_want(srv->spares, &next, true);
	}
	json_decref(list);
}

/* Everything but the listeners, which need the rest to be in place. */
static int setup_state(struct kevd_server *srv, const struct kevd_server_settings *s, struct kevd_error *err)
{
	int r;

	if ((r = copy_settings(srv, s, err)) < 0 || (r = kevd_registry_new(&srv->registry, err)) < 0 ||
	    (r = kevd_http_new(&srv->http, err)) < 0 ||
	    (r = kevd_scrapes_new(srv->base, srv->http, kevd_system_handlers_render_metrics, srv, &srv->scrapes,
				  err)) < 0 ||
	    (r = setup_images(srv, s, err)) < 0 ||
	    (r = kevd_jobs_new(srv->base, KEVD_JOBS_DEFAULT_WORKERS, &srv->jobs, err)) < 0 ||
	    (r = kevd_spares_new(srv->base, srv->jobs, s->spare_vms, &srv->spares, err)) < 0 ||
	    (r = kevd_bootgate_new(srv->settings.boot_slots, srv->settings.boot_slot_ms, &srv->boot_gate, err)) < 0)
		return r;
	srv->image_dirfd = kevd_imagedir_open_dir(s->image_dir, err);
	if (srv->image_dirfd < 0)
		return srv->image_dirfd;
	open_snapshots(srv, s);
	prime_spares(srv);
	if ((r = kevd_wsstore_new(s->workingset_dir, &srv->wsets, err)) < 0)
		return r;
	srv->eventfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (srv->eventfd < 0)
		return kevd_error_sys(err, errno, "api: eventfd");
	srv->end_event = event_new(srv->base, srv->eventfd, EV_READ | EV_PERSIST, on_eventfd, srv);
	if (!srv->end_event || event_add(srv->end_event, NULL) < 0)
		return kevd_error_set(err, ENOMEM, "api: event_new");
	srv->release_retry = evtimer_new(srv->base, on_release_retry, srv);
	if (!srv->release_retry)
		return kevd_error_set(err, ENOMEM, "api: evtimer_new");
	return 0;
}

int kevd_server_new(struct event_base *base, const struct kevd_server_settings *s,
		    kevd_server_change_fn on_change, void *arg,
		    struct kevd_server **out, struct kevd_error *err)
{
	struct kevd_server *srv = calloc(1, sizeof(*srv));
	int r;

	if (!srv)
		return kevd_error_sys(err, ENOMEM, "api");
	srv->base = base;
	srv->on_change = on_change;
	srv->cb_arg = arg;
	srv->eventfd = -1;
	srv->image_dirfd = -1;
	if ((r = setup_state(srv, s, err)) < 0 || (r = kevd_listener_new_unix(srv, s, &srv->unix_l, err)) < 0 ||
	    (s->listen && *s->listen && (r = kevd_listener_new_tcp(srv, s, &srv->tcp_l, err)) < 0) ||
	    (s->metrics_listen && *s->metrics_listen &&
	     (r = kevd_listener_new_metrics(srv, s, &srv->metrics_l, err)) < 0)) {
		kevd_server_free(srv);
		return r;
	}
	*out = srv;
	return 0;
}

int kevd_server_update(struct kevd_server *srv, const struct kevd_server_settings *s, struct kevd_error *err)
{
	size_t body = srv->settings.max_body_bytes;
	unsigned timeout = srv->settings.request_timeout_s, conns = srv->settings.max_connections;
	/* Opened anew even when the path is the same, so that a directory
	 * replaced under that name is the one served; opened first, so that a
	 * failure changes nothing. */
	int dirfd = kevd_imagedir_open_dir(s->image_dir, err);
	int r;

	if (dirfd < 0)
		return dirfd;
	r = kevd_bootgate_check(s->boot_slots, s->boot_slot_ms ? s->boot_slot_ms : KEVD_SERVER_BOOT_SLOT_MS, err);
	if (r == 0)
		r = copy_settings(srv, s, err);
	if (r < 0) {
		close(dirfd);
		return r;
	}
	close(srv->image_dirfd);
	srv->image_dirfd = dirfd;
	kevd_imagecache_reconfigure(srv->images, s->cache_keep_s, s->cache_max_mib << 20);
	kevd_spares_set_max(srv->spares, s->spare_vms);
	/* Checked above: cannot fail. */
	kevd_bootgate_set(srv->boot_gate, srv->settings.boot_slots, srv->settings.boot_slot_ms, NULL);
	/* The listeners keep their limits: they were applied per listener. */
	srv->settings.max_body_bytes = body;
	srv->settings.request_timeout_s = timeout;
	srv->settings.max_connections = conns;
	return 0;
}

void kevd_server_shutdown(struct kevd_server *srv)
{
	struct kevd_registry_entry *e;

	srv->shutting_down = true;
	kevd_spares_set_max(srv->spares, 0);
	kevd_listener_stop(srv->unix_l);
	kevd_listener_stop(srv->tcp_l);
	kevd_listener_stop(srv->metrics_l);
	/* The work under way finishes and is answered (or dropped, for a
	 * client gone), so that what it made is in the registry below. */
	kevd_jobs_drain(srv->jobs);
	/* Every VM is asked first, then waited for: they stop in parallel. */
	for (e = kevd_registry_first(srv->registry); e; e = kevd_registry_next(e))
		kevd_vm_stop(kevd_registry_entry_vm(e), "kevd is shutting down");
	for (e = kevd_registry_first(srv->registry); e; e = kevd_registry_next(e))
		if (kevd_vm_wait(kevd_registry_entry_vm(e), KEVD_SERVER_STOP_WAIT_MS) < 0)
			kevd_warn("vm '%s' did not stop within %d ms", kevd_registry_entry_name(e),
				  KEVD_SERVER_STOP_WAIT_MS);
}

void kevd_server_free(struct kevd_server *srv)
{
	if (!srv)
		return;
	/* First: the jobs answer requests their listeners own, and put what
	 * they made into the registry freed below. */
	kevd_jobs_free(srv->jobs);
	kevd_spares_free(srv->spares);
	/* Before the listeners, whose connections own the queued scrapes. */
	kevd_scrapes_free(srv->scrapes);
	kevd_listener_free(srv->metrics_l);
	kevd_listener_free(srv->tcp_l);
	kevd_listener_free(srv->unix_l);
	kevd_registry_free(srv->registry);
	kevd_bootgate_free(srv->boot_gate);
	/* After the VMs, which hold its entries. */
	if (srv->sweep_event)
		event_free(srv->sweep_event);
	kevd_imagecache_free(srv->images);
	/* After the jobs and the VMs: recordings not written by now are dropped. */
	kevd_wsstore_free(srv->wsets);
	kevd_snapstore_free(srv->snapshots);
	kevd_http_free(srv->http);
	if (srv->end_event)
		event_free(srv->end_event);
	if (srv->release_retry)
		event_free(srv->release_retry);
	if (srv->eventfd >= 0)
		close(srv->eventfd);
	if (srv->image_dirfd >= 0)
		close(srv->image_dirfd);
	free(srv->token);
	free(srv);
}

unsigned kevd_server_vm_count(struct kevd_server *srv)
{
	return (unsigned)kevd_registry_count(srv->registry);
}

unsigned kevd_server_running_count(struct kevd_server *srv)
{
	return kevd_registry_running_count(srv->registry);
}
