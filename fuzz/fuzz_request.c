/*
 * Fuzz target: the API's request bodies (api/request.c), without HTTP.
 *
 * The first input byte picks the parser (even: POST /v1/vms, odd: PUT
 * /v1/vms/{id}/actions); the rest is the body, sent as application/json
 * with the daemon's default 64 KiB limit.  An accepted create request must
 * satisfy everything request.h promises the server, which relies on it
 * without checking again; a refused one must carry a status and a message.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/request.h"
#include "pager/pager.h"

#define MAX_BODY 65536

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define check(cond)                                                                              \
	do {                                                                                     \
		if (!(cond)) {                                                                   \
			fprintf(stderr, "fuzz_request: %s:%d: invariant failed: %s\n", __FILE__,\
				__LINE__, #cond);                                                \
			abort();                                                                 \
		}                                                                                \
	} while (0)

static void check_problem(const struct kevd_problem *p)
{
	check(p->status == 400 || p->status == 413 || p->status == 415);
	check(p->msg[0] != '\0' && memchr(p->msg, '\0', sizeof(p->msg)) != NULL);
}

static void check_string(const char *s, size_t max)
{
	check(s != NULL && strlen(s) <= max);
}

static void fuzz_create(const uint8_t *body, size_t len)
{
	struct kevd_create_request r;
	struct kevd_problem p = { 0 };

	if (kevd_request_parse_create("application/json", body, len, MAX_BODY, &r, &p) < 0) {
		check_problem(&p);
		check(r.body == NULL);
		return;
	}
	check(json_is_object(r.body));
	/* No upper bound here: the daemon's limits are checked after parsing
	 * (429), before either number is narrowed. */
	check(r.vcpus >= 1);
	check(r.memory_mib >= 2);
	check_string(r.kernel, KEVD_REQUEST_PATH_MAX);
	if (r.name) {
		check_string(r.name, KEVD_REQUEST_NAME_MAX);
		check(kevd_request_valid_name(r.name));
	}
	if (r.cmdline)
		check_string(r.cmdline, 4095);
	check(r.window_pages <= KEVD_PAGER_MAX_WINDOW);
	check(r.protocol == KEVD_BOOT_AUTO || r.protocol == KEVD_BOOT_MULTIBOOT2 || r.protocol == KEVD_BOOT_PVH);
	kevd_request_create_free(&r);
	check(r.body == NULL);
	kevd_request_create_free(&r);  /* twice is harmless */
}

static void fuzz_action(const uint8_t *body, size_t len)
{
	struct kevd_problem p = { 0 };
	enum kevd_action a = (enum kevd_action)-1;

	if (kevd_request_parse_action("application/json", body, len, MAX_BODY, &a, &p) < 0) {
		check_problem(&p);
		return;
	}
	check(a == KEVD_ACTION_START || a == KEVD_ACTION_STOP);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	if (data[0] & 1)
		fuzz_action(data + 1, size - 1);
	else
		fuzz_create(data + 1, size - 1);
	return 0;
}
