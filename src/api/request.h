/*
 * Request bodies of the API, parsed and validated without any HTTP or VMM
 * state, so that they are unit-tested and fuzzed on their own.  A failure
 * comes back as the HTTP status to answer with and a one-line message.
 */
#ifndef KEVD_REQUEST_H
#define KEVD_REQUEST_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/vm.h"

/* Scope-bound json_t references (see common/cleanup.h). */
static inline void kevd_json_decrefp(json_t **j)
{
	if (*j)
		json_decref(*j);
}
#define cleanup_json __attribute__((cleanup(kevd_json_decrefp)))

#define KEVD_REQUEST_NAME_MAX 64
#define KEVD_REQUEST_PATH_MAX 4096

struct kevd_problem {
	int status;          /* 400, 413 or 415 */
	char msg[512];
};

/* POST /v1/vms */
struct kevd_create_request {
	json_t *body;        /* owned; the strings below point into it */
	const char *name;    /* NULL = none given */
	const char *kernel;  /* NULL for a restore */
	const char *snapshot;  /* restore this snapshot instead of booting; NULL = boot */
	const char *initrd;  /* NULL = none */
	const char *cmdline; /* NULL = none */
	uint64_t memory_mib; /* default 128 */
	uint64_t vcpus;      /* default 1 */
	unsigned window_pages;  /* 0 = the daemon's default */
	unsigned window_max_pages;  /* 0 = the daemon's default */
	bool eager;
	bool private_pages;  /* "lazy-private" */
	bool start;          /* default true */
	enum kevd_boot_protocol protocol;
};

/* POST /v1/vms/{vm}/snapshot */
struct kevd_snapshot_request {
	json_t *body;        /* owned; name points into it */
	const char *name;
	bool stop;           /* stop the VM after the snapshot instead of resuming it */
};
int kevd_request_parse_snapshot(const char *content_type, const void *body, size_t len, size_t max_body,
				struct kevd_snapshot_request *out, struct kevd_problem *p);
void kevd_request_snapshot_free(struct kevd_snapshot_request *r);

/* PUT /v1/vms/{id}/actions */
enum kevd_action { KEVD_ACTION_START, KEVD_ACTION_STOP, KEVD_ACTION_PAUSE, KEVD_ACTION_RESUME };

/* Checks the content type (application/json), the size (at most
 * MAX_BODY) and the JSON itself (an object, duplicate keys rejected) and
 * returns the object.  0 or -1 with *P filled. */
int kevd_request_json(const char *content_type, const void *body, size_t len, size_t max_body,
		      json_t **out, struct kevd_problem *p);

int kevd_request_parse_create(const char *content_type, const void *body, size_t len, size_t max_body,
			      struct kevd_create_request *out, struct kevd_problem *p);
void kevd_request_create_free(struct kevd_create_request *r);

int kevd_request_parse_action(const char *content_type, const void *body, size_t len, size_t max_body,
			      enum kevd_action *out, struct kevd_problem *p);

/* VM names: 1..64 of A-Z a-z 0-9 . _ -, not starting with . or -. */
bool kevd_request_valid_name(const char *name);

/* A boot protocol by name, "auto", "multiboot2" or "pvh": the names of the
 * API's "protocol" and of `kevd run --protocol`.  0, or -1 for any other. */
int kevd_request_parse_protocol(const char *name, enum kevd_boot_protocol *out);

/* A paging mode by name: "lazy" (the image shared through the cache),
 * "lazy-private" or "eager"; the API's "paging" and `kevd run --paging`.
 * 0, or -1 for any other. */
int kevd_request_parse_paging(const char *name, bool *eager, bool *private_pages);

#endif
