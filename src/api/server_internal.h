/*
 * A server's state, shared by the files that act for it: server.c (its
 * lifecycle), listener.c (connections and the checks before routing),
 * routes.c and the handlers.  metrics.c does not need it: it reads the
 * registry and the answer counts through their own interfaces.  Loop
 * thread only.
 */
#ifndef KEVD_SERVER_INTERNAL_H
#define KEVD_SERVER_INTERNAL_H

#include <event2/event.h>
#include <stdbool.h>

#include "api/server.h"
#include "vmm/vm.h"

/* How long a stop (delete, the stop action, shutdown) waits for a VM's
 * threads before it gives up on the VM. */
#define KEVD_SERVER_STOP_WAIT_MS 10000
/* boot_slot_ms when the settings leave it 0. */
#define KEVD_SERVER_BOOT_SLOT_MS 30
/* The 409 of an action, delete or snapshot of a VM another one is under
 * way for (kevd runs one at a time per VM); %s is the VM's name. */
#define KEVD_SERVER_BUSY_FMT "vm '%s' is busy: a start, stop, pause, resume, delete or snapshot of it is under way"

struct create_job;
struct kevd_http;
struct kevd_jobs;
struct kevd_listener;
struct kevd_registry;
struct kevd_scrapes;
struct kevd_snapstore;
struct kevd_wsstore;

struct kevd_server {
	struct event_base *base;               /* borrowed */
	struct kevd_server_settings settings;  /* strings not kept, see token */
	char *token;                           /* owned */
	int image_dirfd;                       /* owned O_PATH directory */
	int eventfd;                           /* owned: VM threads signal ends here */
	struct event *end_event;               /* owned */
	struct event *release_retry;           /* owned: ended VMs whose threads were still ending */
	kevd_server_change_fn on_change;
	void *cb_arg;
	struct kevd_listener *unix_l, *tcp_l;  /* owned; tcp_l NULL without "listen" */
	struct kevd_listener *metrics_l;       /* owned; NULL without "[metrics] listen" */
	struct kevd_registry *registry;        /* owned: the VMs */
	struct kevd_imagecache *images;        /* owned: the shared images; outlives the VMs */
	struct kevd_snapstore *snapshots;      /* owned; NULL when unavailable, see snapshots_error */
	char snapshots_error[1024];
	struct kevd_wsstore *wsets;            /* owned: the working sets, and their recordings under way */
	struct kevd_jobs *jobs;                /* owned: creates, starts, stops, deletes off the loop */
	struct kevd_spares *spares;            /* owned: spare VMs for restores; freed after jobs */
	struct kevd_bootgate *boot_gate;       /* owned: the VMs' boot slots; freed after the VMs */
	struct create_job *creates;            /* creates under way: their names are taken (vm_handlers.c) */
	unsigned creating;                     /* how many, counted against max_vms */
	uint64_t creating_memory;              /* their memory_mib, counted against max_total_memory_mib */
	struct event *sweep_event;             /* owned: frees unused images past their time */
	struct kevd_http *http;                /* owned: answers and their counts */
	struct kevd_scrapes *scrapes;          /* owned: /metrics, rendered once for the scrapes of a turn */
	bool shutting_down;
};

/* Tells the server's owner that the VM counts may have changed. */
void kevd_server_changed(struct kevd_server *srv);
/* The on_end callback of the server's VMs (ARG = the server).  Runs on a VM
 * thread: it only writes the eventfd, the loop does the rest. */
void kevd_server_vm_ended(void *arg, struct kevd_vm *vm);

#endif
