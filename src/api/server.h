/*
 * kevd's control plane: JSON over HTTP on a Unix socket (and optionally on
 * TCP for Prometheus), served by libevent's evhttp on the caller's event
 * base.  The server owns the VMs created through it.  Everything here runs
 * on the event loop's thread, but for the work handed to its job workers
 * (jobs.h); VM threads only ever write to an eventfd that the loop watches
 * (a VM reached its end), they never touch the base.
 */
#ifndef KEVD_SERVER_H
#define KEVD_SERVER_H

#include <event2/event.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <stddef.h>
#include <stdint.h>

#include "common/error.h"

struct kevd_server_settings {
	const char *socket_path;
	unsigned socket_mode;
	const char *listen;            /* "ADDR:PORT" as configured, for messages; NULL = no TCP */
	struct sockaddr_storage listen_addr;  /* parsed listen address */
	socklen_t listen_len;
	const char *token;             /* bearer token the TCP listener demands; NULL = none */
	const char *metrics_listen;    /* "ADDR:PORT" of the metrics listener, for messages; NULL = none */
	struct sockaddr_storage metrics_addr;  /* parsed metrics listen address */
	socklen_t metrics_len;
	const char *image_dir;
	const char *snapshot_dir;      /* NULL = no snapshots; opened (made) at start, not on reloads */
	const char *workingset_dir;    /* the kernels' boot working sets; NULL = none; the same */
	size_t max_body_bytes;
	unsigned request_timeout_s;
	unsigned max_connections;      /* per listener; 0 = the default, 256 */
	unsigned max_vms;
	unsigned max_vcpus;
	unsigned vcpu_nice;            /* of the VMs' vCPU threads */
	unsigned boot_slots;           /* VMs in their first boot_slot_ms at once (bootgate.h); 0 = no limit */
	unsigned boot_slot_ms;         /* 0 = the default, 30 */
	uint64_t max_memory_mib;
	uint64_t max_total_memory_mib;
	size_t console_bytes;
	unsigned pager_threads;
	unsigned window_pages;
	unsigned window_max_pages;
	unsigned cache_keep_s;         /* an unused shared image is kept this long */
	uint64_t cache_max_mib;        /* and while unused ones hold at most this */
	unsigned record_ms;            /* working sets recorded for this long; 0 = none */
	unsigned spare_vms;            /* spare VMs kept for restores (spares.h); 0 = none */
};

struct kevd_server;

/* Called on the loop thread whenever the number of VMs in each state may
 * have changed (create, delete, a VM ended). */
typedef void (*kevd_server_change_fn)(void *arg, struct kevd_server *srv);

int kevd_server_new(struct event_base *base, const struct kevd_server_settings *s,
		    kevd_server_change_fn on_change, void *arg,
		    struct kevd_server **out, struct kevd_error *err);
/* Limits (boot slots too), the token and the image directory can change at run time
 * (SIGHUP); listeners cannot, nor their limits (max_body_bytes,
 * request_timeout_s, max_connections).  On failure nothing changes. */
int kevd_server_update(struct kevd_server *srv, const struct kevd_server_settings *s,
		       struct kevd_error *err);
/* Stops accepting connections, answers 503 from now on, stops every VM
 * and waits for each to end. */
void kevd_server_shutdown(struct kevd_server *srv);
/* Frees the VMs and the listeners; removes the socket file. */
void kevd_server_free(struct kevd_server *srv);

unsigned kevd_server_vm_count(struct kevd_server *srv);
unsigned kevd_server_running_count(struct kevd_server *srv);

#endif
