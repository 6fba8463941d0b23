/*
 * Commands that follow a VM: console (optionally -f) and run (create,
 * follow, report the end).  kevd has no streaming console, so following is
 * polling GET .../console?offset=N and continuing from the answer's
 * X-Console-Next-Offset.  When the console has nothing new the VM's state
 * is read: once it has ended, the console is read to its end once more
 * (the guest's last bytes were written before it ended), then we stop.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kevctl/format.h"
#include "kevctl/kevctl.h"

#define PATH_MAX_LEN 512
#define POLL_NS 100000000L  /* 100 ms between empty console reads */

struct follow {
	char base[PATH_MAX_LEN];  /* /v1/vms/<vm> */
	long long offset;
	bool print;               /* write the console to stdout */
};

/* A paused VM has not ended: it may be resumed. */
static bool ended(const json_t *vm)
{
	const char *state = kevctl_str(vm, "state");

	return state && strcmp(state, "created") && strcmp(state, "running") && strcmp(state, "paused");
}

/* Reads the console from f->offset once; *GOT is the number of bytes. */
static int console_read(struct kevctl_ctx *ctx, struct follow *f, size_t *got)
{
	struct kevctl_response r;
	char path[PATH_MAX_LEN + 32];
	int rc;

	snprintf(path, sizeof(path), "%s/console?offset=%lld", f->base, f->offset);
	rc = kevctl_request(&ctx->client, "GET", path, NULL, &r, &ctx->err);
	*got = rc == KEVCTL_OK ? r.len : 0;
	if (rc == KEVCTL_OK) {
		if (f->print && r.len) {
			fwrite(r.body, 1, r.len, stdout);
			fflush(stdout);
		}
		f->offset = r.next_offset >= 0 ? r.next_offset : f->offset + (long long)r.len;
	}
	kevctl_response_free(&r);
	return rc;
}

/* Follows the VM by its id from here on: a VM deleted meanwhile and a new
 * one created under its name must not be taken for it. */
static int pin_id(struct kevctl_ctx *ctx, struct follow *f)
{
	json_t *vm = NULL;
	const char *id;
	int rc = kevctl_request_json(&ctx->client, "GET", f->base, NULL, &vm, &ctx->err);

	if (rc == KEVCTL_OK && (id = kevctl_str(vm, "id")))
		rc = kevctl_vm_path(f->base, sizeof(f->base), id, "", &ctx->err);
	json_decref(vm);
	return rc;
}

/* Follows the console until the VM has ended; *FINAL is its last object. */
static int follow_until_end(struct kevctl_ctx *ctx, struct follow *f, json_t **final)
{
	const struct timespec pause = { 0, POLL_NS };
	size_t got;
	int rc = pin_id(ctx, f);

	*final = NULL;
	if (rc != KEVCTL_OK)
		return rc;
	for (;;) {
		rc = console_read(ctx, f, &got);
		if (rc != KEVCTL_OK)
			return rc;
		if (got)
			continue;
		rc = kevctl_request_json(&ctx->client, "GET", f->base, NULL, final, &ctx->err);
		if (rc != KEVCTL_OK)
			return rc;
		if (ended(*final))
			break;
		json_decref(*final);
		*final = NULL;
		nanosleep(&pause, NULL);
	}
	do
		rc = console_read(ctx, f, &got);
	while (rc == KEVCTL_OK && got);
	return rc;
}

static int console_options(struct kevctl_ctx *ctx, int argc, char **argv, bool *follow, long long *offset)
{
	static const struct option opts[] = {
		{ "follow", no_argument, NULL, 'f' }, { "offset", required_argument, NULL, 'o' }, { NULL, 0, NULL, 0 },
	};
	char *end;
	int c;

	while ((c = kevctl_getopt(ctx, argc, argv, "f", opts)) != -1) {
		if (c == '?')
			return KEVCTL_USAGE;
		if (c == 'f') {
			*follow = true;
			continue;
		}
		errno = 0;
		*offset = strtoll(optarg, &end, 10);
		if (!*optarg || *end || errno || *offset < 0)
			return kevctl_usage(ctx, "console: --offset '%s' is not a byte offset", optarg);
	}
	return KEVCTL_OK;
}

