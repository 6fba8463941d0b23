/*
 * The snapshot commands: snapshot (take one of a VM), snapshots (list),
 * snapshot-show, snapshot-rm, and the hidden __snapshots for the bash
 * completion; restore is a create (cmd_vm.c).  A snapshot is named by the
 * daemon's store, so these take its name, never a path.
 */
#include "config.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kevctl/format.h"
#include "kevctl/kevctl.h"

#define PATH_MAX_LEN 512

static json_int_t num(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* The MiB of memory a snapshot keeps in its file: its pages, 4 KiB each. */
static double kept_mib(const json_t *snap)
{
	return (double)num(json_object_get(snap, "memory"), "pages") * 4096.0 / 1048576.0;
}

/* The single snapshot name after the options, or NULL after a usage error. */
static const char *one_snapshot(struct kevctl_ctx *ctx, int argc, char **argv)
{
	if (optind != argc - 1 || !argv[optind][0]) {
		kevctl_usage(ctx, "%s: give exactly one snapshot name", argv[0]);
		return NULL;
	}
	return argv[optind];
}

int kevctl_cmd_snapshot(struct kevctl_ctx *ctx, int argc, char **argv)
{
	static const struct option opts[] = { { "stop", no_argument, NULL, 's' }, { NULL, 0, NULL, 0 } };
	char path[PATH_MAX_LEN];
	json_t *body = NULL, *snap = NULL, *name;
	bool stop = false;
	int c, rc;

	while ((c = kevctl_getopt(ctx, argc, argv, "", opts)) != -1) {
		if (c == '?')
			return KEVCTL_USAGE;
		stop = true;
	}
	if (optind != argc - 2 || !argv[optind][0] || !argv[optind + 1][0])
		return kevctl_usage(ctx, "snapshot: give a VM and the new snapshot's name");
	rc = kevctl_vm_path(path, sizeof(path), argv[optind], "/snapshot", &ctx->err);
	if (rc != KEVCTL_OK)
		return rc;
	name = json_string(argv[optind + 1]);
	if (!name)
		return kevctl_usage(ctx, "snapshot: '%s' is not UTF-8 text", argv[optind + 1]);
	body = json_pack("{s:o,s:b}", "name", name, "stop", stop);
	if (!body)
		return kevd_error_set(&ctx->err, ENOMEM, "out of memory"), KEVCTL_FAIL;
	/* The daemon writes the VM's memory before it answers. */
	ctx->client.timeout_ms = KEVCTL_SLOW_TIMEOUT_MS;
	rc = kevctl_request_json(&ctx->client, "POST", path, body, &snap, &ctx->err);
	if (rc == KEVCTL_OK && ctx->json)
		kevctl_print_json(snap);
	else if (rc == KEVCTL_OK)
		printf("%s %s: %" JSON_INTEGER_FORMAT " pages kept (%.1f MiB), written in %.1f ms%s\n",
		       kevctl_str(snap, "name"), kevctl_str(snap, "from_vm"), num(json_object_get(snap, "memory"), "pages"),
		       kept_mib(snap), json_number_value(json_object_get(snap, "write_ms")), stop ? "; VM stopped" : "");
	json_decref(body);
	json_decref(snap);
	return rc;
}

/* The list and the names both read GET /v1/snapshots. */
static int get_list(struct kevctl_ctx *ctx, json_t **out)
{
	return kevctl_request_json(&ctx->client, "GET", "/v1/snapshots", NULL, out, &ctx->err);
}

static int list_text(const json_t *list)
{
	static const char *const header[] = { "NAME", "FROM_VM", "KERNEL", "MEM_MIB", "VCPUS", "KEPT_MIB", "AGE" };
	const json_t *snap;
	struct kevctl_table t;
	size_t i;
	int r;

	if (kevctl_table_init(&t, 7, header) < 0)
		return -ENOMEM;
	json_array_foreach(json_object_get(list, "snapshots"), i, snap) {
		const json_t *vm = json_object_get(snap, "vm");
		char mem[24], vcpus[16], kept[24], age[16];

		if (json_object_get(snap, "fault_message")) {
			/* One the daemon cannot read: listed, and why below. */
			r = kevctl_table_add(&t, (const char *const[]){ kevctl_str(snap, "name"), "?", "?", "?", "?", "?",
								       "?" });
		} else {
			snprintf(mem, sizeof(mem), "%" JSON_INTEGER_FORMAT, num(vm, "memory_mib"));
			snprintf(vcpus, sizeof(vcpus), "%" JSON_INTEGER_FORMAT, num(vm, "vcpus"));
			snprintf(kept, sizeof(kept), "%.1f", kept_mib(snap));
			kevctl_format_age(age, sizeof(age), kevctl_str(snap, "created_at"));
			r = kevctl_table_add(&t, (const char *const[]){ kevctl_str(snap, "name"), kevctl_str(snap, "from_vm"),
								       kevctl_str(vm, "kernel"), mem, vcpus, kept, age });
		}
		if (r < 0) {
			kevctl_table_free(&t);
			return r;
		}
	}
	kevctl_table_print(&t, stdout);
	kevctl_table_free(&t);
	json_array_foreach(json_object_get(list, "snapshots"), i, snap)
		if (json_object_get(snap, "fault_message"))
			printf("%s: %s\n", kevctl_str(snap, "name"), kevctl_str(snap, "fault_message"));
	return 0;
}

int kevctl_cmd_snapshots(struct kevctl_ctx *ctx, int argc, char **argv)
{
	json_t *list = NULL;
	int rc;

	if (kevctl_getopt(ctx, argc, argv, "", NULL) != -1)
		return KEVCTL_USAGE;
	if (optind != argc)
		return kevctl_usage(ctx, "snapshots takes no operand (snapshot-show NAME shows one)");
	rc = get_list(ctx, &list);
	if (rc == KEVCTL_OK && ctx->json) {
		kevctl_print_json(list);
	} else if (rc == KEVCTL_OK && list_text(list) < 0) {
		kevd_error_set(&ctx->err, ENOMEM, "out of memory");
		rc = KEVCTL_FAIL;
	}
	json_decref(list);
	return rc;
}

int kevctl_cmd_snapshot_names(struct kevctl_ctx *ctx, int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return kevctl_print_names(ctx, "/v1/snapshots", "snapshots");
}

static void show_text(const json_t *snap)
{
	const json_t *vm = json_object_get(snap, "vm"), *mem = json_object_get(snap, "memory");
	char age[16];

	kevctl_format_age(age, sizeof(age), kevctl_str(snap, "created_at"));
	printf("name:        %s\nfrom vm:     %s\ncreated:     %s (%s ago) by kevd %s\n", kevctl_str(snap, "name"),
	       kevctl_str(snap, "from_vm"), kevctl_str(snap, "created_at"), age, kevctl_str(snap, "kevd_version"));
	printf("kernel:      %s (%s, %s paging)\n", kevctl_str(vm, "kernel"), kevctl_str(vm, "boot_protocol"),
	       kevctl_str(vm, "paging"));
	if (*kevctl_str(vm, "initrd"))
		printf("initrd:      %s\n", kevctl_str(vm, "initrd"));
	printf("memory:      %" JSON_INTEGER_FORMAT " MiB\nvcpus:       %" JSON_INTEGER_FORMAT "\ncmdline:     %s\n",
	       num(vm, "memory_mib"), num(vm, "vcpus"), kevctl_str(vm, "cmdline"));
	printf("pages kept:  %" JSON_INTEGER_FORMAT " (%.1f MiB); left to the kernel image %" JSON_INTEGER_FORMAT
	       ", zero %" JSON_INTEGER_FORMAT "\n",
	       num(mem, "pages"), kept_mib(snap), num(mem, "image_pages_left"), num(mem, "zero_pages_left"));
	if (json_is_number(json_object_get(snap, "write_ms")))
		printf("written in:  %.1f ms\n", json_number_value(json_object_get(snap, "write_ms")));
}

/* snapshot-show and snapshot-rm: one name, METHOD on /v1/snapshots/NAME. */
static int snapshot_request(struct kevctl_ctx *ctx, int argc, char **argv, const char *method, json_t **out)
{
	char path[PATH_MAX_LEN];
	const char *name;
	int rc;

	*out = NULL;
	if (kevctl_getopt(ctx, argc, argv, "", NULL) != -1)
		return KEVCTL_USAGE;
	name = one_snapshot(ctx, argc, argv);
	if (!name)
		return KEVCTL_USAGE;
	rc = kevctl_snapshot_path(path, sizeof(path), name, &ctx->err);
	if (rc != KEVCTL_OK)
		return rc;
	if (!strcmp(method, "DELETE")) {
		struct kevctl_response r;

		rc = kevctl_request(&ctx->client, method, path, NULL, &r, &ctx->err);
		kevctl_response_free(&r);
		return rc;
	}
	return kevctl_request_json(&ctx->client, method, path, NULL, out, &ctx->err);
}

int kevctl_cmd_snapshot_show(struct kevctl_ctx *ctx, int argc, char **argv)
{
	json_t *snap;
	int rc = snapshot_request(ctx, argc, argv, "GET", &snap);

	if (rc == KEVCTL_OK && ctx->json)
		kevctl_print_json(snap);
	else if (rc == KEVCTL_OK)
		show_text(snap);
	json_decref(snap);
	return rc;
}

/* 204 has no body: --json prints nothing either, as rm. */
int kevctl_cmd_snapshot_rm(struct kevctl_ctx *ctx, int argc, char **argv)
{
	json_t *none;

	return snapshot_request(ctx, argc, argv, "DELETE", &none);
}
