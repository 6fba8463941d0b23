/* The server's state, shared by server.c and metrics.c (loop thread only). */
#ifndef KEVD_SERVER_INTERNAL_H
#define KEVD_SERVER_INTERNAL_H

#include <event2/http.h>
#include <time.h>

#include "api/server.h"
#include "vmm/vm.h"

#define KEVD_SERVER_MAX_REQ_KINDS 128

struct kevd_server_vm {
	char *id;
	char *name;
	struct kevd_vm *vm;     /* owned */
	uint64_t memory_mib;
	time_t created;
};

struct kevd_listener {
	struct kevd_server *srv;
	struct evhttp *http;               /* owned */
	struct evhttp_bound_socket *bound; /* owned by http */
	int fd;                            /* owned until http takes it */
	bool needs_token;
};

struct kevd_req_count {
	const char *method;                /* static string */
	int code;
	uint64_t count;
};

struct kevd_server {
	struct event_base *base;           /* borrowed */
	struct kevd_server_settings settings;  /* strings not kept, see token */
	char *token;                       /* owned */
	char *socket_path;                 /* owned; unlinked on free */
	int image_dirfd;                   /* owned O_PATH directory */
	int eventfd;                       /* owned: VM threads signal ends here */
	struct event *end_event;           /* owned */
	kevd_server_change_fn on_change;
	void *cb_arg;
	struct kevd_listener unix_l, tcp_l;
	struct kevd_server_vm **vms;       /* owned */
	size_t nvms;
	unsigned id_counter;
	bool shutting_down;
	struct kevd_req_count req[KEVD_SERVER_MAX_REQ_KINDS];
	size_t nreq;
};

#endif