/* console never prints JSON: the console is bytes (--json is accepted and
 * changes nothing, so scripts may pass it everywhere). */
int kevctl_cmd_console(struct kevctl_ctx *ctx, int argc, char **argv)
{
	struct follow f = { .print = true };
	bool follow = false;
	json_t *final = NULL;
	const char *vm;
	size_t got;
	int rc = console_options(ctx, argc, argv, &follow, &f.offset);

	if (rc != KEVCTL_OK)
		return rc;
	vm = kevctl_one_vm(ctx, argc, argv);
	if (!vm)
		return KEVCTL_USAGE;
	rc = kevctl_vm_path(f.base, sizeof(f.base), vm, "", &ctx->err);
	if (rc != KEVCTL_OK)
		return rc;
	if (follow) {
		rc = follow_until_end(ctx, &f, &final);
		json_decref(final);
		return rc;
	}
	/* Whatever is kept now: one read, however long. */
	return console_read(ctx, &f, &got);
}

/* run's documented status of how the VM ended (as `kevd run` maps it). */
static int end_status(const json_t *vm)
{
	const char *state = kevctl_str(vm, "state");
	const json_t *status = json_object_get(vm, "exit_status");

	if (!strcmp(state, "exited"))
		return json_is_integer(status) ? (int)json_integer_value(status) : 0;
	if (!strcmp(state, "crashed"))
		return 3;
	return 1;  /* failed, stopped */
}

static void print_end(const json_t *vm)
{
	const json_t *status = json_object_get(vm, "exit_status");

	fflush(stdout);
	fprintf(stderr, "--- kevctl: vm '%s' %s: %s", kevctl_str(vm, "name"),
		kevctl_str(vm, "state"), kevctl_str(vm, "reason"));
	if (json_is_integer(status))
		fprintf(stderr, " (exit status %" JSON_INTEGER_FORMAT ")", json_integer_value(status));
	fprintf(stderr, "\n");
}

/* Deletes the VM for --rm; a failure here is reported but does not change
 * the VM-derived status, which is what the caller asked for. */
static void remove_vm(struct kevctl_ctx *ctx, const char *base)
{
	struct kevd_error err = KEVD_ERROR_INIT;
	struct kevctl_response r;

	if (kevctl_request(&ctx->client, "DELETE", base, NULL, &r, &err) != KEVCTL_OK) {
		char msg[sizeof(err.msg) * 4];

		kevctl_escape(msg, sizeof(msg), err.msg);
		fprintf(stderr, "kevctl: --rm: %s\n", msg);
	}
	kevctl_response_free(&r);
}

int kevctl_cmd_run(struct kevctl_ctx *ctx, int argc, char **argv)
{
	struct follow f = { .print = !ctx->json };
	json_t *body = NULL, *vm = NULL, *final = NULL;
	bool rm = false;
	int rc = kevctl_create_options(ctx, argc, argv, &body, &rm);

	if (rc != KEVCTL_OK)
		return rc;
	f.print = !ctx->json;  /* --json may have come after the command */
	/* run follows the VM to its end: a VM that is not started never ends. */
	if (json_object_get(body, "start")) {
		json_decref(body);
		return kevctl_usage(ctx, "run: --no-start is create's (a VM not started never ends)");
	}
	rc = kevctl_request_json(&ctx->client, "POST", "/v1/vms", body, &vm, &ctx->err);
	json_decref(body);
	if (rc != KEVCTL_OK)
		return rc;
	if (!*kevctl_str(vm, "id")) {
		kevd_error_set(&ctx->err, EPROTO, "kevd's answer to the create has no VM id");
		rc = KEVCTL_FAIL;
	} else
		rc = kevctl_vm_path(f.base, sizeof(f.base), kevctl_str(vm, "id"), "", &ctx->err);
	if (rc == KEVCTL_OK)
		rc = follow_until_end(ctx, &f, &final);
	json_decref(vm);
	if (rc != KEVCTL_OK) {
		json_decref(final);
		return rc;
	}
	if (ctx->json)
		kevctl_print_json(final);
	else
		print_end(final);
	rc = end_status(final);
	json_decref(final);
	if (rm)
		remove_vm(ctx, f.base);
	return rc;
}
